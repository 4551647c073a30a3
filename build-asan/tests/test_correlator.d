build-asan/tests/test_correlator: tests/unit/test_correlator.c \
  tests/unit/unit.h user/correlate/correlator.h include/mftrace.h \
  user/correlate/verdict.h user/base/util.h

tests/unit/unit.h:

user/correlate/correlator.h:

include/mftrace.h:

user/correlate/verdict.h:

user/base/util.h:
