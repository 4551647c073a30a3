build-asan/collect/procinfo.o: user/collect/procinfo.c \
  user/collect/elfsym.h user/collect/procinfo.h user/collect/qemu_args.h

user/collect/elfsym.h:

user/collect/procinfo.h:

user/collect/qemu_args.h:
