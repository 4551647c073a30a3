build-asan/commands/session.o: user/commands/session.c \
  user/collect/elfsym.h user/collect/host.h user/collect/probe_select.h \
  user/commands/session.h user/base/util.h user/collect/collector.h \
  include/mftrace.h user/collect/procinfo.h user/collect/qemu_args.h \
  user/correlate/correlator.h user/correlate/verdict.h

user/collect/elfsym.h:

user/collect/host.h:

user/collect/probe_select.h:

user/commands/session.h:

user/base/util.h:

user/collect/collector.h:

include/mftrace.h:

user/collect/procinfo.h:

user/collect/qemu_args.h:

user/correlate/correlator.h:

user/correlate/verdict.h:
