/*
 * Drill: keyd crashes in the middle of a rekey (issue 13, "Compromise
 * drills"), with real components (tests/support/lifecycle_fixture.h).
 *
 * Nine devices on one shared scope; one is revoked, so the rekey is eight
 * bundles. keyd, started with VEIL_KEYD_CRASH_AFTER=4 (test builds only:
 * one publish in flight at a time, SIGKILL after the 4th PUBACK), dies
 * after exactly half of them reached the broker. While it is down the
 * devices keep exchanging: the four with the new epoch send with it, the
 * others with the old one; each side opens the other's messages (the old
 * epoch stays accepted for the rekey grace; a message under the new one
 * waits until its receiver's bundle comes). keyd restarts: the four
 * bundles the broker never had go out, no device is left without the new
 * epoch, the epoch is the one the first half got (no second rekey, no epoch
 * skipped), and nothing was lost.
 */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "veil/veil.h"

#include "check_run.h"
#include "lifecycle_fixture.h"
#include "timing.h"

#define N 9 /* the last one is revoked */
#define HALF ((N - 1) / 2)

static void setup(void)
{
	struct lfx_opts o = { .acl = "role fleet\ntopic readwrite,encrypted fleet/#\n" };
	lfx_setup(&o);
}

static int sent[N];

/* Every remaining device publishes one message; none is waited for. */
static void round_of(struct lfx_dev **d, const char *tag)
{
	for (int s = 0; s < N - 1; s++) {
		char pt[64];
		snprintf(pt, sizeof(pt), "%s-%d-%s", tag, sent[s]++, lfx_dev_id(d[s]));
		ck_assert_int_eq(lfx_dev_pub(d[s], "fleet/x", pt), VEIL_OK);
	}
}

START_TEST(crash_mid_rekey)
{
	struct lfx_keyd k;
	lfx_keyd_new(&k, "keyd", "token_window 3\nrekey_grace 30\nscope fleet/# period 3600 lead 600 grace 600\n");
	lfx_keyd_start(&k, NULL);
	struct lfx_dev *d[N];
	lfx_fleet(d, N);
	round_of(d, "a");
	/* keyd again, with the hook: every bundle acknowledged so far is in its
	 * store, so what it publishes from now on is the rekey's. */
	lfx_keyd_stop(&k);
	const char *env[] = { "VEIL_KEYD_CRASH_AFTER=4", NULL };
	lfx_keyd_start(&k, env);
	struct lfx_keyset pre;
	struct lfx_key e;
	lfx_dev_ever(d[N - 1], &pre);
	lfx_revoke("client dev-8");
	ck_assert_int_eq(lfx_keyd_exit(&k, 20000), 128 + 9);
	ck_assert_int_eq(lfx_keyd_count(&k, "test | crash | after=4"), 1);
	/* Exactly half got the rekey: four bundles reached the broker, and the
	 * window of one held the fifth back. */
	int got = 0;
	ck_assert(VEIL_WAIT_UNTIL(({
		got = 0;
		for (int i = 0; i < N - 1; i++)
			got += lfx_dev_rekeyed(d[i], &pre);
		got >= HALF;
	}), 10000));
	round_of(d, "b"); /* keyd down; half on each epoch */
	round_of(d, "c");
	got = 0;
	for (int i = 0; i < N - 1; i++)
		got += lfx_dev_rekeyed(d[i], &pre);
	ck_assert_int_eq(got, HALF);
	uint32_t first = 0;
	for (int i = 0; i < N - 1 && !first; i++)
		first = lfx_dev_rekey_epoch(d[i], &pre, &e) ? e.key_id : 0;
	ck_assert_uint_ne(first, 0);
	/* Restarted: nobody is left without the new epoch, and it is the same
	 * one everywhere. */
	uint64_t t0 = veil_test_now_ms();
	lfx_keyd_start(&k, NULL);
	uint32_t max_pre_epoch = 0;
	for (size_t i = 0; i < pre.n; i++)
		max_pre_epoch = pre.k[i].epoch > max_pre_epoch ? pre.k[i].epoch : max_pre_epoch;
	for (int i = 0; i < N - 1; i++) {
		if (!lfx_dev_wait_rekeyed(d[i], &pre, 10000))
			lfx_dev_dump(d[i]);
		ck_assert_msg(lfx_dev_rekey_epoch(d[i], &pre, &e), "%s has no current key after the restart",
		              lfx_dev_id(d[i]));
		ck_assert_uint_eq(e.key_id, first);
		ck_assert_uint_eq(e.epoch, max_pre_epoch + 1); /* no epoch skipped */
	}
	printf("FIGURE drill_keyd_restart_to_all_rekeyed_ms %llu\n", (unsigned long long)(veil_test_now_ms() - t0));
	ck_assert_int_eq(lfx_keyd_count(&k, "epoch | rotate | instance=fleet/# "), 1);
	/* Nothing lost: every message of every round at every remaining device,
	 * once (the ones held for their receiver's bundle included). */
	round_of(d, "d");
	const char *tags[] = { "a", "b", "c", "d" };
	for (int r = 0; r < N - 1; r++) {
		for (int s = 0; s < N - 1; s++) {
			for (int n = 0; n < sent[s]; n++) {
				char pt[64];
				snprintf(pt, sizeof(pt), "%s-%d-%s", tags[n], n, lfx_dev_id(d[s]));
				if (!lfx_dev_wait_msg(d[r], pt, 10000))
					lfx_dev_dump(d[r]);
				ck_assert_msg(lfx_dev_count(d[r], pt) == 1, "%s: %s lost or duplicated", lfx_dev_id(d[r]), pt);
			}
		}
		ck_assert_uint_eq(lfx_dev_refused(d[r], 0), 0);
	}
	for (int i = 0; i < N; i++)
		lfx_dev_free(d[i]);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("drill_keyd_crash");
	TCase *tc = veil_tcase("keyd_crash", 90);
	tcase_add_checked_fixture(tc, setup, lfx_teardown);
	tcase_add_test(tc, crash_mid_rekey);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return veil_check_run(suite());
}
