build-asan/correlate/multifd_wire.o: user/correlate/multifd_wire.c \
  user/correlate/multifd_wire.h include/mftrace.h

user/correlate/multifd_wire.h:

include/mftrace.h:
