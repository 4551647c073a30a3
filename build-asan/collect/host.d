build-asan/collect/host.o: user/collect/host.c user/collect/host.h \
  user/collect/probe_select.h

user/collect/host.h:

user/collect/probe_select.h:
