build-asan/tests/test_timeline: tests/unit/test_timeline.c \
  tests/unit/unit.h user/store/timeline.h user/base/util.h \
  user/correlate/correlator.h include/mftrace.h user/correlate/verdict.h \
  user/store/recfile.h

tests/unit/unit.h:

user/store/timeline.h:

user/base/util.h:

user/correlate/correlator.h:

include/mftrace.h:

user/correlate/verdict.h:

user/store/recfile.h:
