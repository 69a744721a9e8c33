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

void veil_poll_pause(void)
{
	struct timespec ts = { 0, 10 * 1000000L };
	nanosleep(&ts, NULL);
}
