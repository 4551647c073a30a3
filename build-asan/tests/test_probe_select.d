build-asan/tests/test_probe_select: tests/unit/test_probe_select.c \
  tests/unit/unit.h user/collect/probe_select.h

tests/unit/unit.h:

user/collect/probe_select.h:
