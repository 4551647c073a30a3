build-asan/tests/test_recfile: tests/unit/test_recfile.c \
  tests/unit/unit.h user/store/recfile.h include/mftrace.h

tests/unit/unit.h:

user/store/recfile.h:

include/mftrace.h:
