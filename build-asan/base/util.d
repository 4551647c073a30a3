build-asan/base/util.o: user/base/util.c user/base/util.h

user/base/util.h:
