/*
 * Drill: the authority is rotated (issue 13, "Compromise drills";
 * docs/SECURITY.md section 6), with real components
 * (tests/support/lifecycle_fixture.h).
 *
 * The old and the new authority are trusted side by side (plugin, keyd,
 * devices); keyd and two devices get credentials from the new one (keyd
 * picks its new credential up without a restart); a third device lags
 * behind. The old authority is removed. Then:
 *   - the broker disconnects the laggard and refuses it;
 *   - keyd, disconnected too (its connection was made with its old
 *     credential), logs in again with the new one, rekeys what the laggard
 *     held and names it in its statement;
 *   - the two others keep exchanging, nothing lost, under the new epoch;
 *   - the laggard's envelopes, sealed with the epoch it still holds and
 *     carried in by a bridge from a node that checks nothing, are refused
 *     by the receivers (`revoked`), though the receivers still trust the
 *     old authority themselves.
 */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "veil/veil.h"

#include "check_run.h"
#include "lifecycle_fixture.h"
#include "material.h"
#include "timing.h"

static void setup(void)
{
	char pw[512];
	test_passwd_line(pw, sizeof(pw), "node-b", "pw-node-b");
	struct lfx_opts o = { .acl = "role fleet\ntopic readwrite,encrypted fleet/#\nuser node-b\ntopic readwrite fleet/#\n",
		              .broker_extra = "plugin_opt_bridge_user node-b\n",
		              .passwd = pw };
	lfx_setup(&o);
}

static void exchange(struct lfx_dev **d, size_t n, const char *tag)
{
	char pt[64];
	for (size_t s = 0; s < n; s++) {
		snprintf(pt, sizeof(pt), "%s-%s", tag, lfx_dev_id(d[s]));
		int rc = lfx_dev_pub(d[s], "fleet/x", pt);
		ck_assert_msg(rc == VEIL_OK, "%s: %s refused (%s)", lfx_dev_id(d[s]), pt, veil_errname(rc));
	}
	for (size_t r = 0; r < n; r++) {
		for (size_t s = 0; s < n; s++) {
			snprintf(pt, sizeof(pt), "%s-%s", tag, lfx_dev_id(d[s]));
			if (!lfx_dev_wait_msg(d[r], pt, 10000))
				lfx_dev_dump(d[r]);
			ck_assert_msg(lfx_dev_count(d[r], pt) == 1, "%s: %s lost or duplicated", lfx_dev_id(d[r]), pt);
		}
	}
}

START_TEST(authority_rotation)
{
	struct lfx_keyd k;
	lfx_keyd_new(&k, "keyd", "token_window 3\nrekey_grace 60\nscope fleet/# period 3600 lead 600 grace 600\n");
	lfx_keyd_start(&k, NULL);
	struct lfx_dev_opts old = { .roles = "fleet" };
	struct lfx_dev *d[3] = { lfx_dev_new("dev-1", &old), lfx_dev_new("dev-2", &old), lfx_dev_new("laggard", &old) };
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(lfx_dev_connect(d[i]), VEIL_OK);
		ck_assert_int_eq(lfx_dev_sub(d[i], "fleet/#"), VEIL_OK);
	}
	exchange(d, 3, "old");
	/* Side by side. */
	int reloads = lfx_keyd_count(&k, "config | reload | ");
	lfx_trust(3U);
	lfx_keyd_wait(&k, "config | reload | ", reloads + 1, 5000);
	/* keyd re-credentialed by the new authority: read within a second. */
	lfx_identity("keyd", "veil-keyd", "veil-keyd", 1, LFX_NEW_CRED, NULL);
	lfx_keyd_wait(&k, "config | reload | ", reloads + 2, 5000);
	/* Two devices re-credentialed, trusting both. */
	struct lfx_dev_opts neu = { .roles = "fleet", .authority = 1, .trust = 3U, .reissue = true };
	for (int i = 0; i < 2; i++) {
		size_t applied = lfx_dev_applied(d[i]);
		lfx_dev_renew(d[i], &neu);
		ck_assert_int_eq(lfx_dev_connect(d[i]), VEIL_OK);
		ck_assert_int_eq(lfx_dev_sub(d[i], "fleet/#"), VEIL_OK);
		ck_assert(lfx_dev_wait_applied(d[i], applied + 1, 10000));
	}
	exchange(d, 3, "both");
	struct lfx_keyset lag;
	lfx_dev_ever(d[2], &lag);
	/* The old authority goes. */
	uint64_t t0 = veil_test_now_ms();
	int subscribed = lfx_keyd_count(&k, "mqtt | subscribed");
	lfx_trust(2U);
	ck_assert_msg(VEIL_WAIT_UNTIL(!lfx_dev_connected(d[2]), 5000), "the laggard is still connected");
	for (int i = 0; i < 2; i++) {
		if (!lfx_dev_wait_rekeyed(d[i], &lag, 10000))
			lfx_dev_dump(d[i]);
		ck_assert_msg(lfx_dev_rekeyed(d[i], &lag), "%s never got the rekey", lfx_dev_id(d[i]));
		ck_assert(lfx_dev_wait_log(d[i], "revocation statement: 2 new entries", 1, 10000));
	}
	printf("FIGURE drill_authority_removed_to_all_rekeyed_ms %llu\n", (unsigned long long)(veil_test_now_ms() - t0));
	lfx_keyd_wait(&k, "mqtt | subscribed", subscribed + 1, 10000); /* logged in again, new credential */
	lfx_keyd_wait(&k, "revocation | rekey | client=laggard instances=1", 1, 1000);
	exchange(d, 2, "new");
	/* The laggard again, at this broker: refused. */
	lfx_dev_renew(d[2], &old);
	ck_assert_int_ne(lfx_dev_connect(d[2]), VEIL_OK);
	/* And through a node that checks nothing, bridged in: its envelopes
	 * reach the receivers, which refuse them. */
	struct test_broker b;
	char conf[1024];
	snprintf(conf, sizeof(conf),
	         "allow_anonymous true\nconnection to-a\naddress 127.0.0.1:%d\nbridge_protocol_version mqttv311\n"
	         "remote_clientid node-b\nremote_username node-b\nremote_password pw-node-b\ntry_private true\n"
	         "cleansession true\nnotifications false\ntopic fleet/# out 1\n",
	         lfx.broker.port);
	ck_assert_int_eq(test_broker_start(&b, conf), 0);
	ck_assert(test_broker_log_wait(&lfx.broker, "method=bridge user=node-b", 10000));
	char uri[64];
	snprintf(uri, sizeof(uri), "tcp://127.0.0.1:%d", b.port);
	struct lfx_dev_opts there = { .roles = "fleet", .uri = uri };
	lfx_dev_renew(d[2], &there);
	ck_assert_int_eq(lfx_dev_connect(d[2]), VEIL_OK);
	size_t before[2];
	for (int i = 0; i < 2; i++)
		before[i] = lfx_dev_refused(d[i], VEIL_ERR_REVOKED);
	ck_assert_int_eq(lfx_dev_pub(d[2], "fleet/x", "from-the-laggard"), VEIL_OK);
	for (int i = 0; i < 2; i++) {
		if (!lfx_dev_wait_refused(d[i], VEIL_ERR_REVOKED, before[i] + 1, 10000))
			lfx_dev_dump(d[i]);
		ck_assert_uint_eq(lfx_dev_refused(d[i], VEIL_ERR_REVOKED), before[i] + 1);
		ck_assert_uint_eq(lfx_dev_count(d[i], "from-the-laggard"), 0);
	}
	for (int i = 0; i < 3; i++)
		lfx_dev_free(d[i]);
	test_broker_stop(&b);
	test_broker_cleanup(&b);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("drill_authority_rotation");
	TCase *tc = veil_tcase("authority_rotation", 60);
	tcase_add_checked_fixture(tc, setup, lfx_teardown);
	tcase_add_test(tc, authority_rotation);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return veil_check_run(suite());
}
