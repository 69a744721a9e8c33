/*
 * Drill: keyd down for a while (issue 13, "Compromise drills"), with real
 * components (tests/support/lifecycle_fixture.h). With pre-grant depth K
 * (here the default, 2), devices hold K - 1 periods beyond the current
 * epoch and its lead: an outage shorter than (K - 1) x period + lead loses
 * nothing (docs/KEYD.md). Periods of 12 s, lead 6 (18 s): keyd is killed
 * at no chosen point of the period and stays away at least 8 s and until
 * the devices crossed an epoch boundary (at most 14 s, which leaves keyd 4 s
 * to come back and grant before the least a device can hold runs out),
 * while three devices exchange QoS 1 messages; it comes back and the
 * traffic goes on across the next boundary. Nothing is lost or refused, no
 * publish finds no key, and the devices moved epochs on their own while
 * keyd was away.
 */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "veil/veil.h"

#include "check_run.h"
#include "lifecycle_fixture.h"
#include "timing.h"

#define N 3
#define PERIOD 12
#define OUTAGE_MIN_MS 8000
#define OUTAGE_MAX_MS 14000

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

START_TEST(outage_shorter_than_depth)
{
	struct lfx_keyd k;
	lfx_keyd_new(&k, "keyd", "token_window 2\nrekey_grace 4\nscope fleet/# period 12 lead 6 grace 4 depth 2\n");
	lfx_keyd_start(&k, NULL);
	struct lfx_dev *d[N];
	lfx_fleet(d, N);
	/* keyd dies at whatever point of the period the connects ended: the
	 * least a device then holds is (K - 1) x period + lead = 18 s ahead
	 * (right before a grant), more elsewhere. */
	size_t applied[N];
	uint64_t t_kill = veil_test_now_ms();
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
	TCase *tc = veil_tcase("keyd_outage", 120);
	tcase_add_checked_fixture(tc, setup, lfx_teardown);
	tcase_add_test(tc, outage_shorter_than_depth);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return veil_check_run(suite());
}
