build-asan/store/recfile.o: user/store/recfile.c user/base/util.h \
  user/store/recfile.h include/mftrace.h

user/base/util.h:

user/store/recfile.h:

include/mftrace.h:
