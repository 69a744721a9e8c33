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

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
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
/* Milliseconds left until the deadline (0 once passed): for poll() and
 * condition-variable waits that wake on the event itself. */
int veil_deadline_left_ms(const struct veil_deadline *d);
/* A condition variable whose timed waits run on the deadlines' monotonic
 * clock, and one such wait: false once the deadline passed (re-check the
 * event after either answer). The mutex is held, as for pthread_cond_wait. */
void veil_cond_init(pthread_cond_t *cv);
bool veil_cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *mu, const struct veil_deadline *d);
/* Wait until *count (guarded by mu, signalled on cv) reaches want; false
 * after base_ms (scaled). Takes and releases mu. */
bool veil_cond_wait_count(pthread_cond_t *cv, pthread_mutex_t *mu, const size_t *count, size_t want, int base_ms);
/* Re-check cond (an expression) until it holds or base_ms (scaled) passed;
 * evaluates to whether it held. For states no callback reports (is the
 * client connected). */
#define VEIL_WAIT_UNTIL(cond, base_ms)                                                                  \
	({                                                                                               \
		struct veil_deadline veil_wait_d_ = veil_deadline_in(base_ms);                             \
		bool veil_wait_ok_;                                                                        \
		while (!(veil_wait_ok_ = (cond)) && !veil_deadline_passed(&veil_wait_d_))                  \
			veil_poll_pause();                                                                 \
		veil_wait_ok_;                                                                             \
	})
/* Short pause inside a polling loop that re-checks its event each time
 * (a file's content, a process state); never a wait on its own. */
void veil_poll_pause(void);

#endif
