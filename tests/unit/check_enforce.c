/*
 * Tests for plugin/enforce.c with real envelopes sealed by the core
 * (veil_envelope_seal) and real Ed25519 identities: a good unsigned and a
 * good signed envelope pass; plaintext, truncated, trailing garbage, wrong
 * sender (another client's id), unsigned on a signed topic, a signature by
 * another key, a tampered ciphertext and a re-routed topic are refused.
 * A declared bridge's envelopes: any sender id, the same structure checks,
 * and on signed topics the envelope's own credential and signature against
 * the trusted authorities, the clock and the revocation list.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "veil/veil.h"
#include "veil/envelope.h"
#include "veil/identity.h"

#include "../../core/bundle.h" /* struct veil__trust */
#include "enforce.h"
#include "topic.h"
#include "check_run.h"
#include "material.h"
#include "timing.h"

static struct veil_identity *authority, *alice, *mallory;
static uint8_t alice_pk[VEIL_PK_BYTES], mallory_pk[VEIL_PK_BYTES];
static uint8_t alice_sid[VEIL_SENDER_ID_BYTES], mallory_sid[VEIL_SENDER_ID_BYTES];
static uint8_t alice_cred[VEIL_CREDENTIAL_MAX];
static size_t alice_cred_len;
static uint8_t key[VEIL_KEY_BYTES];

static void setup(void)
{
	ck_assert_int_eq(veil_init(), VEIL_OK);
	ck_assert_int_eq(veil_identity_generate(&authority), VEIL_OK);
	ck_assert_int_eq(veil_identity_generate(&alice), VEIL_OK);
	ck_assert_int_eq(veil_identity_generate(&mallory), VEIL_OK);
	veil_identity_public(alice, alice_pk);
	veil_identity_public(mallory, mallory_pk);
	veil_sender_id(alice_pk, alice_sid);
	veil_sender_id(mallory_pk, mallory_sid);
	struct veil_credential c;
	memset(&c, 0, sizeof(c));
	c.issued_at = 1;
	c.expires_at = 4000000000ULL;
	memcpy(c.device_pk, alice_pk, VEIL_PK_BYTES);
	strcpy(c.client_id, "alice");
	ck_assert_int_eq(veil_credential_issue(authority, &c, alice_cred, sizeof(alice_cred), &alice_cred_len), VEIL_OK);
	for (size_t i = 0; i < sizeof(key); i++)
		key[i] = (uint8_t)(i * 7 + 1);
}

static void teardown(void)
{
	veil_identity_free(&authority);
	veil_identity_free(&alice);
	veil_identity_free(&mallory);
}

/* Seal "hello" on topic as sender sid, signed by signer (NULL: unsigned). */
static size_t seal(const char *topic, const uint8_t sid[VEIL_SENDER_ID_BYTES], const struct veil_identity *signer,
                   uint8_t *out, size_t cap)
{
	return test_envelope_make(key, 42, topic, sid, 1, signer, signer ? alice_cred : NULL,
	                          signer ? alice_cred_len : 0, "hello", out, cap);
}

static enum vp_refuse check(const char *topic, const uint8_t *buf, size_t len, uint8_t attrs, bool identity)
{
	struct vp_enforce_in in = {
		.topic = topic,
		.payload = buf,
		.len = len,
		.retain = false,
		.attrs = attrs,
		.max_payload = 0,
		.has_identity = identity,
		.sender_id = identity ? alice_sid : NULL,
		.device_pk = identity ? alice_pk : NULL,
	};
	return vp_enforce__check(&in);
}

#define ENC VP_ATTR_ENCRYPTED
#define SIG (VP_ATTR_ENCRYPTED | VP_ATTR_SIGNED)

START_TEST(good_envelopes)
{
	uint8_t buf[2048];
	size_t n = seal("s/t", alice_sid, NULL, buf, sizeof(buf));
	ck_assert_int_eq(check("s/t", buf, n, ENC, true), VP_REFUSE_NONE);
	n = seal("s/t", alice_sid, alice, buf, sizeof(buf));
	ck_assert_int_eq(check("s/t", buf, n, ENC, true), VP_REFUSE_NONE);
	ck_assert_int_eq(check("s/t", buf, n, SIG, true), VP_REFUSE_NONE);
	/* Unprotected topic: anything goes, even without identity. */
	ck_assert_int_eq(check("p", (const uint8_t *)"plain", 5, 0, false), VP_REFUSE_NONE);
}
END_TEST

START_TEST(refusals)
{
	uint8_t buf[2048];
	ck_assert_int_eq(check("s/t", (const uint8_t *)"plaintext!", 10, ENC, true), VP_REFUSE_NOT_ENVELOPE);
	/* Empty and not retained: named as receivers name it (PROTOCOL.md section 8). */
	ck_assert_int_eq(check("s/t", (const uint8_t *)"", 0, ENC, true), VP_REFUSE_EMPTY);
	ck_assert_int_eq(check("s/t", NULL, 0, SIG, true), VP_REFUSE_EMPTY);
	ck_assert_str_eq(vp_enforce__reason(VP_REFUSE_EMPTY), "empty-payload");
	size_t n = seal("s/t", alice_sid, NULL, buf, sizeof(buf));
	/* Truncated at several points, and trailing garbage on a signed one. */
	ck_assert_int_eq(check("s/t", buf, 1, ENC, true), VP_REFUSE_NOT_ENVELOPE);
	ck_assert_int_eq(check("s/t", buf, VEIL_HEADER_BYTES, ENC, true), VP_REFUSE_NOT_ENVELOPE);
	ck_assert_int_eq(check("s/t", buf, VEIL_OVERHEAD - 1, ENC, true), VP_REFUSE_NOT_ENVELOPE);
	buf[0] = 2; /* unknown version */
	ck_assert_int_eq(check("s/t", buf, n, ENC, true), VP_REFUSE_NOT_ENVELOPE);
	buf[0] = 1;
	buf[1] = 0x02; /* reserved flag bit */
	ck_assert_int_eq(check("s/t", buf, n, ENC, true), VP_REFUSE_NOT_ENVELOPE);
	/* Client without identity (anonymous / password login). */
	n = seal("s/t", alice_sid, NULL, buf, sizeof(buf));
	ck_assert_int_eq(check("s/t", buf, n, ENC, false), VP_REFUSE_NO_IDENTITY);
	/* Wrong sender: a client claims another client's sender id. */
	n = seal("s/t", mallory_sid, NULL, buf, sizeof(buf));
	ck_assert_int_eq(check("s/t", buf, n, ENC, true), VP_REFUSE_WRONG_SENDER);
	/* Unsigned on a signed topic. */
	n = seal("s/t", alice_sid, NULL, buf, sizeof(buf));
	ck_assert_int_eq(check("s/t", buf, n, SIG, true), VP_REFUSE_UNSIGNED);
	/* Signed by another key while claiming alice's id. */
	n = seal("s/t", alice_sid, mallory, buf, sizeof(buf));
	ck_assert_int_eq(check("s/t", buf, n, ENC, true), VP_REFUSE_NONE); /* structure only */
	ck_assert_int_eq(check("s/t", buf, n, SIG, true), VP_REFUSE_BAD_SIGNATURE);
	/* Tampered ciphertext and a message moved to another topic. */
	n = seal("s/t", alice_sid, alice, buf, sizeof(buf));
	buf[VEIL_HEADER_BYTES + 1] ^= 1;
	ck_assert_int_eq(check("s/t", buf, n, SIG, true), VP_REFUSE_BAD_SIGNATURE);
	n = seal("s/t", alice_sid, alice, buf, sizeof(buf));
	ck_assert_int_eq(check("s/other", buf, n, SIG, true), VP_REFUSE_BAD_SIGNATURE);
	/* Trailing bytes after a signed envelope. */
	n = seal("s/t", alice_sid, alice, buf, sizeof(buf));
	buf[n] = 0;
	ck_assert_int_ne(check("s/t", buf, n + 1, SIG, true), VP_REFUSE_NONE);
	ck_assert_str_eq(vp_enforce__reason(VP_REFUSE_WRONG_SENDER), "wrong-sender");
	ck_assert_str_eq(vp_enforce__reason(VP_REFUSE_NOT_ENVELOPE), "not-envelope");
	ck_assert_str_eq(vp_enforce__reason(VP_REFUSE_BAD_SIGNATURE), "bad-signature");
}
END_TEST

/* veil_envelope_parse no longer parses a signed envelope's credential (the
 * receiver reports it at step 5): the plugin still refuses a malformed one,
 * on signed and on encrypted topics, as strictly as when parsing did. */
START_TEST(malformed_credential)
{
	uint8_t buf[2048];
	size_t cred_off = VEIL_HEADER_BYTES + 5 + VEIL_TAG_BYTES;
	static const struct {
		size_t off;
		uint8_t val;
	} breaks[] = { { 0, 2 }, { 1, 0x01 }, { 74, 0 }, { 74, 200 } }; /* version, flags, client id length */
	for (size_t i = 0; i < sizeof(breaks) / sizeof(breaks[0]); i++) {
		size_t n = seal("s/t", alice_sid, alice, buf, sizeof(buf));
		buf[cred_off + breaks[i].off] = breaks[i].val;
		ck_assert_int_eq(check("s/t", buf, n, SIG, true), VP_REFUSE_MALFORMED_CREDENTIAL);
		ck_assert_int_eq(check("s/t", buf, n, ENC, true), VP_REFUSE_MALFORMED_CREDENTIAL);
	}
	/* A credential length of 0 or 1 byte inside a trailer that fits. */
	for (size_t cl = 0; cl < 2; cl++) {
		struct veil_seal_params p;
		memset(&p, 0, sizeof(p));
		p.key = key;
		p.key_id = 42;
		memcpy(p.sender, alice_sid, VEIL_SENDER_ID_BYTES);
		p.signer = alice;
		p.credential = alice_cred;
		p.credential_len = 1;
		size_t n = 0;
		ck_assert_int_eq(veil_envelope_seal(&p, "s/t", (const uint8_t *)"hello", 5, buf, sizeof(buf), &n), VEIL_OK);
		if (cl == 0) { /* drop the credential byte and say C = 0 */
			memmove(buf + cred_off, buf + cred_off + 1, n - cred_off - 1);
			n--;
			buf[n - VEIL_SIG_BYTES - 1] = 0;
		}
		ck_assert_int_eq(check("s/t", buf, n, SIG, true), VP_REFUSE_MALFORMED_CREDENTIAL);
	}
	ck_assert_str_eq(vp_enforce__reason(VP_REFUSE_MALFORMED_CREDENTIAL), "malformed-credential");
	/* The intact credential passes. */
	size_t n = seal("s/t", alice_sid, alice, buf, sizeof(buf));
	ck_assert_int_eq(check("s/t", buf, n, SIG, true), VP_REFUSE_NONE);
}
END_TEST

/* A credential for pk issued by by, valid [from, to). */
static size_t credential(const struct veil_identity *by, const uint8_t pk[VEIL_PK_BYTES], uint64_t from, uint64_t to,
                         uint8_t out[VEIL_CREDENTIAL_MAX])
{
	struct veil_credential c;
	memset(&c, 0, sizeof(c));
	c.issued_at = from;
	c.expires_at = to;
	memcpy(c.device_pk, pk, VEIL_PK_BYTES);
	strcpy(c.client_id, "alice");
	size_t n = 0;
	ck_assert_int_eq(veil_credential_issue(by, &c, out, VEIL_CREDENTIAL_MAX, &n), VEIL_OK);
	return n;
}

static size_t seal_cred(const char *topic, const uint8_t sid[VEIL_SENDER_ID_BYTES], const struct veil_identity *signer,
                        const uint8_t *cred, size_t cred_len, uint8_t *out, size_t cap)
{
	return test_envelope_make(key, 42, topic, sid, 1, signer, cred, cred_len, "hello", out, cap);
}

static bool revoke_alice;
static bool revoked(const struct veil_credential *c, void *ctx)
{
	(void)ctx;
	return revoke_alice && !strcmp(c->client_id, "alice");
}

static enum vp_refuse bridged(const char *topic, const uint8_t *buf, size_t len, uint8_t attrs,
                              const struct veil__trust *t)
{
	struct vp_enforce_in in = {
		.topic = topic, .payload = buf, .len = len, .attrs = attrs, .bridge = true, .trust = t,
	};
	return vp_enforce__check(&in);
}

START_TEST(bridge)
{
	uint8_t apk[1][VEIL_PK_BYTES];
	veil_identity_public(authority, apk[0]);
	struct veil__trust t = { .authorities = (const uint8_t(*)[VEIL_PK_BYTES])apk, .n_authorities = 1,
		                 .now = 1700000000, .revoked = revoked };
	uint8_t buf[2048];
	/* Encrypted topics: any sender's envelope (the bridge is nobody's
	 * sender), but only an envelope. */
	size_t n = seal("s/t", mallory_sid, NULL, buf, sizeof(buf));
	ck_assert_int_eq(bridged("s/t", buf, n, ENC, &t), VP_REFUSE_NONE);
	ck_assert_int_eq(check("s/t", buf, n, ENC, false), VP_REFUSE_NO_IDENTITY); /* the same, not a bridge */
	ck_assert_int_eq(bridged("s/t", (const uint8_t *)"plaintext!", 10, ENC, &t), VP_REFUSE_NOT_ENVELOPE);
	ck_assert_int_eq(bridged("s/t", buf, VEIL_OVERHEAD - 1, ENC, &t), VP_REFUSE_NOT_ENVELOPE);
	ck_assert_int_eq(bridged("s/t", NULL, 0, ENC, &t), VP_REFUSE_EMPTY);
	ck_assert_int_eq(bridged("p", (const uint8_t *)"plain", 5, 0, &t), VP_REFUSE_NONE);
	/* Signed topics: the envelope's own signer. */
	ck_assert_int_eq(bridged("s/t", buf, n, SIG, &t), VP_REFUSE_UNSIGNED);
	n = seal("s/t", alice_sid, alice, buf, sizeof(buf));
	ck_assert_int_eq(bridged("s/t", buf, n, SIG, &t), VP_REFUSE_NONE);
	ck_assert_int_eq(bridged("s/other", buf, n, SIG, &t), VP_REFUSE_BAD_SIGNATURE); /* moved */
	buf[VEIL_HEADER_BYTES + 1] ^= 1;
	ck_assert_int_eq(bridged("s/t", buf, n, SIG, &t), VP_REFUSE_BAD_SIGNATURE); /* tampered */
	n = seal("s/t", alice_sid, mallory, buf, sizeof(buf)); /* alice's credential, mallory's signature */
	ck_assert_int_eq(bridged("s/t", buf, n, SIG, &t), VP_REFUSE_BAD_SIGNATURE);
	n = seal("s/t", mallory_sid, alice, buf, sizeof(buf)); /* alice's credential and key, mallory's id */
	ck_assert_int_eq(bridged("s/t", buf, n, SIG, &t), VP_REFUSE_WRONG_SENDER);
	uint8_t cred[VEIL_CREDENTIAL_MAX];
	size_t cl = credential(mallory, alice_pk, 1, 4000000000ULL, cred); /* an untrusted authority */
	n = seal_cred("s/t", alice_sid, alice, cred, cl, buf, sizeof(buf));
	ck_assert_int_eq(bridged("s/t", buf, n, SIG, &t), VP_REFUSE_WRONG_AUTHORITY);
	cl = credential(authority, alice_pk, 1, 1600000000, cred);
	n = seal_cred("s/t", alice_sid, alice, cred, cl, buf, sizeof(buf));
	ck_assert_int_eq(bridged("s/t", buf, n, SIG, &t), VP_REFUSE_EXPIRED_CREDENTIAL);
	cl = credential(authority, alice_pk, 1800000000, 4000000000ULL, cred);
	n = seal_cred("s/t", alice_sid, alice, cred, cl, buf, sizeof(buf));
	ck_assert_int_eq(bridged("s/t", buf, n, SIG, &t), VP_REFUSE_CREDENTIAL_NOT_YET_VALID);
	n = seal("s/t", alice_sid, alice, buf, sizeof(buf));
	revoke_alice = true;
	ck_assert_int_eq(bridged("s/t", buf, n, SIG, &t), VP_REFUSE_REVOKED);
	revoke_alice = false;
	/* Nothing to trust: fail closed. */
	ck_assert_int_eq(bridged("s/t", buf, n, SIG, NULL), VP_REFUSE_WRONG_AUTHORITY);
	struct veil__trust none = { .authorities = NULL, .n_authorities = 0, .now = 1700000000 };
	ck_assert_int_eq(bridged("s/t", buf, n, SIG, &none), VP_REFUSE_WRONG_AUTHORITY);
	ck_assert_int_eq(bridged("s/t", buf, n, SIG, &t), VP_REFUSE_NONE);
	/* A malformed embedded credential, as for anyone. */
	buf[VEIL_HEADER_BYTES + 5 + VEIL_TAG_BYTES] = 2;
	ck_assert_int_eq(bridged("s/t", buf, n, ENC, &t), VP_REFUSE_MALFORMED_CREDENTIAL);
	ck_assert_str_eq(vp_enforce__reason(VP_REFUSE_WRONG_AUTHORITY), "wrong-authority");
	ck_assert_str_eq(vp_enforce__reason(VP_REFUSE_EXPIRED_CREDENTIAL), "expired-credential");
	ck_assert_str_eq(vp_enforce__reason(VP_REFUSE_CREDENTIAL_NOT_YET_VALID), "credential-not-yet-valid");
	ck_assert_str_eq(vp_enforce__reason(VP_REFUSE_REVOKED), "revoked");
}
END_TEST

START_TEST(retain_clear_and_size)
{
	struct vp_enforce_in in = { .topic = "s/t", .payload = NULL, .len = 0, .retain = true, .attrs = SIG };
	ck_assert_int_eq(vp_enforce__check(&in), VP_REFUSE_NONE); /* deleting a retained message */
	in.retain = false;
	ck_assert_int_eq(vp_enforce__check(&in), VP_REFUSE_NO_IDENTITY);
	/* max_payload applies to every topic, protected or not. */
	uint8_t big[300] = { 0 };
	struct vp_enforce_in s = { .topic = "p", .payload = big, .len = sizeof(big), .max_payload = 256 };
	ck_assert_int_eq(vp_enforce__check(&s), VP_REFUSE_TOO_LARGE);
	s.len = 256;
	ck_assert_int_eq(vp_enforce__check(&s), VP_REFUSE_NONE);
	ck_assert_int_eq(vp_enforce__check(NULL), VP_REFUSE_NOT_ENVELOPE);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("enforce");
	TCase *tc = veil_tcase("envelopes", 2);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, good_envelopes);
	tcase_add_test(tc, refusals);
	tcase_add_test(tc, malformed_credential);
	tcase_add_test(tc, bridge);
	tcase_add_test(tc, retain_clear_and_size);
	suite_add_tcase(s, tc);
	return veil_check_run(s);
}
