build-asan/collect/qemu_args.o: user/collect/qemu_args.c \
  user/collect/qemu_args.h

user/collect/qemu_args.h:
