build-asan/tests/test_multifd_wire: tests/unit/test_multifd_wire.c \
  tests/unit/unit.h user/correlate/multifd_wire.h include/mftrace.h

tests/unit/unit.h:

user/correlate/multifd_wire.h:

include/mftrace.h:
