/*
 * Drill: keyd's key is stolen (issue 13, "Compromise drills"), with real
 * components (tests/support/lifecycle_fixture.h).
 *
 * The attacker holds keyd's identity and credential and a login that may
 * publish on Veil's topics (the plugin lets any veil-keyd credential do
 * so: what protects a device is its own check). It reads a device's latest
 * request (its receive key) and hands it a bundle of its own, with a
 * version far above anything keyd will send, and a statement: the device
 * takes both. That is the compromise. (Once the operator's statement
 * revokes the stolen credential, the device forgets a version that
 * credential signed, so the new keyd's bundles are not refused as
 * outdated.) The operator's response: revoke
 * keyd's credential, give keyd a new identity and credential, restart it on
 * the same store. Then:
 *   - keyd supersedes every key the old identity issued (its log says so);
 *   - every device moves to it (the device the attacker froze included) and
 *     the fleet exchanges again under the new epoch, nothing lost;
 *   - every device holds the statement naming the old credential, and
 *     refuses the old identity's bundles and statements (`revoked`): the
 *     keys it holds stay as they are.
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
#include "lifecycle_fixture.h"
#include "timing.h"

#define N 3

static void setup(void)
{
	struct lfx_opts o = { .acl = "role fleet\ntopic readwrite,encrypted fleet/#\n" };
	lfx_setup(&o);
}

/* What the attacker took: keyd's identity and credential. */
struct stolen {
	struct veil_identity *id;
	uint8_t cred[VEIL_CREDENTIAL_MAX];
	size_t cred_len;
	struct veil_credential c;
};

static void steal(struct stolen *s)
{
	char key[400], cred[400];
	lfx_path(key, sizeof(key), "keyd.key");
	lfx_path(cred, sizeof(cred), "keyd.cred");
	ck_assert_int_eq(veil_identity_load(key, &s->id, NULL, 0), VEIL_OK);
	ck_assert_int_eq(veil_credential_load(cred, s->cred, sizeof(s->cred), &s->cred_len, NULL, 0), VEIL_OK);
	ck_assert_int_eq(veil_credential_parse(s->cred, s->cred_len, &s->c), VEIL_OK);
}

/* The newest request or acknowledgement d sent, as the attacker read it. */
static void last_devmsg(struct lfx_cap *cap, struct lfx_dev *d, struct veil__devmsg *out)
{
	char topic[200];
	snprintf(topic, sizeof(topic), "%s%s", VEIL__TOPIC_REQ_PREFIX, lfx_dev_id(d));
	bool found = false;
	for (size_t i = lfx_cap_n(cap); i > 0 && !found; i--) {
		const struct lfx_cap_msg *m = lfx_cap_get(cap, i - 1);
		found = !strcmp(m->topic, topic) && veil__devmsg_parse(m->payload, m->len, out) == VEIL_OK;
	}
	ck_assert_msg(found, "no request of %s read", lfx_dev_id(d));
}

#define EVIL_KEY_ID 0xFFFF0000U
#define EVIL_VERSION (UINT64_C(1) << 62)

/* A bundle to d, signed with the stolen key, sealed to the receive key of
 * d's latest device message: one epoch of the attacker's, with the given
 * version, and a statement naming a made-up credential. */
static void attack(struct lfx_cap *cap, const struct stolen *s, struct lfx_dev *d, uint64_t version)
{
	struct veil__devmsg m;
	last_devmsg(cap, d, &m);
	const struct veil_credential *c = lfx_dev_cred(d);
	uint8_t sid[VEIL_SENDER_ID_BYTES];
	veil_sender_id(c->device_pk, sid);
	uint64_t now = (uint64_t)time(NULL);
	struct veil__grant g = { .scope = "fleet/#", .key_id = EVIL_KEY_ID, .send_from = now - 10,
		                 .send_until = now + 3600, .accept_until = now + 7200, .flags = VEIL__GRANT_MAY_SEND };
	memset(g.key, 0x5a, sizeof(g.key));
	struct veil__bundle_params bp = { .keyd = s->id, .credential = s->cred, .credential_len = s->cred_len,
		                          .recipient_cred_id = c->id, .recipient_sender_id = sid,
		                          .recipient_client_id = c->client_id, .receive_pk = m.receive_pk,
		                          .echo_nonce = m.nonce, .version = version, .grants = &g, .n_grants = 1 };
	size_t len = veil__bundle_len(&bp), n = 0;
	uint8_t *buf = malloc(len);
	ck_assert_ptr_nonnull(buf);
	ck_assert_int_eq(veil__bundle_build(&bp, buf, len, &n), VEIL_OK);
	char topic[200];
	snprintf(topic, sizeof(topic), "%s%s", VEIL__TOPIC_BUNDLE_PREFIX, c->client_id);
	ck_assert_int_eq(lfx_cap_publish(cap, topic, buf, n, false), 0);
	free(buf);
	struct veil__rev_entry e = { .kind = VEIL__REV_CREDENTIAL, .keep_until = now + 3600 };
	randombytes_buf(e.id, VEIL_CREDENTIAL_ID_BYTES);
	struct veil__revstmt_params sp = { .keyd = s->id, .credential = s->cred, .credential_len = s->cred_len,
		                           .version = version, .issued_at = now, .entries = &e, .n_entries = 1 };
	len = veil__revstmt_len(1, s->cred_len);
	buf = malloc(len);
	ck_assert_ptr_nonnull(buf);
	ck_assert_int_eq(veil__revstmt_build(&sp, buf, len, &n), VEIL_OK);
	ck_assert_int_eq(lfx_cap_publish(cap, VEIL__TOPIC_REVOCATION, buf, n, false), 0);
	free(buf);
}

static void exchange(struct lfx_dev **d, const char *tag)
{
	char pt[64];
	for (int s = 0; s < N; s++) {
		snprintf(pt, sizeof(pt), "%s-%s", tag, lfx_dev_id(d[s]));
		int rc = lfx_dev_pub(d[s], "fleet/x", pt);
		ck_assert_msg(rc == VEIL_OK, "%s: %s refused (%s)", lfx_dev_id(d[s]), pt, veil_errname(rc));
	}
	for (int r = 0; r < N; r++) {
		for (int s = 0; s < N; s++) {
			snprintf(pt, sizeof(pt), "%s-%s", tag, lfx_dev_id(d[s]));
			if (!lfx_dev_wait_msg(d[r], pt, 10000))
				lfx_dev_dump(d[r]);
			ck_assert_msg(lfx_dev_count(d[r], pt) == 1, "%s: %s lost or duplicated", lfx_dev_id(d[r]), pt);
		}
	}
}

START_TEST(keyd_compromise)
{
	struct lfx_keyd k;
	lfx_keyd_new(&k, "keyd", "token_window 3\nrekey_grace 5\nscope fleet/# period 3600 lead 600 grace 600\n");
	lfx_keyd_start(&k, NULL);
	const char *filters[] = { VEIL__TOPIC_REQ_PREFIX "+" };
	struct lfx_cap *cap = lfx_cap_start("mallory", "veil-keyd", filters, 1);
	struct lfx_dev *d[N];
	lfx_fleet(d, N);
	exchange(d, "before");
	/* The compromise: dev-0 takes the attacker's bundle and statement. */
	struct stolen s;
	steal(&s);
	size_t applied = lfx_dev_applied(d[0]);
	ck_assert(lfx_dev_wait_log(d[0], "acknowledgement sent", 1, 10000));
	/* The highest version there is: the device must still move to the new
	 * keyd once the statement revokes this credential. */
	attack(cap, &s, d[0], EVIL_VERSION);
	ck_assert(lfx_dev_wait_applied(d[0], applied + 1, 10000));
	struct lfx_keyset held, pre = { 0 };
	lfx_dev_held(d[0], &held);
	ck_assert_ptr_nonnull(lfx_keyset_find(&held, EVIL_KEY_ID));
	for (int i = 0; i < N; i++)
		ck_assert(lfx_dev_wait_log(d[i], "revocation statement: 1 new entry", 1, 10000));
	for (int i = 0; i < N; i++) {
		struct lfx_keyset ever;
		lfx_dev_ever(d[i], &ever);
		for (size_t j = 0; j < ever.n; j++)
			if (!lfx_keyset_find(&pre, ever.k[j].key_id))
				pre.k[pre.n++] = ever.k[j];
	}
	/* The response: revoke keyd's credential; a new identity and
	 * credential; keyd again, on the same store. */
	lfx_revoke_credential(s.c.id);
	lfx_keyd_stop(&k);
	lfx_identity("keyd", "veil-keyd", "veil-keyd", 0, LFX_NEW_KEY, NULL);
	uint64_t t0 = veil_test_now_ms();
	lfx_keyd_start(&k, NULL);
	lfx_keyd_wait(&k, "keyd | identity-changed | ", 1, 5000);
	for (int i = 0; i < N; i++) {
		if (!lfx_dev_wait_rekeyed(d[i], &pre, 15000))
			lfx_dev_dump(d[i]);
		ck_assert_msg(lfx_dev_rekeyed(d[i], &pre), "%s did not move to the new keyd", lfx_dev_id(d[i]));
		ck_assert(lfx_dev_wait_log(d[i], "revocation statement: 1 new entry", 2, 10000));
	}
	printf("FIGURE drill_keyd_compromise_restart_to_all_moved_ms %llu\n",
	       (unsigned long long)(veil_test_now_ms() - t0));
	lfx_dev_held(d[0], &held);
	ck_assert_ptr_null(lfx_keyset_find(&held, EVIL_KEY_ID));
	exchange(d, "after");
	/* The old identity again, at every device, now with the highest
	 * version there is: refused, keys unchanged. */
	for (int i = 0; i < N; i++) {
		struct lfx_keyset was, now;
		lfx_dev_held(d[i], &was);
		attack(cap, &s, d[i], EVIL_VERSION + 1);
		/* Its own bundle, and the statements of the attacks so far (they
		 * go to every device), all refused as revoked. */
		const char *bundle_refused = "bundle refused: credential or client revoked (revoked)";
		const char *stmt_refused = "statement refused: credential or client revoked (revoked)";
		bool seen = lfx_dev_wait_log(d[i], bundle_refused, 1, 10000) &&
		            lfx_dev_wait_log(d[i], stmt_refused, (size_t)i + 1, 10000);
		if (!seen)
			lfx_dev_dump(d[i]);
		ck_assert(seen);
		ck_assert_uint_eq(lfx_dev_log_count(d[i], bundle_refused), 1);
		ck_assert_uint_eq(lfx_dev_log_count(d[i], stmt_refused), (size_t)i + 1);
		lfx_dev_held(d[i], &now);
		ck_assert_uint_eq(now.n, was.n);
		ck_assert_ptr_null(lfx_keyset_find(&now, EVIL_KEY_ID));
	}
	exchange(d, "still");
	veil_identity_free(&s.id);
	lfx_cap_free(cap);
	for (int i = 0; i < N; i++)
		lfx_dev_free(d[i]);
}
END_TEST

static Suite *suite(void)
{
	Suite *su = suite_create("drill_keyd_compromise");
	TCase *tc = veil_tcase("keyd_compromise", 60);
	tcase_add_checked_fixture(tc, setup, lfx_teardown);
	tcase_add_test(tc, keyd_compromise);
	suite_add_tcase(su, tc);
	return su;
}

int main(void)
{
	return veil_check_run(suite());
}
