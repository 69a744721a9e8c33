/*
 * plugin/auth_budget.c: the Argon2id time budget of password logins. The
 * runs for users with failed logins on record (suspects) fit in half the
 * budget; a burst of guesses at one account never leaves another user's
 * valid login "busy", also when one run costs more than the budget; many
 * usernames guessed at once do; the count cap. The budget's clock state is set
 * directly and runs are accounted as vp_auth__hash_verify accounts them
 * (no Argon2id run): each case runs inside one budget second, a few
 * microseconds.
 */
#include <check.h>
#include <string.h>

#include "veil/error.h"
#include "auth_private.h"
#include "ratelimit.h"
#include "check_run.h"
#include "timing.h"

/* A budget of 200 ms per second whose second starts now, with nothing
 * spent yet; runs are estimated at est_ms each. */
static void fresh(struct vp_auth *a, uint64_t est_ms)
{
	memset(a, 0, sizeof(*a));
	a->password_ms_per_sec = 200;
	a->password_hashes_per_sec = 1000;
	a->hash_us_estimate = est_ms * 1000U;
	a->hash_window_ms = vp_ratelimit__now_ms();
}

/* vp_auth__hash_budget, then the run's accounting as vp_auth__hash_verify
 * does it (ms spent). */
static bool run(struct vp_auth *a, bool suspect, uint64_t ms)
{
	if (!vp_auth__hash_budget(a, suspect))
		return false;
	a->hash_us_in_window += ms * 1000U;
	if (suspect)
		a->suspect_us_in_window += ms * 1000U;
	return true;
}

START_TEST(test_burst_at_one_account)
{
	struct vp_auth a;
	/* Runs of 90 ms (Argon2id at interactive limits on a busy 2-core
	 * machine). The burst's first guess runs (nothing marks it yet); the
	 * next ones, one at the end of each back-off block, are a suspect's:
	 * one fits in half the budget, a second (90 + 90) does not. */
	fresh(&a, 90);
	ck_assert(run(&a, false, 90));
	ck_assert(run(&a, true, 90));
	ck_assert(!run(&a, true, 90));
	/* Another user's valid login still runs, though 180 + 90 > 200... */
	ck_assert(run(&a, false, 90));
	/* ...and then the budget counts. */
	ck_assert(!run(&a, false, 90));
	/* Runs dearer than the whole budget (a loaded machine): the same. */
	fresh(&a, 250);
	ck_assert(run(&a, false, 250));
	ck_assert(!run(&a, true, 250));
	ck_assert(run(&a, false, 250));
	ck_assert(!run(&a, false, 250));
	/* The suspect's run first in a second: still room for the login, and
	 * for nothing else (two runs, not three: a suspect's first guess and
	 * two fresh usernames do not get three). */
	fresh(&a, 250);
	ck_assert(run(&a, true, 250));
	ck_assert(run(&a, false, 250));
	ck_assert(!run(&a, false, 250));
	ck_assert(!run(&a, true, 250));
	/* Suspects' own share: cheap runs fit in half the budget only. */
	fresh(&a, 10);
	int n = 0;
	while (run(&a, true, 10))
		n++;
	ck_assert_int_eq(n, 10); /* the first of the second, then 9 more to 100 ms */
	ck_assert(run(&a, false, 10));
}
END_TEST

START_TEST(test_many_usernames)
{
	struct vp_auth a;
	/* Guesses at new usernames each time: none is a suspect. They run
	 * while the budget lasts... */
	fresh(&a, 90);
	ck_assert(run(&a, false, 90));
	ck_assert(run(&a, false, 90));
	/* ...then one more past it (the one a valid login would have had)... */
	ck_assert(run(&a, false, 90));
	/* ...then nothing more this second, a valid login neither (busy). */
	ck_assert(!run(&a, false, 90));
	ck_assert(!run(&a, true, 90));
	/* Cheap runs: as many as fit. */
	fresh(&a, 10);
	int n = 0;
	while (run(&a, false, 10))
		n++;
	ck_assert_int_eq(n, 21); /* 20 within the budget, one past it */
	/* A new second starts over. */
	a.hash_window_ms = vp_ratelimit__now_ms() - 1000;
	ck_assert(run(&a, true, 90));
	ck_assert_uint_eq(a.hash_us_in_window, 90000);
	ck_assert_uint_eq(a.suspect_us_in_window, 90000);
	ck_assert(!a.clean_over_in_window);
}
END_TEST

START_TEST(test_count_cap)
{
	struct vp_auth a;
	fresh(&a, 0);
	a.password_hashes_per_sec = 3;
	ck_assert(run(&a, false, 0));
	ck_assert(run(&a, true, 0));
	ck_assert(run(&a, false, 0));
	ck_assert(!run(&a, false, 0));
	ck_assert(!run(&a, true, 0));
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("auth_budget");
	TCase *t = veil_tcase("core", 2);
	tcase_add_test(t, test_burst_at_one_account);
	tcase_add_test(t, test_many_usernames);
	tcase_add_test(t, test_count_cap);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	return veil_check_run(suite());
}
