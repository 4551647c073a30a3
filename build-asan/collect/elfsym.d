build-asan/collect/elfsym.o: user/collect/elfsym.c user/collect/elfsym.h

user/collect/elfsym.h:
