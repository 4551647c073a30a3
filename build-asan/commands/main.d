build-asan/commands/main.o: user/commands/main.c user/commands/cli.h \
  user/collect/collector.h include/mftrace.h user/collect/probe_select.h \
  user/collect/procinfo.h user/collect/qemu_args.h \
  user/commands/commands.h user/correlate/correlator.h \
  user/correlate/verdict.h user/base/util.h user/commands/doctor.h \
  user/collect/host.h user/present/output.h user/commands/session.h \
  include/version.h

user/commands/cli.h:

user/collect/collector.h:

include/mftrace.h:

user/collect/probe_select.h:

user/collect/procinfo.h:

user/collect/qemu_args.h:

user/commands/commands.h:

user/correlate/correlator.h:

user/correlate/verdict.h:

user/base/util.h:

user/commands/doctor.h:

user/collect/host.h:

user/present/output.h:

user/commands/session.h:

include/version.h:
