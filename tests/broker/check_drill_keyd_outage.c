/*
 * Drill: keyd down for a while (issue 13, "Compromise drills": "with
 * pre-grant depth K, a keyd outage shorter than K periods loses nothing"),
 * with real components (tests/support/lifecycle_fixture.h). keyd grants an
 * epoch while send_from <= now + lead + K x period, so devices hold K
 * periods beyond the current epoch and its lead: an outage shorter than
 * K x period + lead loses nothing (docs/KEYD.md). Periods of 12 s, lead 6,
 * the default depth 2 (30 s). keyd is killed at the worst point of the
 * period, about 2 s before it would grant the next epoch (where devices
 * hold the least), and stays away 22 to 23.5 s: shorter than K periods
 * (24 s), longer than the 18 s the old rule (lead + (K - 1) x period)
 * covered, so this drill fails on that rule. Meanwhile three devices
 * exchange QoS 1 messages; keyd comes back and the traffic goes on across
 * the next boundary. Nothing is lost or refused, no publish finds no key,
 * and the devices moved epochs on their own while keyd was away.
 */
#include <check.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "veil/veil.h"

#include "check_run.h"
#include "lifecycle_fixture.h"
#include "timing.h"

#define N 3
#define PERIOD 12
#define LEAD 6
#define DEPTH 2
#define OUTAGE_MIN_MS 22000 /* > lead + (K - 1) x period = 18 s, the old rule */
#define OUTAGE_MAX_MS 23500 /* < K x period = 24 s */
#define KILL_BEFORE_GRANT_MS 2500

static void setup(void)
{
	struct lfx_opts o = { .acl = "role fleet\ntopic readwrite,encrypted fleet/#\n" };
	lfx_setup(&o);
}

static int sent[N];

/* Each device publishes one message (QoS 1, acknowledged); then each waits
 * for every other's. Returns once all arrived. The key id of the last one
 * device 0 got in *key. */
static void round_of(struct lfx_dev **d, uint32_t *key)
{
	char pt[64];
	for (int s = 0; s < N; s++) {
		snprintf(pt, sizeof(pt), "%s-%d", lfx_dev_id(d[s]), sent[s]++);
		int rc = lfx_dev_pub(d[s], "fleet/x", pt);
		ck_assert_msg(rc == VEIL_OK, "%s: %s refused (%s)", lfx_dev_id(d[s]), pt, veil_errname(rc));
	}
	for (int r = 0; r < N; r++) {
		for (int s = 0; s < N; s++) {
			snprintf(pt, sizeof(pt), "%s-%d", lfx_dev_id(d[s]), sent[s] - 1);
			if (!lfx_dev_wait_msg(d[r], pt, 10000))
				lfx_dev_dump(d[r]);
			ck_assert_msg(lfx_dev_count(d[r], pt) == 1, "%s: %s lost or duplicated", lfx_dev_id(d[r]), pt);
		}
	}
	*key = lfx_dev_msg(d[0], lfx_dev_n_msgs(d[0]) - 1).key_id;
}

/* Rounds, one about every 200 ms, for at least min_ms of real time and
 * until want distinct key ids were seen, but never past max_ms (real time,
 * not scaled: the outage is what is tested, and the protocol's bound is in
 * real seconds). The distinct key ids seen, in order. */
static size_t rounds_for(struct lfx_dev **d, uint64_t min_ms, uint64_t max_ms, size_t want, uint32_t *keys,
                         size_t cap)
{
	size_t n = 0;
	uint64_t t0 = veil_test_now_ms(), end = t0 + max_ms;
	while (veil_test_now_ms() < end && (veil_test_now_ms() < t0 + min_ms || n < want)) {
		uint32_t k;
		round_of(d, &k);
		if ((!n || keys[n - 1] != k) && n < cap)
			keys[n++] = k;
		uint64_t next = veil_test_now_ms() + 200;
		while (veil_test_now_ms() < next && veil_test_now_ms() < end)
			veil_poll_pause(); /* pacing: the rounds spread over the outage */
	}
	return n;
}

/* Whether ks holds a key id old lacks. */
static bool gained(const struct lfx_keyset *ks, const struct lfx_keyset *old)
{
	for (size_t i = 0; i < ks->n; i++)
		if (!lfx_keyset_find(old, ks->k[i].key_id))
			return true;
	return false;
}

/* When keyd made its next periodic grant, as CLOCK_MONOTONIC ms: device d
 * gets a bundle with an epoch it never held, and keyd granted that epoch
 * at send_from - (lead + depth x period), a whole second of the wall clock
 * (KEYD.md): computed from the grant itself, so a late delivery on a
 * loaded machine does not move the kill point. */
static uint64_t next_grant(struct lfx_dev *d)
{
	static struct lfx_keyset old, now;
	ck_assert(lfx_dev_wait_applied(d, 1, 10000));
	lfx_dev_held(d, &old);
	ck_assert_uint_gt(old.n, 0);
	ck_assert_msg(VEIL_WAIT_UNTIL((lfx_dev_held(d, &now), gained(&now, &old)), (PERIOD + 5) * 1000),
	              "%s: no epoch granted within a period", lfx_dev_id(d));
	uint64_t from = 0;
	for (size_t i = 0; i < now.n; i++)
		if (!lfx_keyset_find(&old, now.k[i].key_id) && now.k[i].send_from > from)
			from = now.k[i].send_from;
	struct timespec wall;
	clock_gettime(CLOCK_REALTIME, &wall);
	uint64_t wall_ms = (uint64_t)wall.tv_sec * 1000U + (uint64_t)wall.tv_nsec / 1000000U;
	uint64_t granted_ms = (from - LEAD - DEPTH * PERIOD) * 1000U;
	ck_assert_msg(granted_ms <= wall_ms, "an epoch granted in the future?");
	uint64_t t = veil_test_now_ms() - (wall_ms - granted_ms);
	sodium_memzero(&old, sizeof(old));
	sodium_memzero(&now, sizeof(now));
	return t;
}

START_TEST(outage_shorter_than_depth)
{
	struct lfx_keyd k;
	lfx_keyd_new(&k, "keyd", "token_window 2\nrekey_grace 4\nscope fleet/# period 12 lead 6 grace 4 depth 2\n");
	_Static_assert(PERIOD == 12 && LEAD == 6 && DEPTH == 2, "the scope line above");
	lfx_keyd_start(&k, NULL);
	struct lfx_dev *d[N];
	lfx_fleet(d, N);
	/* keyd dies at the worst point: just before its next grant, where the
	 * least a device holds is K x period + lead = 30 s ahead (18 s under the
	 * old rule). Grants come a period apart, at whole seconds, and when
	 * keyd made the last one follows from its send_from, so the kill lands
	 * 2.5 s before the next however late the bundle was seen. The kill's
	 * point in the period is what is tested: there is no event to wait for. */
	uint64_t t_grant = next_grant(d[0]);
	uint64_t kill_at = t_grant + PERIOD * 1000 - KILL_BEFORE_GRANT_MS;
	while (veil_test_now_ms() < kill_at)
		veil_poll_pause();
	size_t applied[N];
	uint64_t t_kill = veil_test_now_ms();
	ck_assert_msg(t_kill < t_grant + PERIOD * 1000 - 1000,
	              "kill %llu ms after the grant: not before the next one (the grant was seen too late)",
	              (unsigned long long)(t_kill - t_grant));
	kill(k.pid, SIGKILL);
	ck_assert_int_eq(lfx_keyd_exit(&k, 5000), 128 + 9);
	uint32_t keys[16];
	size_t n = rounds_for(d, OUTAGE_MIN_MS, OUTAGE_MAX_MS, 2, keys, 16);
	ck_assert_msg(n >= 2, "no epoch boundary during the outage");
	/* Back: the traffic goes on across the next boundary, with the epochs
	 * keyd grants again. */
	for (int i = 0; i < N; i++)
		applied[i] = lfx_dev_applied(d[i]);
	lfx_keyd_start(&k, NULL);
	printf("FIGURE drill_keyd_outage_ms %llu epochs_used=%zu\n", (unsigned long long)(veil_test_now_ms() - t_kill),
	       n);
	size_t m = rounds_for(d, 0, 2 * PERIOD * 1000, 2, keys + n, 16 - n);
	ck_assert_uint_ge(m, 2);
	for (int i = 0; i < N; i++)
		ck_assert_msg(lfx_dev_wait_applied(d[i], applied[i] + 1, 2 * PERIOD * 1000), "no grant for %s after keyd "
		              "came back", lfx_dev_id(d[i]));
	for (int i = 0; i < N; i++) {
		ck_assert_uint_eq(lfx_dev_refused(d[i], 0), 0);
		ck_assert_uint_eq(lfx_dev_log_count(d[i], "no-key"), 0);
	}
	for (int i = 0; i < N; i++)
		lfx_dev_free(d[i]);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("drill_keyd_outage");
	TCase *tc = veil_tcase("keyd_outage", 150);
	tcase_add_checked_fixture(tc, setup, lfx_teardown);
	tcase_add_test(tc, outage_shorter_than_depth);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return veil_check_run(suite());
}
