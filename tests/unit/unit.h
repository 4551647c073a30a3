/* A minimal unit-test harness: one "PASS name" / "FAIL name: why" line per test. */
#pragma once
#include <stdio.h>
#include <string.h>

static int unit_failed_checks;
static const char *unit_current;

#define CHECK(cond)                                                                              \
	do {                                                                                     \
		if (!(cond)) {                                                                   \
			printf("FAIL %s: %s:%d: %s\n", unit_current, __FILE__, __LINE__, #cond); \
			unit_failed_checks++;                                                    \
			return;                                                                  \
		}                                                                                \
	} while (0)
#define CHECK_STR(a, b)                                                                                \
	do {                                                                                           \
		const char *_a = (a), *_b = (b);                                                       \
		if (!_a || strcmp(_a, _b)) {                                                           \
			printf("FAIL %s: %s:%d: \"%s\" != \"%s\"\n", unit_current, __FILE__, __LINE__, \
			       _a ? _a : "(null)", _b);                                                \
			unit_failed_checks++;                                                          \
			return;                                                                        \
		}                                                                                      \
	} while (0)
#define CHECK_INT(a, b)                                                                                             \
	do {                                                                                                        \
		long long _a = (long long)(a), _b = (long long)(b);                                                 \
		if (_a != _b) {                                                                                     \
			printf("FAIL %s: %s:%d: %s == %lld, expected %lld\n", unit_current, __FILE__, __LINE__, #a, \
			       _a, _b);                                                                             \
			unit_failed_checks++;                                                                       \
			return;                                                                                     \
		}                                                                                                   \
	} while (0)

#define RUN(fn)                                    \
	do {                                       \
		int _before = unit_failed_checks;  \
		unit_current = #fn;                \
		fn();                              \
		if (unit_failed_checks == _before) \
			printf("PASS %s\n", #fn);  \
	} while (0)
#define UNIT_EXIT() return unit_failed_checks ? 1 : 0
