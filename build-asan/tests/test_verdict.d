build-asan/tests/test_verdict: tests/unit/test_verdict.c \
  tests/unit/unit.h include/mftrace.h user/correlate/verdict.h \
  user/base/util.h

tests/unit/unit.h:

include/mftrace.h:

user/correlate/verdict.h:

user/base/util.h:
