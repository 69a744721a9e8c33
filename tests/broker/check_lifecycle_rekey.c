/*
 * Revocation triggers a rekey, end to end (issue 13, "Revocation triggers
 * rekey", "Receivers honour revocation"), with real components only
 * (tests/support/lifecycle_fixture.h): Mosquitto, veil-keyd, libveil devices.
 *
 * rekey_under_traffic: five devices on one shared scope (fleet/#, depth 0,
 * then keyd's default depth 2),
 * QoS 1 traffic from all of them. Right after keyd granted the next epoch
 * ahead, one device is revoked. Then:
 *   - the revoked device, holding every key it ever had (read from its
 *     state_dir each time it applied a bundle) and a capture of all
 *     traffic, opens no message sealed after its sender applied the rekey;
 *   - the four others keep exchanging, none of their messages lost or
 *     delivered twice;
 *   - none of them seals with a superseded epoch (every epoch the revoked
 *     one held, the one granted ahead included) after applying the rekey;
 *   - the broker disconnects the revoked device;
 * and it reports how many old-epoch messages were published after the
 * revocation (FIGURE lines).
 *
 * refused_without_plugin: through a broker that checks nothing, receivers
 * (libveil, and the preload around an unmodified Paho app, MQTTClient and
 * MQTTAsync) refuse a revoked device's signed envelopes (its credential) and
 * unsigned ones (its sender id) as `revoked`, from keyd's statement; and their
 * trusted authorities never grow from what keyd (or anyone posing as it)
 * sends: a device of another authority keyd serves stays refused
 * (`wrong-authority`), a bundle and a statement signed by a keyd credential
 * of that authority are refused.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "veil/veil.h"
#include "../../core/bundle.h"

#include "check_run.h"
#include "files.h"
#include "frontend_fixture.h"
#include "lifecycle_fixture.h"
#include "material.h"
#include "proc.h"
#include "timing.h"

#define N 5          /* devices; the last one is revoked */
#define ROUNDS_MAX 4000

static const char ACL[] = "role fleet\ntopic readwrite,encrypted fleet/#\n"
                          "role capture\ntopic read fleet/#\n";

static void setup_plugin(void)
{
	struct lfx_opts o = { .acl = ACL };
	lfx_setup(&o);
}

/* Payload flags: r, the revocation was written before it was sealed; a,
 * its sender had applied the rekey before it was sealed. */
static void payload(char *out, size_t cap, const char *id, int n, bool r, bool a)
{
	snprintf(out, cap, "%s-%d-%d%d", id, n, r, a);
}

static bool flags_of(const char *pt, bool *r, bool *a)
{
	const char *dash = strrchr(pt, '-');
	if (!dash || strlen(dash) != 3)
		return false;
	*r = dash[1] == '1';
	*a = dash[2] == '1';
	return true;
}

/* Run twice: depth 0 (the next epoch granted 7 s ahead, then revoked) and
 * keyd's default depth 2 (two more periods ahead as well: every epoch the
 * revoked device holds ahead must be superseded too). */
static const unsigned DEPTHS[] = { 0, 2 };

START_TEST(rekey_under_traffic)
{
	struct lfx_keyd k;
	char conf[160];
	snprintf(conf, sizeof(conf), "token_window 3\nrekey_grace 5\nscope fleet/# period 10 lead 7 grace 6 depth %u\n",
	         DEPTHS[_i]);
	lfx_keyd_new(&k, "keyd", conf);
	lfx_keyd_start(&k, NULL);
	const char *filters[] = { "fleet/#" };
	struct lfx_cap *cap = lfx_cap_start("capture", "capture", filters, 1);
	struct lfx_dev *d[N];
	char topic[N][64];
	lfx_fleet(d, N);
	for (int i = 0; i < N; i++)
		snprintf(topic[i], sizeof(topic[i]), "fleet/%s", lfx_dev_id(d[i]));
	struct lfx_dev *x = d[N - 1];
	/* Every device holds the current epoch and the next one, granted
	 * ahead (lead 7 s before it starts): revoke right then. */
	struct lfx_keyset held;
	for (int i = 0; i < N; i++) {
		bool two = VEIL_WAIT_UNTIL((lfx_dev_held(d[i], &held), held.n >= 2), 15000);
		if (!two)
			lfx_dev_dump(d[i]);
		ck_assert_msg(two, "%s never got the next epoch ahead", lfx_dev_id(d[i]));
	}
	struct lfx_keyset pre, xs;
	lfx_dev_ever(x, &pre);
	/* What it holds ahead: the next epoch, and with depth 2 one more at
	 * least (send_from within lead + 2 periods, 27 s). */
	ck_assert_uint_ge(pre.n, 1 + (DEPTHS[_i] ? DEPTHS[_i] : 1));
	/* QoS 1 traffic, round after round, from every device still allowed. */
	int sent[N] = { 0 };
	bool revoked = false;
	uint64_t t_revoke = 0, t_all = 0;
	int after_all = 0, x_after = 0;
	/* Sticky: the superseding epoch leaves a device's bundles once it is
	 * past (its next epoch is an ordinary one). */
	bool applied[N] = { false };
	struct veil_deadline dl = veil_deadline_in(30000);
	for (int round = 0; round < ROUNDS_MAX && after_all < 10; round++) {
		if (veil_deadline_passed(&dl)) {
			for (int i = 0; i < N; i++)
				lfx_dev_dump(d[i]);
			test_file_dump("keyd", k.log);
			ck_abort_msg("the rekey never reached every device (round %d)", round);
		}
		if (round == 3) {
			t_revoke = veil_test_now_ms();
			lfx_revoke("client dev-4");
			revoked = true;
		}
		bool all = revoked;
		for (int i = 0; i < N; i++) {
			applied[i] = applied[i] || lfx_dev_rekeyed(d[i], &pre);
			bool a = applied[i];
			char pt[96];
			payload(pt, sizeof(pt), lfx_dev_id(d[i]), sent[i], revoked, a);
			if (i == N - 1) {
				if (!lfx_dev_connected(x))
					continue;
				if (lfx_dev_pub(x, topic[i], pt) == VEIL_OK) {
					sent[i]++;
					x_after += revoked;
				}
				continue;
			}
			int rc = lfx_dev_pub(d[i], topic[i], pt);
			ck_assert_msg(rc == VEIL_OK, "%s: publish %s refused (%s)", lfx_dev_id(d[i]), pt, veil_errname(rc));
			sent[i]++;
			all = all && a;
		}
		if (all && !t_all)
			t_all = veil_test_now_ms();
		after_all += all;
	}
	if (after_all != 10) {
		for (int i = 0; i < N; i++)
			lfx_dev_dump(d[i]);
		test_file_dump("keyd", k.log);
	}
	ck_assert_int_eq(after_all, 10);
	/* The broker disconnected the revoked device, and its client saw the
	 * connection lost (not just a flag cleared by a failed publish). */
	ck_assert_msg(VEIL_WAIT_UNTIL(!lfx_dev_connected(x), 5000), "the revoked device is still connected");
	ck_assert_msg(lfx_dev_wait_lost(x, 5000), "the revoked device's connection-lost callback never ran");
	lfx_dev_ever(x, &xs);
	ck_assert_uint_eq(xs.n, pre.n); /* it got nothing after the revocation */
	/* Nor did keyd send it anything once it knew: no bundle to dev-4 in
	 * keyd's audit after its rekey for the revocation. */
	size_t klen = 0;
	char *klog = test_file_read(k.log, &klen);
	ck_assert_ptr_nonnull(klog);
	const char *rekey = strstr(klog, "revocation | rekey | client=dev-4 ");
	ck_assert_msg(rekey, "keyd logged no rekey for dev-4");
	ck_assert_msg(!strstr(rekey, "bundle | issue | client=dev-4 "), "keyd issued dev-4 a bundle after its rekey");
	free(klog);
	/* Each device's last message (sealed under the new epoch) reached
	 * every other: anything held for a bundle was released before it. */
	for (int r = 0; r < N - 1; r++) {
		for (int s = 0; s < N - 1; s++) {
			char pt[96];
			payload(pt, sizeof(pt), lfx_dev_id(d[s]), sent[s] - 1, true, true);
			if (!lfx_dev_wait_msg(d[r], pt, 10000))
				lfx_dev_dump(d[r]);
			ck_assert_msg(lfx_dev_count(d[r], pt) == 1, "%s never got %s", lfx_dev_id(d[r]), pt);
		}
	}
	/* Nothing lost among the others: every message of every remaining
	 * device at every remaining device, exactly once. And none sealed
	 * after its sender applied the rekey is under an epoch the revoked one
	 * held. */
	int old_after = 0;
	for (int r = 0; r < N - 1; r++) {
		for (int s = 0; s < N - 1; s++) {
			for (int n = 0; n < sent[s]; n++) {
				char pt[96];
				bool seen = false;
				for (int f = 0; f < 4 && !seen; f++) {
					payload(pt, sizeof(pt), lfx_dev_id(d[s]), n, f & 2, f & 1);
					if (lfx_dev_wait_msg(d[r], pt, 0))
						seen = true;
				}
				if (!seen) {
					lfx_dev_dump(d[r]);
					ck_abort_msg("%s lost message %d of %s", lfx_dev_id(d[r]), n, lfx_dev_id(d[s]));
				}
				ck_assert_uint_eq(lfx_dev_count(d[r], pt), 1);
			}
		}
		for (size_t i = 0; i < lfx_dev_n_msgs(d[r]); i++) {
			struct lfx_msg m = lfx_dev_msg(d[r], i);
			bool fr, fa;
			if (!flags_of(m.payload, &fr, &fa) || !strncmp(m.payload, "dev-4-", 6))
				continue;
			bool old = lfx_keyset_find(&xs, m.key_id) != NULL;
			ck_assert_msg(!(old && fa), "%s got '%s' sealed under superseded key 0x%08x after its sender applied "
			              "the rekey", lfx_dev_id(d[r]), m.payload, m.key_id);
			old_after += r == 0 && old && fr;
		}
		ck_assert_uint_eq(lfx_dev_refused(d[r], VEIL_ERR_UNKNOWN_KEY), 0);
	}
	/* The revoked device's keys against everything recorded. */
	size_t opened = 0, opened_after = 0;
	for (size_t i = 0; i < lfx_cap_n(cap); i++) {
		const struct lfx_cap_msg *m = lfx_cap_get(cap, i);
		char pt[256];
		bool fr, fa;
		if (lfx_open(&xs, m->topic, m->payload, m->len, pt, sizeof(pt), NULL) != VEIL_OK)
			continue;
		opened++;
		ck_assert(flags_of(pt, &fr, &fa));
		ck_assert_msg(!fa, "the revoked device opened '%s', sealed after the rekey", pt);
		opened_after += fr;
	}
	ck_assert_uint_gt(opened, 0); /* its keys do open what was sealed before */
	printf("FIGURE rekey_revocation_to_all_rekeyed_ms %llu\n", (unsigned long long)(t_all - t_revoke));
	printf("FIGURE rekey_old_epoch_messages_after_revocation remaining=%d revoked_device=%d "
	       "opened_by_revoked=%zu\n", old_after, x_after, opened_after);
	for (int i = 0; i < N; i++)
		lfx_dev_free(d[i]);
	lfx_cap_free(cap);
}
END_TEST

/* ---- through a broker that checks nothing ---- */

static void setup_bare(void)
{
	struct lfx_opts o = { .no_plugin = true,
		              .acl = "role fleet\ntopic readwrite,signed fleet/signed/#\n"
		                     "topic readwrite,encrypted fleet/plain/#\n" };
	lfx_setup(&o);
}

/* A bundle to r and a statement, signed by a keyd whose credential comes
 * from lfx.auth[1] (an authority r does not trust), published by cap. */
static void impostor(struct lfx_cap *cap, const struct veil_credential *r)
{
	struct veil_identity *kid = NULL;
	ck_assert_int_eq(veil_identity_generate(&kid), VEIL_OK);
	uint8_t cred[VEIL_CREDENTIAL_MAX];
	size_t cl = test_credential_make(lfx.auth[1], kid, "veil-keyd", "veil-keyd", 86400, cred);
	struct veil__grants *g = NULL;
	ck_assert_int_eq(veil__grants_new(1, &g), VEIL_OK);
	uint64_t now = (uint64_t)time(NULL);
	g->g[0] = (struct veil__grant){ .scope = "fleet/plain/#", .key_id = 0xF0000000U, .send_from = now - 1,
		                        .send_until = now + 3600, .accept_until = now + 7200,
		                        .flags = VEIL__GRANT_MAY_SEND };
	randombytes_buf(g->g[0].key, VEIL_KEY_BYTES);
	uint8_t sid[VEIL_SENDER_ID_BYTES], rx[VEIL__X25519_BYTES], nonce[VEIL__DEVMSG_NONCE_BYTES];
	veil_sender_id(r->device_pk, sid);
	randombytes_buf(rx, sizeof(rx));
	randombytes_buf(nonce, sizeof(nonce));
	struct veil__bundle_params bp = { .keyd = kid, .credential = cred, .credential_len = cl,
		                          .recipient_cred_id = r->id, .recipient_sender_id = sid,
		                          .recipient_client_id = r->client_id, .receive_pk = rx, .echo_nonce = nonce,
		                          .version = now * 1000000U * 2, .grants = g->g, .n_grants = 1 };
	size_t blen = veil__bundle_len(&bp), n = 0;
	uint8_t *buf = malloc(blen);
	ck_assert_ptr_nonnull(buf);
	ck_assert_int_eq(veil__bundle_build(&bp, buf, blen, &n), VEIL_OK);
	char topic[200];
	snprintf(topic, sizeof(topic), "%s%s", VEIL__TOPIC_BUNDLE_PREFIX, r->client_id);
	ck_assert_int_eq(lfx_cap_publish(cap, topic, buf, n, false), 0);
	free(buf);
	struct veil__rev_entry e = { .kind = VEIL__REV_CREDENTIAL, .keep_until = now + 3600 };
	memcpy(e.id, r->id, VEIL_CREDENTIAL_ID_BYTES);
	struct veil__revstmt_params sp = { .keyd = kid, .credential = cred, .credential_len = cl,
		                           .version = now * 1000000U * 2, .issued_at = now, .entries = &e,
		                           .n_entries = 1 };
	size_t slen = veil__revstmt_len(1, cl);
	buf = malloc(slen);
	ck_assert_ptr_nonnull(buf);
	ck_assert_int_eq(veil__revstmt_build(&sp, buf, slen, &n), VEIL_OK);
	ck_assert_int_eq(lfx_cap_publish(cap, VEIL__TOPIC_REVOCATION, buf, n, false), 0);
	free(buf);
	veil__grants_free(&g);
	veil_identity_free(&kid);
}

/* The preload as a receiver: the test binary run as a plain Paho app
 * (frontend_fixture.h) preloaded with a device config like the libveil
 * ones plus "log stderr" (refused messages are printed only then),
 * subscribed to fleet/#; its output in out. */
static pid_t preload_rx(enum ffx_fe fe, const char *id, char *out, size_t cap)
{
	char conf[320], name[96];
	const struct lfx_dev_opts o = { .roles = "fleet" };
	lfx_dev_conf(id, &o, "log stderr\n", conf, sizeof(conf));
	snprintf(name, sizeof(name), "%s.out", id);
	lfx_path(out, cap, name);
	pid_t pid = ffx_app_spawn_on(fe, lfx.broker.port, conf, out, "sub", "fleet/#", NULL);
	if (!test_file_wait(out, "subscribed\n", 15000)) {
		test_file_dump(id, out);
		ck_abort_msg("%s never subscribed", id);
	}
	return pid;
}

/* The preload's line for a message on topic dropped with err. */
static void drop_line(char *out, size_t cap, const char *topic, int err)
{
	snprintf(out, cap, "veil-preload: message on '%s' DROPPED: %s (%s)\n", topic, veil_strerror(err),
	         veil_errname(err));
}

static void preload_wait(const char *id, const char *out, const char *needle, int count)
{
	if (!test_file_wait_count(out, needle, count, 10000))
		test_file_dump(id, out);
	ck_assert_msg(test_file_count(out, needle) == count, "%s: '%s' %d times, not %d", id, needle,
	              test_file_count(out, needle), count);
}

START_TEST(refused_without_plugin)
{
	/* keyd serves the fleets of both authorities; the receiver trusts only
	 * the first (keyd's), as does the device to be revoked. */
	lfx_trust(3U);
	struct lfx_keyd k;
	lfx_keyd_new(&k, "keyd", "token_window 3\nrekey_grace 60\n"
	                         "scope fleet/signed/# period 3600 lead 600 grace 600\n"
	                         "scope fleet/plain/# period 3600 lead 600 grace 600\n");
	lfx_keyd_start(&k, NULL);
	/* No keyring file: the authorities file alone decides whose signed
	 * messages open (it once took a keyring of "authority" lines). */
	struct lfx_dev_opts o = { .roles = "fleet" }, o1 = { .roles = "fleet", .authority = 1, .trust = 3U };
	struct lfx_dev *r = lfx_dev_new("recv", &o), *x = lfx_dev_new("lost", &o), *y = lfx_dev_new("other", &o1);
	struct lfx_dev *all[] = { r, x, y };
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(lfx_dev_connect(all[i]), VEIL_OK);
	ck_assert_int_eq(lfx_dev_sub(r, "fleet/#"), VEIL_OK);
	static const char *const pname[2] = { "precv-sync", "precv-async" };
	char pout[2][320];
	pid_t pp[2];
	for (int i = 0; i < 2; i++)
		pp[i] = preload_rx(i ? FFX_PASYNC : FFX_PSYNC, pname[i], pout[i], sizeof(pout[i]));
	/* Before: both of the device's envelopes open; the other authority's
	 * signed one does not. */
	ck_assert_int_eq(lfx_dev_pub(x, "fleet/signed/lost", "before-signed"), VEIL_OK);
	ck_assert_int_eq(lfx_dev_pub(x, "fleet/plain/lost", "before-plain"), VEIL_OK);
	ck_assert_int_eq(lfx_dev_pub(y, "fleet/signed/other", "other-1"), VEIL_OK);
	if (!lfx_dev_wait_msg(r, "before-signed", 10000))
		lfx_dev_dump(r);
	ck_assert(lfx_dev_count(r, "before-signed") == 1);
	ck_assert(lfx_dev_wait_msg(r, "before-plain", 10000));
	ck_assert(lfx_dev_wait_refused(r, VEIL_ERR_WRONG_AUTHORITY, 1, 10000));
	char line[2][256];
	drop_line(line[0], sizeof(line[0]), "fleet/signed/lost", VEIL_ERR_REVOKED);
	drop_line(line[1], sizeof(line[1]), "fleet/plain/lost", VEIL_ERR_REVOKED);
	for (int i = 0; i < 2; i++) {
		preload_wait(pname[i], pout[i], "got fleet/signed/lost before-signed\n", 1);
		preload_wait(pname[i], pout[i], "got fleet/plain/lost before-plain\n", 1);
		ck_assert_int_eq(test_file_count(pout[i], line[0]) + test_file_count(pout[i], line[1]), 0);
	}
	/* Revoked (keyd reads the list; this broker does not). */
	size_t applied = lfx_dev_applied(r);
	lfx_revoke("client lost");
	ck_assert_msg(lfx_dev_wait_log(r, "revocation statement: 2 new entries", 1, 10000), "no statement");
	ck_assert(lfx_dev_wait_applied(r, applied + 1, 10000)); /* and the rekey */
	for (int i = 0; i < 2; i++)
		preload_wait(pname[i], pout[i], "veil-preload: revocation statement: 2 new entries\n", 1);
	/* The device still seals with the epochs it holds and this broker
	 * delivers them: the receiver authenticates them (it keeps the old
	 * epoch for the rekey grace) and refuses them, both. */
	size_t before = lfx_dev_refused(r, VEIL_ERR_REVOKED);
	ck_assert_int_eq(lfx_dev_pub(x, "fleet/signed/lost", "after-signed"), VEIL_OK);
	ck_assert_int_eq(lfx_dev_pub(x, "fleet/plain/lost", "after-plain"), VEIL_OK);
	if (!lfx_dev_wait_refused(r, VEIL_ERR_REVOKED, before + 2, 10000))
		lfx_dev_dump(r);
	ck_assert_uint_eq(lfx_dev_refused(r, VEIL_ERR_REVOKED), before + 2);
	ck_assert_uint_eq(lfx_dev_count(r, "after-signed") + lfx_dev_count(r, "after-plain"), 0);
	/* The preload too: each refused as `revoked`, neither handed to the app. */
	for (int i = 0; i < 2; i++) {
		preload_wait(pname[i], pout[i], line[0], 1);
		preload_wait(pname[i], pout[i], line[1], 1);
		ck_assert_int_eq(test_file_count(pout[i], " after-signed\n") + test_file_count(pout[i], " after-plain\n"), 0);
		test_stop(pp[i]);
	}
	/* Posing as keyd with the other authority's credential: refused, and
	 * the receiver's authorities are what they were. */
	struct lfx_cap *cap = lfx_cap_start("mallory", NULL, NULL, 0);
	impostor(cap, lfx_dev_cred(r));
	ck_assert(lfx_dev_wait_log(r, "(wrong-authority)", 2, 10000));
	ck_assert_uint_eq(lfx_dev_log_count(r, "bundle refused"), 1);
	ck_assert_uint_eq(lfx_dev_log_count(r, "revocation statement refused"), 1);
	ck_assert_int_eq(lfx_dev_pub(y, "fleet/signed/other", "other-2"), VEIL_OK);
	ck_assert(lfx_dev_wait_refused(r, VEIL_ERR_WRONG_AUTHORITY, 2, 10000));
	ck_assert_uint_eq(lfx_dev_count(r, "other-1") + lfx_dev_count(r, "other-2"), 0);
	/* The receiver still takes messages from a device in good standing. */
	ck_assert_int_eq(lfx_dev_pub(r, "fleet/plain/recv", "still-fine"), VEIL_OK);
	ck_assert(lfx_dev_wait_msg(r, "still-fine", 10000));
	lfx_cap_free(cap);
	for (int i = 0; i < 3; i++)
		lfx_dev_free(all[i]);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("lifecycle_rekey");
	TCase *tc = veil_tcase("rekey", 90);
	tcase_add_checked_fixture(tc, setup_plugin, lfx_teardown);
	tcase_add_loop_test(tc, rekey_under_traffic, 0, (int)(sizeof(DEPTHS) / sizeof(DEPTHS[0])));
	suite_add_tcase(s, tc);
	tc = veil_tcase("without_plugin", 60);
	tcase_add_checked_fixture(tc, setup_bare, lfx_teardown);
	tcase_add_test(tc, refused_without_plugin);
	suite_add_tcase(s, tc);
	return s;
}

int main(int argc, char **argv)
{
	int app = ffx_main(argc, argv); /* the preload's Paho app (preload_rx) */
	if (app >= 0)
		return app;
	return veil_check_run(suite());
}
