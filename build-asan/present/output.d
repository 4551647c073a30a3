build-asan/present/output.o: user/present/output.c user/present/output.h \
  user/correlate/correlator.h include/mftrace.h user/correlate/verdict.h \
  user/base/util.h

user/present/output.h:

user/correlate/correlator.h:

include/mftrace.h:

user/correlate/verdict.h:

user/base/util.h:
