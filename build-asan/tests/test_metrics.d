build-asan/tests/test_metrics: tests/unit/test_metrics.c \
  tests/unit/unit.h user/present/metrics.h user/collect/collector.h \
  include/mftrace.h user/collect/probe_select.h user/collect/procinfo.h \
  user/collect/qemu_args.h user/correlate/correlator.h \
  user/correlate/verdict.h user/base/util.h

tests/unit/unit.h:

user/present/metrics.h:

user/collect/collector.h:

include/mftrace.h:

user/collect/probe_select.h:

user/collect/procinfo.h:

user/collect/qemu_args.h:

user/correlate/correlator.h:

user/correlate/verdict.h:

user/base/util.h:
