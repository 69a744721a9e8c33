/*
 * Drill: a lost device (issue 13, "Compromise drills"), with real components
 * (tests/support/lifecycle_fixture.h). A device is stolen while offline:
 * the thief holds its identity, its state_dir and every key it ever held.
 * The operator revokes its credential, nothing more. Then:
 *   - keyd rekeys at once though the device is away: every remaining device
 *     applies a superseding epoch (FIGURE: the revocation to the last one);
 *   - the remaining devices keep exchanging, nothing lost, under the new
 *     epoch only;
 *   - nothing recorded after the rekey opens with any key the thief holds;
 *   - every remaining device holds keyd's statement naming the credential;
 *   - the thief cannot log in with the device's identity and credential.
 */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "veil/veil.h"

#include "check_run.h"
#include "lifecycle_fixture.h"
#include "timing.h"

#define N 4 /* the first one is lost */

static const char ACL[] = "role fleet\ntopic readwrite,encrypted fleet/#\n"
                          "role capture\ntopic read fleet/#\n";

static void setup(void)
{
	struct lfx_opts o = { .acl = ACL };
	lfx_setup(&o);
}

/* Every remaining device publishes one message tagged tag, and every
 * remaining device gets every one of them, exactly once. */
static void exchange(struct lfx_dev **d, int from, const char *tag)
{
	char pt[64];
	for (int s = from; s < N; s++) {
		snprintf(pt, sizeof(pt), "%s-%s", tag, lfx_dev_id(d[s]));
		ck_assert_int_eq(lfx_dev_pub(d[s], "fleet/x", pt), VEIL_OK);
	}
	for (int r = from; r < N; r++) {
		for (int s = from; s < N; s++) {
			snprintf(pt, sizeof(pt), "%s-%s", tag, lfx_dev_id(d[s]));
			if (!lfx_dev_wait_msg(d[r], pt, 10000))
				lfx_dev_dump(d[r]);
			ck_assert_msg(lfx_dev_count(d[r], pt) == 1, "%s: %s lost or duplicated", lfx_dev_id(d[r]), pt);
		}
	}
}

START_TEST(lost_device)
{
	struct lfx_keyd k;
	lfx_keyd_new(&k, "keyd", "token_window 3\nrekey_grace 5\nscope fleet/# period 3600 lead 600 grace 600\n");
	lfx_keyd_start(&k, NULL);
	const char *filters[] = { "fleet/#" };
	struct lfx_cap *cap = lfx_cap_start("capture", "capture", filters, 1);
	struct lfx_dev *d[N];
	struct lfx_dev_opts o = { .roles = "fleet" };
	for (int i = 0; i < N; i++) {
		char id[32];
		snprintf(id, sizeof(id), i ? "dev-%d" : "lost", i);
		d[i] = lfx_dev_new(id, &o);
		ck_assert_int_eq(lfx_dev_connect(d[i]), VEIL_OK);
		ck_assert_int_eq(lfx_dev_sub(d[i], "fleet/#"), VEIL_OK);
	}
	exchange(d, 0, "before");
	/* Stolen while offline: the thief has what it ever held. */
	struct lfx_keyset thief;
	lfx_dev_ever(d[0], &thief);
	ck_assert_uint_gt(thief.n, 0);
	struct veil_credential lost = *lfx_dev_cred(d[0]);
	char keys[400];
	snprintf(keys, sizeof(keys), "%s/keys", lfx_dev_state(d[0]));
	lfx_dev_free(d[0]);
	d[0] = NULL;
	ck_assert(lfx_keys_file(keys, &thief, NULL));
	size_t recorded_before = lfx_cap_n(cap);
	/* The operator's one step. */
	uint64_t t0 = veil_test_now_ms();
	lfx_revoke_credential(lost.id);
	for (int i = 1; i < N; i++) {
		if (!lfx_dev_wait_rekeyed(d[i], &thief, 10000))
			lfx_dev_dump(d[i]);
		ck_assert_msg(lfx_dev_rekeyed(d[i], &thief), "%s never got the rekey", lfx_dev_id(d[i]));
	}
	printf("FIGURE drill_lost_device_revocation_to_all_rekeyed_ms %llu\n",
	       (unsigned long long)(veil_test_now_ms() - t0));
	for (int i = 1; i < N; i++)
		ck_assert(lfx_dev_wait_log(d[i], "revocation statement: 2 new entries", 1, 10000));
	/* The others go on, under the new epoch only. */
	exchange(d, 1, "after");
	size_t n_after = 0;
	for (size_t i = 0; i < lfx_dev_n_msgs(d[1]); i++) {
		struct lfx_msg m = lfx_dev_msg(d[1], i);
		if (!strncmp(m.payload, "after-", 6)) {
			n_after++;
			ck_assert_msg(!lfx_keyset_find(&thief, m.key_id), "'%s' sealed under a key the thief holds", m.payload);
		}
	}
	ck_assert_uint_eq(n_after, N - 1);
	/* Nothing recorded since the rekey opens with the thief's keys; what
	 * was recorded before does. */
	size_t opened_before = 0;
	for (size_t i = 0; i < lfx_cap_n(cap); i++) {
		const struct lfx_cap_msg *m = lfx_cap_get(cap, i);
		char pt[256];
		bool opens = lfx_open(&thief, m->topic, m->payload, m->len, pt, sizeof(pt), NULL) == VEIL_OK;
		ck_assert_msg(!opens || i < recorded_before, "the thief opened '%s', recorded after the revocation",
		              opens ? pt : "");
		opened_before += opens;
	}
	ck_assert_uint_eq(opened_before, N);
	/* The thief logs in with the device's identity and credential: refused. */
	d[0] = lfx_dev_new("lost", &o);
	ck_assert_int_ne(lfx_dev_connect(d[0]), VEIL_OK);
	ck_assert(test_broker_log_wait(&lfx.broker, "auth | refuse | client=lost ", 5000));
	ck_assert(test_broker_log_contains(&lfx.broker, "reason=revoked"));
	for (int i = 0; i < N; i++)
		lfx_dev_free(d[i]);
	lfx_cap_free(cap);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("drill_lost_device");
	TCase *tc = veil_tcase("lost_device", 60);
	tcase_add_checked_fixture(tc, setup, lfx_teardown);
	tcase_add_test(tc, lost_device);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return veil_check_run(suite());
}
