build-asan/commands/report.o: user/commands/report.c user/base/util.h \
  user/commands/cli.h user/commands/commands.h user/present/output.h \
  user/correlate/correlator.h include/mftrace.h user/correlate/verdict.h \
  user/store/recfile.h user/store/timeline.h

user/base/util.h:

user/commands/cli.h:

user/commands/commands.h:

user/present/output.h:

user/correlate/correlator.h:

include/mftrace.h:

user/correlate/verdict.h:

user/store/recfile.h:

user/store/timeline.h:
