build-asan/commands/exporter.o: user/commands/exporter.c \
  user/commands/commands.h user/collect/host.h \
  user/collect/probe_select.h user/present/metrics.h \
  user/collect/collector.h include/mftrace.h user/collect/procinfo.h \
  user/collect/qemu_args.h user/correlate/correlator.h \
  user/correlate/verdict.h user/base/util.h user/commands/session.h \
  user/commands/cli.h user/commands/http_guard.h \
  user/commands/web_config.h include/version.h build-asan/revision.h

user/commands/commands.h:

user/collect/host.h:

user/collect/probe_select.h:

user/present/metrics.h:

user/collect/collector.h:

include/mftrace.h:

user/collect/procinfo.h:

user/collect/qemu_args.h:

user/correlate/correlator.h:

user/correlate/verdict.h:

user/base/util.h:

user/commands/session.h:

user/commands/cli.h:

user/commands/http_guard.h:

user/commands/web_config.h:

include/version.h:

build-asan/revision.h:
