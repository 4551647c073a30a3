build-asan/commands/http_guard.o: user/commands/http_guard.c \
  user/base/util.h user/commands/http_guard.h user/collect/collector.h \
  include/mftrace.h user/collect/probe_select.h user/collect/procinfo.h \
  user/collect/qemu_args.h user/present/metrics.h \
  user/correlate/correlator.h user/correlate/verdict.h

user/base/util.h:

user/commands/http_guard.h:

user/collect/collector.h:

include/mftrace.h:

user/collect/probe_select.h:

user/collect/procinfo.h:

user/collect/qemu_args.h:

user/present/metrics.h:

user/correlate/correlator.h:

user/correlate/verdict.h:
