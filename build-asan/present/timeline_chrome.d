build-asan/present/timeline_chrome.o: user/present/timeline_chrome.c \
  user/base/util.h user/present/output.h user/correlate/correlator.h \
  include/mftrace.h user/correlate/verdict.h user/store/timeline.h \
  user/store/recfile.h

user/base/util.h:

user/present/output.h:

user/correlate/correlator.h:

include/mftrace.h:

user/correlate/verdict.h:

user/store/timeline.h:

user/store/recfile.h:
