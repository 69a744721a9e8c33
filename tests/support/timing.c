#include <stdlib.h>
#include <time.h>

#include "timing.h"

double veil_test_time_factor(void)
{
	double f = 1.0;
	const char *s = getenv("VEIL_TEST_TIME_FACTOR");
	if (s && *s) {
		char *end = NULL;
		double v = strtod(s, &end);
		if (end && *end == '\0' && v >= 1.0 && v <= 1000.0)
			f = v;
	}
	const char *vg = getenv("VEIL_VALGRIND");
	if (vg && *vg && *vg != '0')
		f *= 10.0;
	return f;
}

int veil_test_ms(int base_ms)
{
	double v = (double)base_ms * veil_test_time_factor();
	return v > 2.0e9 ? 2000000000 : (int)v;
}

TCase *veil_tcase(const char *name, double seconds)
{
	TCase *tc = tcase_create(name);
	tcase_set_timeout(tc, seconds * veil_test_time_factor());
	return tc;
}

uint64_t veil_test_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000U + (uint64_t)ts.tv_nsec / 1000000U;
}

struct veil_deadline veil_deadline_in(int base_ms)
{
	struct veil_deadline d = { veil_test_now_ms() + (uint64_t)veil_test_ms(base_ms) };
	return d;
}

bool veil_deadline_passed(const struct veil_deadline *d)
{
	return veil_test_now_ms() >= d->end_ms;
}

int veil_deadline_left_ms(const struct veil_deadline *d)
{
	uint64_t now = veil_test_now_ms();
	if (now >= d->end_ms)
		return 0;
	uint64_t left = d->end_ms - now;
	return left > 2000000000U ? 2000000000 : (int)left;
}

void veil_cond_init(pthread_cond_t *cv)
{
	pthread_condattr_t a;
	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	pthread_cond_init(cv, &a);
	pthread_condattr_destroy(&a);
}

bool veil_cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *mu, const struct veil_deadline *d)
{
	if (veil_deadline_passed(d))
		return false;
	struct timespec ts = { (time_t)(d->end_ms / 1000U), (long)(d->end_ms % 1000U) * 1000000L };
	return pthread_cond_timedwait(cv, mu, &ts) == 0 || !veil_deadline_passed(d);
}

bool veil_cond_wait_count(pthread_cond_t *cv, pthread_mutex_t *mu, const size_t *count, size_t want, int base_ms)
{
	struct veil_deadline d = veil_deadline_in(base_ms);
	pthread_mutex_lock(mu);
	while (*count < want && veil_cond_wait_until(cv, mu, &d))
		;
	bool ok = *count >= want;
	pthread_mutex_unlock(mu);
	return ok;
}

void veil_poll_pause(void)
{
	struct timespec ts = { 0, 10 * 1000000L };
	nanosleep(&ts, NULL);
}
