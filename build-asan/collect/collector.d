build-asan/collect/collector.o: user/collect/collector.c user/base/util.h \
  user/collect/collector.h include/mftrace.h user/collect/probe_select.h \
  user/collect/procinfo.h user/collect/qemu_args.h user/collect/elfsym.h \
  user/collect/host.h build-asan/mftrace.skel.h

user/base/util.h:

user/collect/collector.h:

include/mftrace.h:

user/collect/probe_select.h:

user/collect/procinfo.h:

user/collect/qemu_args.h:

user/collect/elfsym.h:

user/collect/host.h:

build-asan/mftrace.skel.h:
