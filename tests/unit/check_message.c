/* Tests for core/message.c: every distinct refusal of veil_message_open and
 * the keyring-driven sealing policy. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "veil/veil.h"
#include "../../core/internal.h"
#include "check_run.h"
#include "timing.h"

static struct veil_identity *auth, *dev, *rogue_auth;
static uint8_t cred[VEIL_CREDENTIAL_MAX], rogue_cred[VEIL_CREDENTIAL_MAX];
static size_t cred_len, rogue_cred_len;
static struct veil_keyring *kr, *kr_other_key;
static struct veil_seq *seq;
static struct veil_replay *rp;
static struct veil_sender snd;
static const uint64_t NOW = 1800000000;

static size_t issue(struct veil_identity *a, uint64_t exp, uint8_t *out)
{
	struct veil_credential c = { 0 };
	veil_identity_public(dev, c.device_pk);
	strcpy(c.client_id, "dev-1");
	c.issued_at = 1;
	c.expires_at = exp;
	size_t n = 0;
	ck_assert_int_eq(veil_credential_issue(a, &c, out, VEIL_CREDENTIAL_MAX, &n), VEIL_OK);
	return n;
}

static struct veil_keyring *keyring(uint8_t fill_a)
{
	char pk64[64], ka[64], kb[64], text[1024];
	uint8_t apk[32], k[32];
	veil_identity_public(auth, apk);
	sodium_bin2base64(pk64, sizeof(pk64), apk, 32, sodium_base64_VARIANT_ORIGINAL);
	memset(k, fill_a, 32);
	sodium_bin2base64(ka, sizeof(ka), k, 32, sodium_base64_VARIANT_ORIGINAL);
	memset(k, 0x77, 32);
	sodium_bin2base64(kb, sizeof(kb), k, 32, sodium_base64_VARIANT_ORIGINAL);
	snprintf(text, sizeof(text),
	         "authority %s\n"
	         "key sensors/# 1 %s\n"
	         "key cmd/# 2 %s\npolicy cmd/# signed\n"
	         "policy public/# plaintext\n"
	         "key mixed/# 3 %s\npolicy mixed/# plaintext\n",
	         pk64, ka, kb, kb);
	/* key 3 reuses key 2's bytes under another id, on purpose. */
	struct veil_keyring *r = NULL;
	char err[256];
	ck_assert_msg(veil_keyring_parse(text, strlen(text), "t", &r, err, sizeof(err)) == VEIL_OK, "%s", err);
	return r;
}

static void setup(void)
{
	ck_assert_int_eq(veil_init(), VEIL_OK);
	ck_assert_int_eq(veil_identity_generate(&auth), VEIL_OK);
	ck_assert_int_eq(veil_identity_generate(&rogue_auth), VEIL_OK);
	ck_assert_int_eq(veil_identity_generate(&dev), VEIL_OK);
	cred_len = issue(auth, NOW + 1000, cred);
	rogue_cred_len = issue(rogue_auth, NOW + 1000, rogue_cred);
	kr = keyring(0x11);
	kr_other_key = keyring(0x12);
	ck_assert_int_eq(veil_seq_open(NULL, 1000, &seq), VEIL_OK);
	ck_assert_int_eq(veil_replay_new(64, &rp), VEIL_OK);
	snd = (struct veil_sender){ dev, cred, cred_len, seq };
}

static void teardown(void)
{
	veil_identity_free(&auth);
	veil_identity_free(&rogue_auth);
	veil_identity_free(&dev);
	veil_keyring_free(&kr);
	veil_keyring_free(&kr_other_key);
	veil_seq_close(&seq);
	veil_replay_free(&rp);
}

static size_t seal_to(const char *topic, const char *msg, bool sign, uint8_t *out, size_t cap)
{
	size_t n = 0;
	bool sealed = false;
	ck_assert_int_eq(veil_message_seal(kr, &snd, topic, (const uint8_t *)msg, strlen(msg), sign, out, cap, &n,
	                                   &sealed),
	                 VEIL_OK);
	ck_assert(sealed);
	return n;
}

static int open_on(const struct veil_keyring *k, const char *topic, const uint8_t *env, size_t n,
                   struct veil_open_info *info)
{
	uint8_t out[2048];
	size_t ol = 0;
	return veil_message_open(k, rp, topic, env, n, NOW, out, sizeof(out), &ol, info);
}

START_TEST(test_round_trip_and_info)
{
	uint8_t env[2048], out[2048];
	size_t n = seal_to("sensors/a", "21.5", false, env, sizeof(env));
	struct veil_open_info info;
	size_t ol = 0;
	ck_assert_int_eq(veil_message_open(kr, rp, "sensors/a", env, n, NOW, out, sizeof(out), &ol, &info), VEIL_OK);
	ck_assert_uint_eq(ol, 4);
	ck_assert_mem_eq(out, "21.5", 4);
	ck_assert(!info.is_signed);
	ck_assert_uint_eq(info.key_id, 1);
	uint8_t pk[32], sid[8];
	veil_identity_public(dev, pk);
	veil_sender_id(pk, sid);
	ck_assert_mem_eq(info.sender, sid, 8);
	/* Signed: the credential's client id is reported. */
	n = seal_to("cmd/valve", "open", false, env, sizeof(env)); /* policy forces a signature */
	ck_assert_int_eq(open_on(kr, "cmd/valve", env, n, &info), VEIL_OK);
	ck_assert(info.is_signed);
	ck_assert_str_eq(info.client_id, "dev-1");
	/* In place (out == in). */
	n = seal_to("sensors/b", "in-place", false, env, sizeof(env));
	ck_assert_int_eq(veil_message_open(kr, rp, "sensors/b", env, n, NOW, env, sizeof(env), &ol, &info), VEIL_OK);
	ck_assert_uint_eq(ol, 8);
	ck_assert_mem_eq(env, "in-place", 8);
}
END_TEST

START_TEST(test_distinct_refusals)
{
	uint8_t env[2048];
	struct veil_open_info info;
	size_t n = seal_to("sensors/a", "reading", false, env, sizeof(env));
	/* wrong key: same id, other bytes */
	ck_assert_int_eq(open_on(kr_other_key, "sensors/a", env, n, &info), VEIL_ERR_WRONG_KEY);
	/* wrong topic: moved to a topic under another filter */
	ck_assert_int_eq(open_on(kr, "cmd/a", env, n, &info), VEIL_ERR_UNSIGNED);
	ck_assert_int_eq(open_on(kr, "mixed/a", env, n, &info), VEIL_ERR_WRONG_TOPIC);
	/* moved within the same filter: the AAD binds the exact topic */
	ck_assert_int_eq(open_on(kr, "sensors/b", env, n, &info), VEIL_ERR_DECRYPT);
	/* no policy at all */
	ck_assert_int_eq(open_on(kr, "nowhere", env, n, &info), VEIL_ERR_NO_POLICY);
	/* replay, and reorder within the window */
	uint8_t env2[2048];
	size_t n2 = seal_to("sensors/a", "second", false, env2, sizeof(env2));
	ck_assert_int_eq(open_on(kr, "sensors/a", env2, n2, &info), VEIL_OK);
	ck_assert_int_eq(open_on(kr, "sensors/a", env, n, &info), VEIL_OK); /* older, not seen yet */
	ck_assert_int_eq(open_on(kr, "sensors/a", env, n, &info), VEIL_ERR_REPLAY);
	ck_assert_int_eq(open_on(kr, "sensors/a", env2, n2, &info), VEIL_ERR_REPLAY);
	/* A seen message moved to another topic or tampered is not called a replay. */
	ck_assert_int_eq(open_on(kr, "sensors/b", env2, n2, &info), VEIL_ERR_DECRYPT);
	env2[n2 - 1] ^= 1;
	ck_assert_int_eq(open_on(kr, "sensors/a", env2, n2, &info), VEIL_ERR_DECRYPT);
	env2[n2 - 1] ^= 1;
	ck_assert_int_eq(open_on(kr, "sensors/a", env2, n2, &info), VEIL_ERR_REPLAY);
	/* plaintext on a protected topic */
	ck_assert_int_eq(open_on(kr, "sensors/a", (const uint8_t *)"hello", 5, &info), VEIL_ERR_PLAINTEXT);
	/* unknown version, truncated, oversized */
	n = seal_to("sensors/a", "v", false, env, sizeof(env));
	env[0] = 2;
	ck_assert_int_eq(open_on(kr, "sensors/a", env, n, &info), VEIL_ERR_VERSION);
	env[0] = 1;
	ck_assert_int_eq(open_on(kr, "sensors/a", env, 40, &info), VEIL_ERR_TRUNCATED);
	size_t big = veil_sealed_len(VEIL_MAX_PLAINTEXT) + 1;
	uint8_t *huge = calloc(1, big), *out = malloc(big);
	huge[0] = 1;
	size_t ol;
	ck_assert_int_eq(veil_message_open(kr, rp, "sensors/a", huge, big, NOW, out, big, &ol, &info),
	                 VEIL_ERR_TOO_LARGE);
	free(huge);
	free(out);
	/* tampered ciphertext */
	n = seal_to("sensors/a", "tamper me", false, env, sizeof(env));
	env[n - 3] ^= 1;
	ck_assert_int_eq(open_on(kr, "sensors/a", env, n, &info), VEIL_ERR_DECRYPT);
	/* unknown key id */
	n = seal_to("sensors/a", "k", false, env, sizeof(env));
	env[5] = 0x55;
	ck_assert_int_eq(open_on(kr, "sensors/a", env, n, &info), VEIL_ERR_UNKNOWN_KEY);
}
END_TEST

/* Seal parameters for cmd/x (key 2, signed policy): signed by dev, with its
 * sender id and credential; each test then breaks one thing. */
static struct veil_seal_params cmd_params(uint64_t sequence)
{
	const uint8_t *key = NULL;
	ck_assert_int_eq(veil_keyring_find_key(kr, "cmd/x", 2, &key), VEIL_OK);
	struct veil_seal_params p = { .key = key, .key_id = 2, .seq = sequence, .signer = dev };
	uint8_t pk[32];
	veil_identity_public(dev, pk);
	veil_sender_id(pk, p.sender);
	p.credential = cred;
	p.credential_len = cred_len;
	return p;
}

START_TEST(test_signed_refusals)
{
	uint8_t env[2048];
	struct veil_open_info info;
	struct veil_seal_params p = cmd_params(77);
	uint8_t pk[32];
	veil_identity_public(dev, pk);
	size_t n = 0;
	/* wrong sender: header names someone else than the credential's key */
	memset(p.sender, 0xEE, 8);
	ck_assert_int_eq(veil_envelope_seal(&p, "cmd/x", (const uint8_t *)"go", 2, env, sizeof(env), &n), VEIL_OK);
	ck_assert_int_eq(open_on(kr, "cmd/x", env, n, &info), VEIL_ERR_SENDER);
	/* credential from an authority the keyring does not trust */
	veil_sender_id(pk, p.sender);
	p.credential = rogue_cred;
	p.credential_len = rogue_cred_len;
	ck_assert_int_eq(veil_envelope_seal(&p, "cmd/x", (const uint8_t *)"go", 2, env, sizeof(env), &n), VEIL_OK);
	ck_assert_int_eq(open_on(kr, "cmd/x", env, n, &info), VEIL_ERR_WRONG_AUTHORITY);
	/* expired credential */
	uint8_t old[VEIL_CREDENTIAL_MAX];
	p.credential = old;
	p.credential_len = issue(auth, NOW - 1, old);
	ck_assert_int_eq(veil_envelope_seal(&p, "cmd/x", (const uint8_t *)"go", 2, env, sizeof(env), &n), VEIL_OK);
	ck_assert_int_eq(open_on(kr, "cmd/x", env, n, &info), VEIL_ERR_EXPIRED);
	/* a signature by another key over a valid credential */
	struct veil_identity *thief = NULL;
	ck_assert_int_eq(veil_identity_generate(&thief), VEIL_OK);
	p.signer = thief;
	p.credential = cred;
	p.credential_len = cred_len;
	ck_assert_int_eq(veil_envelope_seal(&p, "cmd/x", (const uint8_t *)"go", 2, env, sizeof(env), &n), VEIL_OK);
	ck_assert_int_eq(open_on(kr, "cmd/x", env, n, &info), VEIL_ERR_BAD_SIGNATURE);
	veil_identity_free(&thief);
	/* unsigned where required */
	p.signer = NULL;
	ck_assert_int_eq(veil_envelope_seal(&p, "cmd/x", (const uint8_t *)"go", 2, env, sizeof(env), &n), VEIL_OK);
	ck_assert_int_eq(open_on(kr, "cmd/x", env, n, &info), VEIL_ERR_UNSIGNED);
}
END_TEST

/* PROTOCOL.md section 8: a malformed embedded credential is a step-5 error,
 * reported with section 3's name, and an unknown key id (step 4) comes first.
 * A zero-length payload and reserved flag bits have their own names. */
START_TEST(test_error_order_and_names)
{
	uint8_t env[2048];
	struct veil_open_info info;
	struct veil_seal_params p = cmd_params(90);
	uint8_t bad[VEIL_CREDENTIAL_MAX];
	memcpy(bad, cred, cred_len);
	bad[0] = 2; /* credential version 2 */
	p.credential = bad;
	p.credential_len = cred_len;
	size_t n = 0;
	ck_assert_int_eq(veil_envelope_seal(&p, "cmd/x", (const uint8_t *)"go", 2, env, sizeof(env), &n), VEIL_OK);
	ck_assert_int_eq(open_on(kr, "cmd/x", env, n, &info), VEIL_ERR_VERSION);
	bad[0] = 1;
	bad[1] = 0x80; /* reserved credential flags */
	ck_assert_int_eq(veil_envelope_seal(&p, "cmd/x", (const uint8_t *)"go", 2, env, sizeof(env), &n), VEIL_OK);
	ck_assert_int_eq(open_on(kr, "cmd/x", env, n, &info), VEIL_ERR_RESERVED_FLAGS);
	/* the same envelope under a key id nobody holds: step 4 first */
	p.key_id = 0x5555;
	ck_assert_int_eq(veil_envelope_seal(&p, "cmd/x", (const uint8_t *)"go", 2, env, sizeof(env), &n), VEIL_OK);
	ck_assert_int_eq(open_on(kr, "cmd/x", env, n, &info), VEIL_ERR_UNKNOWN_KEY);
	/* a credential cut short inside a well-formed trailer: truncated, at step 5 */
	p.key_id = 2;
	p.credential = cred;
	p.credential_len = 40;
	ck_assert_int_eq(veil_envelope_seal(&p, "cmd/x", (const uint8_t *)"go", 2, env, sizeof(env), &n), VEIL_OK);
	ck_assert_int_eq(open_on(kr, "cmd/x", env, n, &info), VEIL_ERR_TRUNCATED);
	/* zero-length payload on a protected topic, signed or not */
	ck_assert_int_eq(open_on(kr, "sensors/a", env, 0, &info), VEIL_ERR_EMPTY);
	ck_assert_int_eq(open_on(kr, "cmd/x", NULL, 0, &info), VEIL_ERR_EMPTY);
	/* reserved envelope flag bits */
	n = seal_to("sensors/a", "flags", false, env, sizeof(env));
	env[1] = 0x04;
	ck_assert_int_eq(open_on(kr, "sensors/a", env, n, &info), VEIL_ERR_RESERVED_FLAGS);
	/* a topic that tolerates plaintext delivers an empty payload as plaintext */
	uint8_t o[8];
	size_t ol = 9;
	ck_assert_int_eq(veil_message_open(kr, rp, "mixed/a", env, 0, NOW, o, sizeof(o), &ol, &info), VEIL_OK);
	ck_assert(info.plaintext);
	ck_assert_uint_eq(ol, 0);
}
END_TEST

START_TEST(test_plaintext_policy)
{
	uint8_t out[256];
	size_t n = 0;
	bool sealed = true;
	/* plaintext-only filter: sent and received as is, flagged */
	ck_assert_int_eq(veil_message_seal(kr, &snd, "public/news", (const uint8_t *)"hi", 2, false, out, sizeof(out),
	                                   &n, &sealed),
	                 VEIL_OK);
	ck_assert(!sealed);
	ck_assert_uint_eq(n, 2);
	struct veil_open_info info;
	uint8_t o2[256];
	size_t ol = 0;
	ck_assert_int_eq(veil_message_open(kr, rp, "public/news", out, n, NOW, o2, sizeof(o2), &ol, &info), VEIL_OK);
	ck_assert(info.plaintext);
	/* mixed: sealed on send, plaintext tolerated on receive (migration) */
	ck_assert_int_eq(veil_message_seal(kr, &snd, "mixed/a", (const uint8_t *)"hi", 2, false, out, sizeof(out), &n,
	                                   &sealed),
	                 VEIL_OK);
	ck_assert(sealed);
	ck_assert_int_eq(veil_message_open(kr, rp, "mixed/a", (const uint8_t *)"legacy", 6, NOW, o2, sizeof(o2), &ol,
	                                   &info),
	                 VEIL_OK);
	ck_assert(info.plaintext);
	/* no policy: refused, nothing written */
	memset(out, 0xAB, sizeof(out));
	ck_assert_int_eq(veil_message_seal(kr, &snd, "secret/x", (const uint8_t *)"pw", 2, false, out, sizeof(out), &n,
	                                   &sealed),
	                 VEIL_ERR_NO_POLICY);
	ck_assert_uint_eq(out[0], 0xAB);
	/* invalid topics */
	ck_assert_int_eq(veil_message_seal(kr, &snd, "sensors/#", (const uint8_t *)"x", 1, false, out, sizeof(out), &n,
	                                   &sealed),
	                 VEIL_ERR_INVAL);
}
END_TEST

/* Found in the issue-7 review: replay windows were kept per sender id only.
 * An unsigned envelope is authenticated by its topic key alone, so whoever holds
 * the key of one unsigned topic could seal with another device's sender id and a
 * huge sequence number, and that device's real messages on every other topic,
 * signed ones included, were then refused as replays. Windows are now per
 * (sender id, key id): a forger only reaches the stream it could forge anyway. */
START_TEST(test_replay_window_per_key)
{
	uint8_t pk[32], k1[32], env[2048];
	veil_identity_public(dev, pk);
	memset(k1, 0x11, sizeof(k1)); /* key 1 (sensors/#, unsigned) of keyring(0x11) */
	struct veil_seal_params p = { 0 };
	p.key = k1;
	p.key_id = 1;
	veil_sender_id(pk, p.sender);
	p.seq = 1ULL << 62;
	size_t n = 0;
	ck_assert_int_eq(veil_envelope_seal(&p, "sensors/x", (const uint8_t *)"x", 1, env, sizeof(env), &n), VEIL_OK);
	struct veil_open_info info;
	ck_assert_int_eq(open_on(kr, "sensors/x", env, n, &info), VEIL_OK); /* the key holder's forgery opens */
	/* The device's signed command under key 2 is not affected. */
	n = seal_to("cmd/valve", "open", true, env, sizeof(env));
	ck_assert_int_eq(open_on(kr, "cmd/valve", env, n, &info), VEIL_OK);
	ck_assert(info.is_signed);
	/* Under key 1 itself the forger wins: unsigned topics trust every key holder
	 * (docs/SECURITY.md 5.2). */
	n = seal_to("sensors/a", "21.5", false, env, sizeof(env));
	ck_assert_int_eq(open_on(kr, "sensors/a", env, n, &info), VEIL_ERR_REPLAY);
}
END_TEST

/* Cached credential verifications never outlive trust or validity. */
START_TEST(test_credential_cache_respects_trust)
{
	uint8_t env[2048], env2[2048];
	struct veil_open_info info;
	size_t n = seal_to("cmd/a", "first", false, env, sizeof(env));
	size_t n2 = seal_to("cmd/a", "second", false, env2, sizeof(env2));
	ck_assert_int_eq(open_on(kr, "cmd/a", env, n, &info), VEIL_OK); /* verified, cached */
	/* The same keys, but the authority is no longer trusted (keyring reloaded). */
	char ka[64], text[512];
	uint8_t k[32];
	memset(k, 0x77, 32);
	sodium_bin2base64(ka, sizeof(ka), k, 32, sodium_base64_VARIANT_ORIGINAL);
	snprintf(text, sizeof(text), "key cmd/# 2 %s\npolicy cmd/# signed\n", ka);
	struct veil_keyring *untrusting = NULL;
	ck_assert_int_eq(veil_keyring_parse(text, strlen(text), "t", &untrusting, NULL, 0), VEIL_OK);
	uint8_t out[2048];
	size_t ol;
	ck_assert_int_eq(veil_message_open(untrusting, rp, "cmd/a", env2, n2, NOW, out, sizeof(out), &ol, &info),
	                 VEIL_ERR_WRONG_AUTHORITY);
	veil_keyring_free(&untrusting);
	/* Expired since it was cached. */
	ck_assert_int_eq(veil_message_open(kr, rp, "cmd/a", env2, n2, NOW + 2000, out, sizeof(out), &ol, &info),
	                 VEIL_ERR_EXPIRED);
	/* A cache hit still checks the message's own signature. */
	env2[n2 - 1] ^= 1;
	ck_assert_int_eq(open_on(kr, "cmd/a", env2, n2, &info), VEIL_ERR_BAD_SIGNATURE);
	env2[n2 - 1] ^= 1;
	ck_assert_int_eq(open_on(kr, "cmd/a", env2, n2, &info), VEIL_OK);
}
END_TEST


/* Receivers honour revocation (issue 13): a signed envelope from a revoked
 * credential id, an unsigned one from a revoked sender id, are refused as
 * revoked after authentication; a forgery under a revoked id stays what it is
 * (decrypt-failed), and nothing reaches the replay window. */
static uint8_t revoked_cred[VEIL_CREDENTIAL_ID_BYTES], revoked_sender[VEIL_SENDER_ID_BYTES];
static bool rev_cred(void *ctx, const uint8_t id[VEIL_CREDENTIAL_ID_BYTES])
{
	(void)ctx;
	return memcmp(id, revoked_cred, sizeof(revoked_cred)) == 0;
}
static bool rev_sender(void *ctx, const uint8_t id[VEIL_SENDER_ID_BYTES])
{
	(void)ctx;
	return memcmp(id, revoked_sender, sizeof(revoked_sender)) == 0;
}

START_TEST(test_revoked_senders)
{
	struct veil_credential c;
	ck_assert_int_eq(veil_credential_parse(cred, cred_len, &c), VEIL_OK);
	uint8_t pk[32];
	veil_identity_public(dev, pk);
	struct veil__revoked rev = { rev_cred, rev_sender, NULL };
	uint8_t env[2048], out[2048];
	size_t ol = 0, n;
	struct veil_open_info info;
	/* Nothing revoked yet. */
	memset(revoked_cred, 0, sizeof(revoked_cred));
	memset(revoked_sender, 0, sizeof(revoked_sender));
	n = seal_to("sensors/r", "before", false, env, sizeof(env));
	ck_assert_int_eq(veil__message_open_rev(kr, rp, &rev, "sensors/r", env, n, NOW, out, sizeof(out), &ol, &info),
	                 VEIL_OK);
	/* Sender id revoked: unsigned refused, signed (by a credential not revoked) still opens. */
	veil_sender_id(pk, revoked_sender);
	n = seal_to("sensors/r", "unsigned", false, env, sizeof(env));
	ck_assert_int_eq(veil__message_open_rev(kr, rp, &rev, "sensors/r", env, n, NOW, out, sizeof(out), &ol, &info),
	                 VEIL_ERR_REVOKED);
	/* Not recorded: the same envelope without revocation knowledge opens once. */
	ck_assert_int_eq(veil_message_open(kr, rp, "sensors/r", env, n, NOW, out, sizeof(out), &ol, &info), VEIL_OK);
	n = seal_to("sensors/r", "signed", true, env, sizeof(env));
	ck_assert_int_eq(veil__message_open_rev(kr, rp, &rev, "sensors/r", env, n, NOW, out, sizeof(out), &ol, &info),
	                 VEIL_OK);
	ck_assert(info.is_signed);
	ck_assert_mem_eq(info.credential_id, c.id, VEIL_CREDENTIAL_ID_BYTES);
	/* Credential revoked: signed refused. */
	memset(revoked_sender, 0, sizeof(revoked_sender));
	memcpy(revoked_cred, c.id, sizeof(revoked_cred));
	n = seal_to("cmd/valve", "open", false, env, sizeof(env));
	ck_assert_int_eq(veil__message_open_rev(kr, rp, &rev, "cmd/valve", env, n, NOW, out, sizeof(out), &ol, &info),
	                 VEIL_ERR_REVOKED);
	/* A tampered copy is a forgery first. */
	env[60] ^= 1;
	ck_assert_int_ne(veil__message_open_rev(kr, rp, &rev, "cmd/valve", env, n, NOW, out, sizeof(out), &ol, &info),
	                 VEIL_ERR_REVOKED);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("message");
	TCase *tc = veil_tcase("core", 2);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_round_trip_and_info);
	tcase_add_test(tc, test_distinct_refusals);
	tcase_add_test(tc, test_signed_refusals);
	tcase_add_test(tc, test_error_order_and_names);
	tcase_add_test(tc, test_plaintext_policy);
	tcase_add_test(tc, test_credential_cache_respects_trust);
	tcase_add_test(tc, test_replay_window_per_key);
	tcase_add_test(tc, test_revoked_senders);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return veil_check_run(suite());
}
