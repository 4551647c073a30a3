build-asan/store/timeline.o: user/store/timeline.c user/base/util.h \
  user/correlate/multifd_wire.h include/mftrace.h user/store/timeline.h \
  user/correlate/correlator.h user/correlate/verdict.h \
  user/store/recfile.h

user/base/util.h:

user/correlate/multifd_wire.h:

include/mftrace.h:

user/store/timeline.h:

user/correlate/correlator.h:

user/correlate/verdict.h:

user/store/recfile.h:
