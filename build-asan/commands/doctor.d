build-asan/commands/doctor.o: user/commands/doctor.c user/base/util.h \
  user/commands/doctor.h user/collect/collector.h include/mftrace.h \
  user/collect/probe_select.h user/collect/procinfo.h \
  user/collect/qemu_args.h user/collect/elfsym.h user/collect/host.h

user/base/util.h:

user/commands/doctor.h:

user/collect/collector.h:

include/mftrace.h:

user/collect/probe_select.h:

user/collect/procinfo.h:

user/collect/qemu_args.h:

user/collect/elfsym.h:

user/collect/host.h:
