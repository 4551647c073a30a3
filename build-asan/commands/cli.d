build-asan/commands/cli.o: user/commands/cli.c user/base/util.h \
  user/commands/cli.h user/collect/host.h user/collect/probe_select.h \
  user/collect/procinfo.h user/collect/qemu_args.h

user/base/util.h:

user/commands/cli.h:

user/collect/host.h:

user/collect/probe_select.h:

user/collect/procinfo.h:

user/collect/qemu_args.h:
