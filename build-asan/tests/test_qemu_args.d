build-asan/tests/test_qemu_args: tests/unit/test_qemu_args.c \
  tests/unit/unit.h user/collect/qemu_args.h

tests/unit/unit.h:

user/collect/qemu_args.h:
