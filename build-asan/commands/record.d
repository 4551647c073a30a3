build-asan/commands/record.o: user/commands/record.c \
  user/commands/commands.h user/collect/host.h \
  user/collect/probe_select.h user/present/output.h \
  user/correlate/correlator.h include/mftrace.h user/correlate/verdict.h \
  user/base/util.h user/collect/procinfo.h user/collect/qemu_args.h \
  user/store/recfile.h user/commands/session.h user/collect/collector.h \
  user/commands/cli.h include/version.h

user/commands/commands.h:

user/collect/host.h:

user/collect/probe_select.h:

user/present/output.h:

user/correlate/correlator.h:

include/mftrace.h:

user/correlate/verdict.h:

user/base/util.h:

user/collect/procinfo.h:

user/collect/qemu_args.h:

user/store/recfile.h:

user/commands/session.h:

user/collect/collector.h:

user/commands/cli.h:

include/version.h:
