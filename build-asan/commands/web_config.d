build-asan/commands/web_config.o: user/commands/web_config.c \
  user/commands/web_config.h

user/commands/web_config.h:
