build-asan/correlate/verdict.o: user/correlate/verdict.c \
  user/correlate/verdict.h user/base/util.h include/mftrace.h

user/correlate/verdict.h:

user/base/util.h:

include/mftrace.h:
