build-asan/correlate/correlator.o: user/correlate/correlator.c \
  user/correlate/correlator.h include/mftrace.h user/correlate/verdict.h \
  user/base/util.h user/correlate/multifd_wire.h

user/correlate/correlator.h:

include/mftrace.h:

user/correlate/verdict.h:

user/base/util.h:

user/correlate/multifd_wire.h:
