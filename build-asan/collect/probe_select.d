build-asan/collect/probe_select.o: user/collect/probe_select.c \
  user/collect/probe_select.h

user/collect/probe_select.h:
