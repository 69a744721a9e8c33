/*
 * Every deadline a test waits on, in one place. A test states how long its
 * work takes on an ordinary machine; one factor scales that for slower
 * builds: VEIL_TEST_TIME_FACTOR from ctest (1, or 4 in the sanitizer build,
 * tests/CMakeLists.txt), times 10 when VEIL_VALGRIND=1 runs brokers under
 * memcheck. integration/lib.sh applies the same factor to the scenarios.
 * A slow or busy machine gets more time, never a different verdict: tests
 * wait on events (a log line, a SUBACK, a file's content) until a deadline,
 * never for a fixed time.
 */
#ifndef VEIL_TEST_TIMING_H
#define VEIL_TEST_TIMING_H

#include <stdbool.h>
#include <stdint.h>

#include <check.h>

/* The factor (>= 1). */
double veil_test_time_factor(void);
/* base_ms scaled by the factor. */
int veil_test_ms(int base_ms);
/* A Check test case whose tests each take at most `seconds` on an ordinary
 * machine; its timeout is that, scaled. The only way tests make a TCase
 * (tools/test-all.sh refuses tcase_create elsewhere): Check's 4 s default
 * never applies. */
TCase *veil_tcase(const char *name, double seconds);

/* Monotonic milliseconds. */
uint64_t veil_test_now_ms(void);
/* A deadline base_ms (scaled) from now, and whether it has passed. */
struct veil_deadline {
	uint64_t end_ms;
};
struct veil_deadline veil_deadline_in(int base_ms);
bool veil_deadline_passed(const struct veil_deadline *d);
/* Short pause inside a polling loop that re-checks its event each time
 * (a file's content, a process state); never a wait on its own. */
void veil_poll_pause(void);

#endif
