build-asan/tests/test_util: tests/unit/test_util.c tests/unit/unit.h \
  user/base/util.h

tests/unit/unit.h:

user/base/util.h:
