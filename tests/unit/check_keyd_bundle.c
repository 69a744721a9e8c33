/* Tests for core/bundle.c, the key service's wire formats (docs/PROTOCOL.md
 * sections 10-13): device messages, bundles, revocation statements and
 * receive keys. Round trips; every tamper region of each format with its
 * error; wrong device, receive key, signer role, authority, expiry; the
 * device's version policy; structure (truncated, oversized, trailing bytes,
 * reserved bits, counts that do not fit); the independent test vectors. */
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "veil/veil.h"
#include "../../core/bundle.h"
#include "../../core/internal.h"
#include "../../core/util.h"
#include "check_run.h"
#include "material.h"
#include "timing.h"
#include "vectors.h"

#define STRUCTURE 1 /* an expected "error": any structure error (a length field was hit) */

static struct veil_identity *auth, *other_auth, *keyd;
static struct test_device dev;
static struct veil_credential dev_cred;       /* dev's credential, parsed */
static uint8_t keyd_cred[VEIL_CREDENTIAL_MAX];
static size_t keyd_cred_len;
static uint8_t auth_pk[VEIL_PK_BYTES];
static struct veil__rxkey *rx;                /* the device's receive key */
static uint64_t now;
static const uint8_t nonce16[VEIL__DEVMSG_NONCE_BYTES] = { 0x11, 0x22, 0x33 };
static const uint8_t eph_fixed[VEIL__X25519_BYTES] = { 0x77, 0x01 };
static const uint8_t xnonce_fixed[VEIL_NONCE_BYTES] = { 0x42, 0x24 };

static void setup(void)
{
	ck_assert_int_eq(veil_init(), VEIL_OK);
	now = (uint64_t)time(NULL);
	ck_assert_int_eq(veil_identity_generate(&auth), VEIL_OK);
	ck_assert_int_eq(veil_identity_generate(&other_auth), VEIL_OK);
	ck_assert_int_eq(veil_identity_generate(&keyd), VEIL_OK);
	veil_identity_public(auth, auth_pk);
	test_device_new(&dev, auth, "dev-1", NULL);
	ck_assert_int_eq(veil_credential_parse(dev.cred, dev.cred_len, &dev_cred), VEIL_OK);
	keyd_cred_len = test_credential_make(auth, keyd, "keyd-1", "admin,veil-keyd", 3600, keyd_cred);
	ck_assert_int_eq(veil__rxkey_generate(&rx), VEIL_OK);
}

static void teardown(void)
{
	veil__rxkey_free(&rx);
	test_device_free(&dev);
	veil_identity_free(&keyd);
	veil_identity_free(&other_auth);
	veil_identity_free(&auth);
}

static struct veil__trust trust(void)
{
	return (struct veil__trust){ .authorities = (const uint8_t(*)[VEIL_PK_BYTES])auth_pk, .n_authorities = 1,
		                     .now = now };
}

/* ---- device messages ---------------------------------------------------- */

static size_t devmsg(uint8_t kind, uint64_t ts, const uint8_t *rx_pk, uint8_t out[VEIL__DEVMSG_MAX])
{
	struct veil__devmsg_params p = { .device = dev.id, .credential = dev.cred, .credential_len = dev.cred_len,
		                         .client_id = "dev-1", .kind = kind, .timestamp = ts, .nonce = nonce16,
		                         .receive_pk = rx_pk, .version = 77 };
	size_t n = 0;
	ck_assert_int_eq(veil__devmsg_build(&p, out, VEIL__DEVMSG_MAX, &n), VEIL_OK);
	ck_assert_uint_eq(n, veil__devmsg_len(dev.cred_len));
	return n;
}

static int devmsg_verify(const uint8_t *m, size_t n, const char *cid, uint64_t at)
{
	struct veil__trust t = trust();
	t.now = at;
	struct veil__devmsg out;
	return veil__devmsg_verify(m, n, cid, &t, 60, &out);
}

START_TEST(test_devmsg_round_trip)
{
	uint8_t m[VEIL__DEVMSG_MAX];
	for (uint8_t kind = VEIL__KIND_REQUEST; kind <= VEIL__KIND_ACK; kind++) {
		size_t n = devmsg(kind, now, veil__rxkey_public(rx), m);
		struct veil__trust t = trust();
		struct veil__devmsg d;
		ck_assert_int_eq(veil__devmsg_verify(m, n, "dev-1", &t, 60, &d), VEIL_OK);
		ck_assert_uint_eq(d.kind, kind);
		ck_assert_uint_eq(d.timestamp, now);
		ck_assert_uint_eq(d.version, 77);
		ck_assert_mem_eq(d.nonce, nonce16, sizeof(nonce16));
		ck_assert_mem_eq(d.receive_pk, veil__rxkey_public(rx), VEIL__X25519_BYTES);
		ck_assert_mem_eq(d.cred.id, dev_cred.id, VEIL_CREDENTIAL_ID_BYTES);
		ck_assert_ptr_eq(d.credential, m + VEIL__DEVMSG_FIXED);
		ck_assert_uint_eq(d.credential_len, dev.cred_len);
		struct veil__devmsg parsed;
		ck_assert_int_eq(veil__devmsg_parse(m, n, &parsed), VEIL_OK);
		ck_assert_uint_eq(parsed.timestamp, now);
	}
}
END_TEST

static bool revoke_all(const struct veil_credential *c, void *ctx)
{
	(void)c;
	(void)ctx;
	return true;
}

START_TEST(test_devmsg_checks)
{
	uint8_t m[VEIL__DEVMSG_MAX];
	size_t n = devmsg(VEIL__KIND_REQUEST, now, veil__rxkey_public(rx), m);
	/* The topic's client id must be the credential's. */
	ck_assert_int_eq(devmsg_verify(m, n, "dev-2", now), VEIL_ERR_CLIENT_ID);
	ck_assert_int_eq(devmsg_verify(m, n, "dev-1x", now), VEIL_ERR_CLIENT_ID);
	/* Credential: untrusted authority, not yet valid, expired. */
	uint8_t opk[VEIL_PK_BYTES];
	veil_identity_public(other_auth, opk);
	struct veil__trust t = { .authorities = (const uint8_t(*)[VEIL_PK_BYTES])opk, .n_authorities = 1, .now = now };
	struct veil__devmsg d;
	ck_assert_int_eq(veil__devmsg_verify(m, n, "dev-1", &t, 60, &d), VEIL_ERR_WRONG_AUTHORITY);
	/* After a structure check passed, the parsed fields stay for the audit line. */
	ck_assert_mem_eq(d.cred.id, dev_cred.id, VEIL_CREDENTIAL_ID_BYTES);
	ck_assert_int_eq(devmsg_verify(m, n, "dev-1", now - 7200), VEIL_ERR_NOT_YET_VALID);
	ck_assert_int_eq(devmsg_verify(m, n, "dev-1", now + 3600), VEIL_ERR_EXPIRED);
	t = trust();
	t.revoked = revoke_all;
	ck_assert_int_eq(veil__devmsg_verify(m, n, "dev-1", &t, 60, &d), VEIL_ERR_REVOKED);
	/* Freshness: the window is inclusive on both sides. */
	ck_assert_int_eq(devmsg_verify(m, n, "dev-1", now + 60), VEIL_OK);
	ck_assert_int_eq(devmsg_verify(m, n, "dev-1", now - 60), VEIL_OK);
	ck_assert_int_eq(devmsg_verify(m, n, "dev-1", now + 61), VEIL_ERR_STALE);
	ck_assert_int_eq(devmsg_verify(m, n, "dev-1", now - 61), VEIL_ERR_STALE);
	/* A receive key of small order would make the bundle key public. */
	static const uint8_t zero[VEIL__X25519_BYTES];
	n = devmsg(VEIL__KIND_REQUEST, now, zero, m);
	ck_assert_int_eq(devmsg_verify(m, n, "dev-1", now), VEIL_ERR_PARSE);
	/* A message signed by another device key over the same credential. */
	struct test_device other;
	test_device_new(&other, auth, "dev-1", NULL);
	n = devmsg(VEIL__KIND_ACK, now, veil__rxkey_public(rx), m);
	memcpy(m + VEIL__DEVMSG_FIXED, other.cred, other.cred_len); /* same length: same client id and roles */
	ck_assert_uint_eq(other.cred_len, dev.cred_len);
	ck_assert_int_eq(devmsg_verify(m, n, "dev-1", now), VEIL_ERR_BAD_SIGNATURE);
	test_device_free(&other);
}
END_TEST

START_TEST(test_devmsg_build_refuses)
{
	uint8_t m[VEIL__DEVMSG_MAX];
	size_t n = 0;
	struct veil__devmsg_params p = { .device = dev.id, .credential = dev.cred, .credential_len = dev.cred_len,
		                         .client_id = "dev-1", .kind = VEIL__KIND_REQUEST, .timestamp = now,
		                         .nonce = nonce16, .receive_pk = veil__rxkey_public(rx) };
	ck_assert_int_eq(veil__devmsg_build(&p, m, veil__devmsg_len(dev.cred_len) - 1, &n), VEIL_ERR_INVAL);
	p.kind = VEIL__KIND_BUNDLE;
	ck_assert_int_eq(veil__devmsg_build(&p, m, sizeof(m), &n), VEIL_ERR_INVAL);
	p.kind = VEIL__KIND_REQUEST;
	p.client_id = "dev-2"; /* not the credential's */
	ck_assert_int_eq(veil__devmsg_build(&p, m, sizeof(m), &n), VEIL_ERR_INVAL);
	p.client_id = "dev-1";
	p.device = keyd; /* not the credential's key */
	ck_assert_int_eq(veil__devmsg_build(&p, m, sizeof(m), &n), VEIL_ERR_INVAL);
	p.device = dev.id;
	p.credential_len--;
	ck_assert_int_eq(veil__devmsg_build(&p, m, sizeof(m), &n), VEIL_ERR_INVAL);
}
END_TEST

/* What flipping bit 0 of byte j of a credential does, in a verifier that
 * compares its client id first (cid_checked) or not: section 3's order,
 * with the character rules of client ids and roles. */
static bool cid_char_ok(int c)
{
	return c >= 0x20 && c != 0x7f && c != '+' && c != '#' && c != '/';
}

static bool role_char_ok(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
	       c == '-' || c == ',';
}

static int cred_flip_err(const uint8_t *cred, size_t j, bool cid_checked)
{
	size_t L = cred[74], R = cred[75 + L];
	int c = cred[j] ^ 1;
	if (j == 0)
		return VEIL_ERR_VERSION;
	if (j == 1)
		return VEIL_ERR_RESERVED_FLAGS;
	if (j >= 18 && j < 26)
		return VEIL_ERR_WRONG_AUTHORITY;
	if (j == 74 || j == 75 + L)
		return STRUCTURE; /* the client id or roles length */
	if (j >= 75 && j < 75 + L)
		return !cid_char_ok(c) ? VEIL_ERR_PARSE : cid_checked ? VEIL_ERR_CLIENT_ID : VEIL_ERR_BAD_SIGNATURE;
	if (j > 75 + L && j < 76 + L + R)
		return role_char_ok(c) ? VEIL_ERR_BAD_SIGNATURE : VEIL_ERR_PARSE;
	return VEIL_ERR_BAD_SIGNATURE; /* id, times, key, the authority's signature */
}

static void assert_err(int rc, int want, size_t at)
{
	if (want == STRUCTURE)
		ck_assert_msg(rc == VEIL_ERR_TRUNCATED || rc == VEIL_ERR_PARSE || rc == VEIL_ERR_TOO_LARGE,
		              "byte %zu: %s, want a structure error", at, veil_errname(rc));
	else
		ck_assert_msg(rc == want, "byte %zu: %s, want %s", at, veil_errname(rc), veil_errname(want));
}

START_TEST(test_devmsg_tamper_every_byte)
{
	uint8_t m[VEIL__DEVMSG_MAX];
	size_t n = devmsg(VEIL__KIND_ACK, now, veil__rxkey_public(rx), m);
	size_t C = dev.cred_len;
	for (size_t i = 0; i < n; i++) {
		int want = VEIL_ERR_BAD_SIGNATURE; /* timestamp, nonce, receive key, version, signature */
		if (i == 0)
			want = VEIL_ERR_VERSION;
		else if (i == 1)
			want = VEIL_ERR_PARSE; /* kind */
		else if (i == 66 || i == 67)
			want = STRUCTURE; /* C */
		else if (i >= VEIL__DEVMSG_FIXED && i < VEIL__DEVMSG_FIXED + C)
			want = cred_flip_err(dev.cred, i - VEIL__DEVMSG_FIXED, true);
		m[i] ^= 1;
		assert_err(devmsg_verify(m, n, "dev-1", now), want, i);
		m[i] ^= 1;
	}
	ck_assert_int_eq(devmsg_verify(m, n, "dev-1", now), VEIL_OK);
}
END_TEST

START_TEST(test_devmsg_structure)
{
	uint8_t m[VEIL__DEVMSG_MAX + 2];
	size_t n = devmsg(VEIL__KIND_REQUEST, now, veil__rxkey_public(rx), m);
	struct veil__devmsg d;
	for (size_t len = 0; len < n; len++)
		ck_assert_int_eq(veil__devmsg_parse(m, len, &d), VEIL_ERR_TRUNCATED);
	m[n] = 0;
	ck_assert_int_eq(veil__devmsg_parse(m, n + 1, &d), VEIL_ERR_PARSE); /* trailing byte */
	ck_assert_int_eq(veil__devmsg_parse(m, VEIL__DEVMSG_MAX + 1, &d), VEIL_ERR_TOO_LARGE);
	m[1] = VEIL__KIND_BUNDLE;
	ck_assert_int_eq(veil__devmsg_parse(m, n, &d), VEIL_ERR_PARSE);
	m[1] = VEIL__KIND_REQUEST;
	m[0] = 2;
	ck_assert_int_eq(veil__devmsg_parse(m, n, &d), VEIL_ERR_VERSION);
	ck_assert_int_eq(veil__devmsg_parse(NULL, 1, &d), VEIL_ERR_INVAL);
}
END_TEST

/* ---- bundles ------------------------------------------------------------ */

static struct veil__grant grant(const char *scope, uint32_t key_id, uint8_t flags)
{
	struct veil__grant g;
	memset(&g, 0, sizeof(g));
	strcpy(g.scope, scope);
	g.key_id = key_id;
	g.epoch = key_id & 0xffff;
	g.send_from = now - 10;
	g.send_until = now + 100;
	g.accept_until = now + 130;
	g.grace_s = 5;
	g.flags = flags;
	memset(g.key, (int)(key_id & 0xff), sizeof(g.key));
	return g;
}

static struct veil__grant grants2[2];

/* What a bundle is addressed to and sealed with; tests change single fields. */
struct target {
	const uint8_t *cred_id, *sender_id, *receive_pk, *echo;
	const char *client_id;
	uint64_t version;
	const struct veil_identity *signer;
	const uint8_t *cred;
	size_t cred_len;
	const struct veil__grant *grants;
	size_t n_grants;
};

static struct target target(void)
{
	grants2[0] = grant("dev/dev-1/#", 0x80000010, VEIL__GRANT_MAY_SEND | VEIL__GRANT_SIGNED);
	grants2[1] = grant("dev/+/status", 0x80000011, VEIL__GRANT_SUPERSEDES);
	return (struct target){ .cred_id = dev_cred.id, .sender_id = dev.sender, .receive_pk = veil__rxkey_public(rx),
		                .echo = nonce16, .client_id = "dev-1", .version = 1000, .signer = keyd,
		                .cred = keyd_cred, .cred_len = keyd_cred_len, .grants = grants2, .n_grants = 2 };
}

static size_t bundle(const struct target *tg, uint8_t **out)
{
	struct veil__bundle_params p = {
		.keyd = tg->signer, .credential = tg->cred, .credential_len = tg->cred_len,
		.recipient_cred_id = tg->cred_id, .recipient_sender_id = tg->sender_id,
		.recipient_client_id = tg->client_id, .receive_pk = tg->receive_pk, .echo_nonce = tg->echo,
		.version = tg->version, .grants = tg->grants, .n_grants = tg->n_grants,
	};
	size_t cap = veil__bundle_len(&p), n = 0;
	ck_assert_uint_gt(cap, 0);
	*out = malloc(cap + 1);
	ck_assert_ptr_nonnull(*out);
	ck_assert_int_eq(veil__bundle_build_det(&p, eph_fixed, xnonce_fixed, *out, cap, &n), VEIL_OK);
	ck_assert_uint_eq(n, cap);
	return n;
}

static int open_as(const uint8_t *b, size_t n, const struct veil_credential *self_cred, uint64_t held,
                   const uint8_t *echo, struct veil__grants **g)
{
	struct veil__trust t = trust();
	struct veil__rxkey *keys[] = { rx };
	struct veil__bundle_self self = { .cred = self_cred, .rxkeys = keys, .n_rxkeys = 1, .held_version = held,
		                          .echo_nonce = echo };
	size_t idx = 99;
	int rc = veil__bundle_open(b, n, &t, &self, NULL, &idx, g);
	if (rc == VEIL_OK)
		ck_assert_uint_eq(idx, 0);
	else
		ck_assert_ptr_null(*g);
	return rc;
}

static int open_dev(const uint8_t *b, size_t n)
{
	struct veil__grants *g = NULL;
	int rc = open_as(b, n, &dev_cred, 0, NULL, &g);
	veil__grants_free(&g);
	return rc;
}

static void assert_grant_eq(const struct veil__grant *a, const struct veil__grant *b)
{
	ck_assert_str_eq(a->scope, b->scope);
	ck_assert_uint_eq(a->key_id, b->key_id);
	ck_assert_uint_eq(a->epoch, b->epoch);
	ck_assert_uint_eq(a->send_from, b->send_from);
	ck_assert_uint_eq(a->send_until, b->send_until);
	ck_assert_uint_eq(a->accept_until, b->accept_until);
	ck_assert_uint_eq(a->grace_s, b->grace_s);
	ck_assert_uint_eq(a->flags, b->flags);
	ck_assert_mem_eq(a->key, b->key, VEIL_KEY_BYTES);
}

START_TEST(test_bundle_round_trip)
{
	struct target tg = target();
	uint8_t *b = NULL;
	size_t n = bundle(&tg, &b);
	struct veil__trust t = trust();
	struct veil__rxkey *old = NULL;
	ck_assert_int_eq(veil__rxkey_generate(&old), VEIL_OK);
	struct veil__rxkey *keys[] = { old, rx }; /* the device holds two; the second opens */
	struct veil__bundle_self self = { .cred = &dev_cred, .rxkeys = keys, .n_rxkeys = 2 };
	struct veil__bundle_view v;
	struct veil__grants *g = NULL;
	size_t idx = 99;
	ck_assert_int_eq(veil__bundle_open(b, n, &t, &self, &v, &idx, &g), VEIL_OK);
	ck_assert_uint_eq(idx, 1);
	ck_assert_uint_eq(g->n, 2);
	assert_grant_eq(&g->g[0], &grants2[0]);
	assert_grant_eq(&g->g[1], &grants2[1]);
	ck_assert_uint_eq(v.version, 1000);
	ck_assert_mem_eq(v.echo_nonce, nonce16, sizeof(nonce16));
	ck_assert_str_eq(v.signer.client_id, "keyd-1");
	ck_assert_uint_eq(v.client_id_len, 5);
	veil__grants_free(&g);
	ck_assert_ptr_null(g);
	/* The random variant opens too, and differs (fresh ephemeral key and nonce). */
	struct veil__bundle_params p = { .keyd = keyd, .credential = keyd_cred, .credential_len = keyd_cred_len,
		                         .recipient_cred_id = dev_cred.id, .recipient_sender_id = dev.sender,
		                         .recipient_client_id = "dev-1", .receive_pk = veil__rxkey_public(rx),
		                         .echo_nonce = nonce16, .version = 1000, .grants = grants2, .n_grants = 2 };
	uint8_t *r = malloc(n);
	size_t rn = 0;
	ck_assert_int_eq(veil__bundle_build(&p, r, n, &rn), VEIL_OK);
	ck_assert_uint_eq(rn, n);
	ck_assert_mem_ne(r, b, n);
	ck_assert_int_eq(veil__bundle_open(r, rn, &t, &self, NULL, &idx, &g), VEIL_OK);
	veil__grants_free(&g);
	/* A bundle with no grant is valid: the device is entitled to nothing. */
	tg.n_grants = 0;
	free(b);
	n = bundle(&tg, &b);
	ck_assert_int_eq(open_as(b, n, &dev_cred, 0, NULL, &g), VEIL_OK);
	ck_assert_uint_eq(g->n, 0);
	veil__grants_free(&g);
	veil__rxkey_free(&old);
	free(r);
	free(b);
}
END_TEST

START_TEST(test_bundle_version_policy)
{
	struct target tg = target();
	uint8_t *b = NULL;
	size_t n = bundle(&tg, &b);
	struct veil__grants *g = NULL;
	ck_assert_int_eq(open_as(b, n, &dev_cred, 999, NULL, &g), VEIL_OK);
	veil__grants_free(&g);
	ck_assert_int_eq(open_as(b, n, &dev_cred, 1000, NULL, &g), VEIL_ERR_OUTDATED); /* the one held */
	ck_assert_int_eq(open_as(b, n, &dev_cred, 5000, NULL, &g), VEIL_ERR_OUTDATED);
	/* A device without a persisted version requires its latest nonce back. */
	ck_assert_int_eq(open_as(b, n, &dev_cred, 0, nonce16, &g), VEIL_OK);
	veil__grants_free(&g);
	uint8_t later[VEIL__DEVMSG_NONCE_BYTES] = { 0x11, 0x22, 0x34 };
	ck_assert_int_eq(open_as(b, n, &dev_cred, 0, later, &g), VEIL_ERR_NO_NONCE_ECHO);
	/* Outdated is reported before the echo (section 12's order). */
	ck_assert_int_eq(open_as(b, n, &dev_cred, 1000, later, &g), VEIL_ERR_OUTDATED);
	free(b);
}
END_TEST

START_TEST(test_bundle_misaddressed)
{
	uint8_t *b = NULL;
	size_t n;
	uint8_t other_id[VEIL_CREDENTIAL_ID_BYTES], other_sender[VEIL_SENDER_ID_BYTES];
	memcpy(other_id, dev_cred.id, sizeof(other_id));
	other_id[15] ^= 0x80;
	memcpy(other_sender, dev.sender, sizeof(other_sender));
	other_sender[0] ^= 0x01;
	struct target tg = target();
	tg.cred_id = other_id;
	n = bundle(&tg, &b);
	ck_assert_int_eq(open_dev(b, n), VEIL_ERR_MISADDRESSED);
	free(b);
	tg = target();
	tg.sender_id = other_sender;
	n = bundle(&tg, &b);
	ck_assert_int_eq(open_dev(b, n), VEIL_ERR_MISADDRESSED);
	free(b);
	static const char *const cids[] = { "dev-2", "dev-10", "dev-" };
	for (size_t i = 0; i < 3; i++) {
		tg = target();
		tg.client_id = cids[i];
		n = bundle(&tg, &b);
		ck_assert_int_eq(open_dev(b, n), VEIL_ERR_MISADDRESSED);
		free(b);
	}
	/* Another device (its own credential) opening a bundle for dev-1. */
	tg = target();
	n = bundle(&tg, &b);
	struct test_device other;
	test_device_new(&other, auth, "dev-2", NULL);
	struct veil_credential oc;
	ck_assert_int_eq(veil_credential_parse(other.cred, other.cred_len, &oc), VEIL_OK);
	struct veil__grants *g = NULL;
	ck_assert_int_eq(open_as(b, n, &oc, 0, NULL, &g), VEIL_ERR_MISADDRESSED);
	test_device_free(&other);
	free(b);
}
END_TEST

START_TEST(test_bundle_wrong_receive_key)
{
	struct target tg = target();
	uint8_t *b = NULL;
	size_t n = bundle(&tg, &b);
	struct veil__rxkey *k1 = NULL, *k2 = NULL;
	ck_assert_int_eq(veil__rxkey_generate(&k1), VEIL_OK);
	ck_assert_int_eq(veil__rxkey_generate(&k2), VEIL_OK);
	struct veil__rxkey *keys[] = { k1, k2 };
	struct veil__trust t = trust();
	struct veil__grants *g = NULL;
	size_t idx = 0;
	for (size_t held = 0; held <= 2; held++) {
		struct veil__bundle_self self = { .cred = &dev_cred, .rxkeys = keys, .n_rxkeys = held };
		ck_assert_int_eq(veil__bundle_open(b, n, &t, &self, NULL, &idx, &g), VEIL_ERR_WRONG_RECEIVE_KEY);
		ck_assert_ptr_null(g);
	}
	veil__rxkey_free(&k1);
	veil__rxkey_free(&k2);
	ck_assert_ptr_null(k1);
	free(b);
}
END_TEST

static bool revoke_keyd(const struct veil_credential *c, void *ctx)
{
	return strcmp(c->client_id, (const char *)ctx) == 0;
}

START_TEST(test_bundle_signer)
{
	uint8_t cred[VEIL_CREDENTIAL_MAX];
	uint8_t *b = NULL;
	size_t n;
	struct target tg = target();
	/* A credential without the role (a role that merely contains the name does not count). */
	static const char *const roles[] = { NULL, "admin", "veil-keyd2", "xveil-keyd", "veil-key" };
	for (size_t i = 0; i < sizeof(roles) / sizeof(roles[0]); i++) {
		tg.cred_len = test_credential_make(auth, keyd, "keyd-1", roles[i], 3600, cred);
		tg.cred = cred;
		n = bundle(&tg, &b);
		ck_assert_int_eq(open_dev(b, n), VEIL_ERR_WRONG_ROLE);
		free(b);
	}
	/* The signer's credential from an authority the device does not trust. */
	tg.cred_len = test_credential_make(other_auth, keyd, "keyd-1", "veil-keyd", 3600, cred);
	n = bundle(&tg, &b);
	ck_assert_int_eq(open_dev(b, n), VEIL_ERR_WRONG_AUTHORITY);
	free(b);
	/* Expired. */
	tg.cred_len = test_credential_make(auth, keyd, "keyd-1", "veil-keyd", -60, cred);
	n = bundle(&tg, &b);
	ck_assert_int_eq(open_dev(b, n), VEIL_ERR_EXPIRED);
	free(b);
	/* A veil-keyd credential for another key than the one that signed. */
	tg.cred_len = test_credential_make(auth, other_auth, "keyd-1", "veil-keyd", 3600, cred);
	n = bundle(&tg, &b);
	ck_assert_int_eq(open_dev(b, n), VEIL_ERR_BAD_SIGNATURE);
	free(b);
	/* Revoked by a statement the device holds. */
	tg = target();
	n = bundle(&tg, &b);
	struct veil__trust t = trust();
	t.revoked = revoke_keyd;
	t.revoked_ctx = (void *)"keyd-1";
	struct veil__rxkey *keys[] = { rx };
	struct veil__bundle_self self = { .cred = &dev_cred, .rxkeys = keys, .n_rxkeys = 1 };
	struct veil__grants *g = NULL;
	size_t idx;
	ck_assert_int_eq(veil__bundle_open(b, n, &t, &self, NULL, &idx, &g), VEIL_ERR_REVOKED);
	t.revoked_ctx = (void *)"keyd-2";
	ck_assert_int_eq(veil__bundle_open(b, n, &t, &self, NULL, &idx, &g), VEIL_OK);
	veil__grants_free(&g);
	free(b);
}
END_TEST

/* What a broker can check of a bundle a bridge forwards (veil__bundle_verify):
 * the signer's steps of veil__bundle_open, with nothing opened. */
START_TEST(test_bundle_verify)
{
	struct target tg = target();
	uint8_t *b = NULL;
	size_t n = bundle(&tg, &b);
	struct veil__trust t = trust();
	struct veil__bundle_view v;
	ck_assert_int_eq(veil__bundle_verify(b, n, &t, &v), VEIL_OK);
	ck_assert_uint_eq(v.client_id_len, 5);
	ck_assert_mem_eq(v.client_id, "dev-1", 5);
	ck_assert_str_eq(v.signer.client_id, "keyd-1");
	ck_assert_int_eq(veil__bundle_verify(b, n, &t, NULL), VEIL_OK);
	/* Every byte is signed or structure: none changes without a refusal. */
	for (size_t i = 0; i < n; i++) {
		b[i] ^= 1;
		ck_assert_msg(veil__bundle_verify(b, n, &t, &v) != VEIL_OK, "byte %zu", i);
		b[i] ^= 1;
	}
	ck_assert_int_eq(veil__bundle_verify(b, n - 1, &t, &v), VEIL_ERR_TRUNCATED);
	ck_assert_int_eq(veil__bundle_verify(b, 10, &t, &v), VEIL_ERR_TRUNCATED);
	ck_assert_uint_eq(v.client_id_len, 0); /* nothing handed out */
	t.revoked = revoke_keyd;
	t.revoked_ctx = (void *)"keyd-1";
	ck_assert_int_eq(veil__bundle_verify(b, n, &t, &v), VEIL_ERR_REVOKED);
	t = trust();
	t.n_authorities = 0;
	ck_assert_int_eq(veil__bundle_verify(b, n, &t, &v), VEIL_ERR_WRONG_AUTHORITY);
	free(b);
	uint8_t cred[VEIL_CREDENTIAL_MAX];
	tg.cred_len = test_credential_make(auth, keyd, "keyd-1", "sensor", 3600, cred);
	tg.cred = cred;
	n = bundle(&tg, &b);
	t = trust();
	ck_assert_int_eq(veil__bundle_verify(b, n, &t, &v), VEIL_ERR_WRONG_ROLE);
	free(b);
	tg.cred_len = test_credential_make(other_auth, keyd, "keyd-1", "veil-keyd", 3600, cred);
	n = bundle(&tg, &b);
	ck_assert_int_eq(veil__bundle_verify(b, n, &t, &v), VEIL_ERR_WRONG_AUTHORITY);
	ck_assert_int_eq(veil__bundle_verify(b, n, NULL, &v), VEIL_ERR_INVAL);
	free(b);
}
END_TEST

START_TEST(test_bundle_tamper_every_byte)
{
	struct target tg = target();
	uint8_t *b = NULL;
	size_t n = bundle(&tg, &b);
	size_t L = 5, fixed = VEIL__BUNDLE_FIXED + L;
	size_t ct_end = fixed + veil__get_u32(b + 139 + L);
	for (size_t i = 0; i < n; i++) {
		int want = VEIL_ERR_BAD_SIGNATURE; /* every other byte is signed */
		if (i == 0)
			want = VEIL_ERR_VERSION;
		else if (i == 1)
			want = VEIL_ERR_PARSE; /* kind */
		else if (i == 82 || (i >= fixed - 4 && i < fixed) || i == ct_end || i == ct_end + 1)
			want = STRUCTURE; /* L, n, C */
		else if (i >= ct_end + 2 && i < ct_end + 2 + keyd_cred_len)
			want = cred_flip_err(keyd_cred, i - ct_end - 2, false);
		b[i] ^= 1;
		assert_err(open_dev(b, n), want, i);
		b[i] ^= 1;
	}
	ck_assert_int_eq(open_dev(b, n), VEIL_OK);
	free(b);
}
END_TEST

static void resign(uint8_t *b, size_t n, const char *domain)
{
	struct veil__part parts[] = { { domain, strlen(domain) }, { b, n - VEIL_SIG_BYTES } };
	ck_assert_int_eq(veil__identity_sign(keyd, parts, 2, b + n - VEIL_SIG_BYTES), VEIL_OK);
}

/* keyd itself changing a field after sealing: the AEAD's additional data
 * (every byte before the ciphertext) and the ciphertext are bound. */
START_TEST(test_bundle_aead_binds_header)
{
	struct target tg = target();
	uint8_t *b = NULL;
	size_t n = bundle(&tg, &b);
	size_t L = 5, fixed = VEIL__BUNDLE_FIXED + L;
	static const size_t at[] = { 2, 9, 10, 25, 83 + 5, 114 + 5, 115 + 5, 138 + 5, 143 + 5, 143 + 5 + 100 };
	for (size_t k = 0; k < sizeof(at) / sizeof(at[0]); k++) {
		b[at[k]] ^= 1;
		resign(b, n, "veil-bundle-v1");
		assert_err(open_dev(b, n), VEIL_ERR_DECRYPT, at[k]);
		b[at[k]] ^= 1;
	}
	ck_assert_uint_lt(143 + 5 + 100, n);
	ck_assert_uint_eq(fixed, 148);
	/* The receive key is looked up before decryption. */
	b[26] ^= 1;
	resign(b, n, "veil-bundle-v1");
	ck_assert_int_eq(open_dev(b, n), VEIL_ERR_WRONG_RECEIVE_KEY);
	b[26] ^= 1;
	resign(b, n, "veil-bundle-v1");
	ck_assert_int_eq(open_dev(b, n), VEIL_OK);
	/* Signed with another domain (a revocation statement's): refused. */
	resign(b, n, "veil-revocation-v1");
	ck_assert_int_eq(open_dev(b, n), VEIL_ERR_BAD_SIGNATURE);
	free(b);
}
END_TEST

/* A bundle around an arbitrary plaintext, sealed and signed the way section
 * 12 says (the builder refuses bad grants, so the parser's refusals need this). */
static size_t seal_plaintext(const uint8_t *pt, size_t pt_len, uint8_t **out)
{
	struct target tg = target();
	tg.n_grants = 0;
	uint8_t *tmpl = NULL;
	size_t tn = bundle(&tg, &tmpl); /* header of the right shape, 2-byte plaintext */
	size_t fixed = VEIL__BUNDLE_FIXED + 5;
	size_t n = fixed + pt_len + VEIL_TAG_BYTES + 2 + keyd_cred_len + VEIL_SIG_BYTES;
	uint8_t *b = malloc(n);
	ck_assert_ptr_nonnull(b);
	memcpy(b, tmpl, fixed);
	veil__put_u32(b + fixed - 4, (uint32_t)(pt_len + VEIL_TAG_BYTES));
	uint8_t eph_pk[32], shared[32], k[32];
	crypto_scalarmult_base(eph_pk, eph_fixed);
	ck_assert_int_eq(crypto_scalarmult(shared, eph_fixed, veil__rxkey_public(rx)), 0);
	crypto_generichash_state st;
	crypto_generichash_init(&st, NULL, 0, 32);
	crypto_generichash_update(&st, (const uint8_t *)"veil-bundle-key-v1", 18);
	crypto_generichash_update(&st, shared, 32);
	crypto_generichash_update(&st, eph_pk, 32);
	crypto_generichash_update(&st, veil__rxkey_public(rx), 32);
	crypto_generichash_final(&st, k, 32);
	crypto_aead_xchacha20poly1305_ietf_encrypt(b + fixed, NULL, pt, pt_len, b, fixed, NULL, xnonce_fixed, k);
	size_t off = fixed + pt_len + VEIL_TAG_BYTES;
	veil__put_u16(b + off, (uint16_t)keyd_cred_len);
	memcpy(b + off + 2, keyd_cred, keyd_cred_len);
	resign(b, n, "veil-bundle-v1");
	free(tmpl);
	ck_assert_uint_gt(tn, 0);
	*out = b;
	return n;
}

static size_t put_grant_raw(uint8_t *p, const char *scope, size_t sl, uint32_t key_id, uint64_t from,
                            uint64_t until, uint64_t accept, uint8_t flags)
{
	p[0] = (uint8_t)sl;
	memcpy(p + 1, scope, sl);
	uint8_t *q = p + 1 + sl;
	veil__put_u32(q, key_id);
	veil__put_u32(q + 4, 1);
	veil__put_u64(q + 8, from);
	veil__put_u64(q + 16, until);
	veil__put_u64(q + 24, accept);
	veil__put_u32(q + 32, 5);
	q[36] = flags;
	memset(q + 37, 0x5a, 32);
	return sl + VEIL__GRANT_FIXED;
}

static int open_plaintext(const uint8_t *pt, size_t n)
{
	uint8_t *b = NULL;
	size_t bn = seal_plaintext(pt, n, &b);
	int rc = open_dev(b, bn);
	free(b);
	return rc;
}

START_TEST(test_bundle_plaintext_rules)
{
	uint8_t pt[1024];
	size_t n;
#define GRANT(scope, id, from, until, accept, flags) \
	put_grant_raw(pt + n, scope, strlen(scope), id, from, until, accept, flags)
	/* Well formed, as a baseline: two grants. */
	n = 2;
	veil__put_u16(pt, 2);
	n += GRANT("a/#", 0x80000000, 1, 2, 3, 7);
	n += GRANT("b/+", 0xffffffff, 5, 5, 5, 0);
	ck_assert_int_eq(open_plaintext(pt, n), VEIL_OK);
	/* Counts that do not fit, and one grant too many or too few. */
	veil__put_u16(pt, 3);
	ck_assert_int_eq(open_plaintext(pt, n), VEIL_ERR_TRUNCATED);
	veil__put_u16(pt, 0xffff);
	ck_assert_int_eq(open_plaintext(pt, n), VEIL_ERR_TRUNCATED);
	veil__put_u16(pt, 1);
	ck_assert_int_eq(open_plaintext(pt, n), VEIL_ERR_PARSE); /* the second grant is trailing */
	veil__put_u16(pt, 2);
	pt[n] = 0;
	ck_assert_int_eq(open_plaintext(pt, n + 1), VEIL_ERR_PARSE); /* trailing byte */
	ck_assert_int_eq(open_plaintext(pt, n - 1), VEIL_ERR_TRUNCATED);
	ck_assert_int_eq(open_plaintext(pt, 2), VEIL_ERR_TRUNCATED); /* count 2, no grant */
	/* Each field's rule. */
	struct {
		const char *scope;
		size_t sl;
		uint32_t id;
		uint64_t from, until, accept;
		uint8_t flags;
		int want;
	} bad[] = {
		{ "a", 0, 0x80000000, 1, 2, 3, 0, VEIL_ERR_PARSE },           /* empty scope */
		{ "a\0b", 3, 0x80000000, 1, 2, 3, 0, VEIL_ERR_PARSE },        /* NUL in the scope */
		{ "a/#/b", 5, 0x80000000, 1, 2, 3, 0, VEIL_ERR_PARSE },       /* not a topic filter */
		{ "a/b+", 4, 0x80000000, 1, 2, 3, 0, VEIL_ERR_PARSE },
		{ "a", 1, 0x7fffffff, 1, 2, 3, 0, VEIL_ERR_PARSE },           /* a static keyring's key id */
		{ "a", 1, 0, 1, 2, 3, 0, VEIL_ERR_PARSE },
		{ "a", 1, 0x80000000, 1, 2, 3, 0x08, VEIL_ERR_RESERVED_FLAGS },
		{ "a", 1, 0x80000000, 1, 2, 3, 0x80, VEIL_ERR_RESERVED_FLAGS },
		{ "a", 1, 0x80000000, 3, 2, 3, 0, VEIL_ERR_PARSE },           /* send_from > send_until */
		{ "a", 1, 0x80000000, 1, 4, 3, 0, VEIL_ERR_PARSE },           /* send_until > accept_until */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		n = 2;
		veil__put_u16(pt, 2);
		n += GRANT("ok/#", 0x90000000, 1, 2, 3, 0);
		n += put_grant_raw(pt + n, bad[i].scope, bad[i].sl, bad[i].id, bad[i].from, bad[i].until,
		                   bad[i].accept, bad[i].flags);
		ck_assert_msg(open_plaintext(pt, n) == bad[i].want, "case %zu", i);
	}
	/* A scope length running past the plaintext. */
	n = 2;
	veil__put_u16(pt, 1);
	n += GRANT("abc", 0x80000000, 1, 2, 3, 0);
	pt[2] = 200;
	ck_assert_int_eq(open_plaintext(pt, n), VEIL_ERR_TRUNCATED);
	/* The longest scope, 255 bytes. */
	char scope[256];
	memset(scope, 'x', 255);
	scope[255] = '\0';
	n = 2;
	veil__put_u16(pt, 1);
	n += GRANT(scope, 0x80000000, 1, 2, 3, 0);
	ck_assert_int_eq(open_plaintext(pt, n), VEIL_OK);
	/* Two grants with one key id. */
	n = 2;
	veil__put_u16(pt, 2);
	n += GRANT("a/#", 0x80000005, 1, 2, 3, 0);
	n += GRANT("b/#", 0x80000005, 1, 2, 3, 0);
	ck_assert_int_eq(open_plaintext(pt, n), VEIL_ERR_PARSE);
#undef GRANT
}
END_TEST

START_TEST(test_bundle_build_refuses)
{
	struct target tg = target();
	struct veil__grant g[2] = { grants2[0], grants2[1] };
	struct veil__bundle_params p = { .keyd = keyd, .credential = keyd_cred, .credential_len = keyd_cred_len,
		                         .recipient_cred_id = dev_cred.id, .recipient_sender_id = dev.sender,
		                         .recipient_client_id = "dev-1", .receive_pk = tg.receive_pk,
		                         .echo_nonce = nonce16, .version = 1, .grants = g, .n_grants = 2 };
	size_t cap = veil__bundle_len(&p), n = 0;
	ck_assert_uint_gt(cap, 0);
	uint8_t *b = malloc(cap);
	ck_assert_int_eq(veil__bundle_build(&p, b, cap - 1, &n), VEIL_ERR_INVAL);
	g[1].key_id = g[0].key_id;
	ck_assert_int_eq(veil__bundle_build(&p, b, cap, &n), VEIL_ERR_INVAL); /* duplicate key id */
	g[1] = grants2[1];
	struct veil__grant bad = grants2[1];
	bad.key_id = 0x7fffffff;
	g[1] = bad;
	ck_assert_uint_eq(veil__bundle_len(&p), 0);
	ck_assert_int_eq(veil__bundle_build(&p, b, cap, &n), VEIL_ERR_INVAL);
	bad = grants2[1];
	bad.flags = 0x10;
	g[1] = bad;
	ck_assert_int_eq(veil__bundle_build(&p, b, cap, &n), VEIL_ERR_INVAL);
	bad = grants2[1];
	bad.scope[0] = '\0';
	g[1] = bad;
	ck_assert_int_eq(veil__bundle_build(&p, b, cap, &n), VEIL_ERR_INVAL);
	bad = grants2[1];
	memset(bad.scope, 'a', sizeof(bad.scope)); /* no terminator within 255 bytes */
	g[1] = bad;
	ck_assert_int_eq(veil__bundle_build(&p, b, cap, &n), VEIL_ERR_INVAL);
	bad = grants2[1];
	bad.accept_until = bad.send_until - 1;
	g[1] = bad;
	ck_assert_int_eq(veil__bundle_build(&p, b, cap, &n), VEIL_ERR_INVAL);
	g[1] = grants2[1];
	/* More grants than the format counts: refused before any is read. */
	p.n_grants = (size_t)VEIL__GRANTS_MAX + 1;
	ck_assert_uint_eq(veil__bundle_len(&p), 0);
	p.n_grants = 2;
	p.recipient_client_id = "";
	ck_assert_int_eq(veil__bundle_build(&p, b, cap, &n), VEIL_ERR_INVAL);
	p.recipient_client_id = "dev-1";
	/* A receive key of small order. */
	static const uint8_t zero[VEIL__X25519_BYTES];
	p.receive_pk = zero;
	ck_assert_int_eq(veil__bundle_build(&p, b, cap, &n), VEIL_ERR_PARSE);
	free(b);
}
END_TEST

START_TEST(test_bundle_structure)
{
	struct target tg = target();
	uint8_t *b = NULL;
	size_t n = bundle(&tg, &b);
	struct veil__bundle_view v;
	for (size_t len = 0; len < n; len++)
		ck_assert_msg(veil__bundle_parse(b, len, &v) == VEIL_ERR_TRUNCATED, "len %zu", len);
	b[n] = 0; /* bundle() allocated one byte more */
	ck_assert_int_eq(veil__bundle_parse(b, n + 1, &v), VEIL_ERR_PARSE); /* trailing byte */
	ck_assert_int_eq(veil__bundle_parse(b, n, &v), VEIL_OK);
	/* The client id length: 1..128. */
	uint8_t keep = b[82];
	b[82] = 0;
	ck_assert_int_eq(veil__bundle_parse(b, n, &v), VEIL_ERR_PARSE);
	b[82] = VEIL_CLIENT_ID_MAX + 1;
	ck_assert_int_eq(veil__bundle_parse(b, n, &v), VEIL_ERR_PARSE);
	b[82] = keep;
	/* The ciphertext length: at least a count and a tag, at most the largest plaintext. */
	size_t at = 139 + 5;
	uint32_t ct = veil__get_u32(b + at);
	veil__put_u32(b + at, 17);
	ck_assert_int_eq(veil__bundle_parse(b, n, &v), VEIL_ERR_PARSE);
	veil__put_u32(b + at, VEIL__BUNDLE_PT_MAX + VEIL_TAG_BYTES + 1);
	ck_assert_int_eq(veil__bundle_parse(b, n, &v), VEIL_ERR_TOO_LARGE);
	veil__put_u32(b + at, 0xffffffff);
	ck_assert_int_eq(veil__bundle_parse(b, n, &v), VEIL_ERR_TOO_LARGE);
	veil__put_u32(b + at, ct);
	ck_assert_int_eq(veil__bundle_parse(b, n, &v), VEIL_OK);
	b[1] = VEIL__KIND_REVOCATION;
	ck_assert_int_eq(veil__bundle_parse(b, n, &v), VEIL_ERR_PARSE);
	b[1] = VEIL__KIND_BUNDLE;
	/* Larger than any bundle can be: refused on its length alone. */
	uint8_t *big = calloc(1, (size_t)VEIL__BUNDLE_MAX + 1);
	ck_assert_ptr_nonnull(big);
	memcpy(big, b, n);
	ck_assert_int_eq(veil__bundle_parse(big, (size_t)VEIL__BUNDLE_MAX + 1, &v), VEIL_ERR_TOO_LARGE);
	free(big);
	ck_assert_int_eq(veil__bundle_parse(NULL, 1, &v), VEIL_ERR_INVAL);
	free(b);
}
END_TEST

/* The largest bundle the format counts: 65535 grants, sealed and opened. */
START_TEST(test_bundle_most_grants)
{
	struct veil__grants *in = NULL;
	ck_assert_int_eq(veil__grants_new(VEIL__GRANTS_MAX, &in), VEIL_OK);
	ck_assert_int_eq(veil__grants_new((size_t)VEIL__GRANTS_MAX + 1, &in), VEIL_ERR_INVAL);
	for (size_t i = 0; i < in->n; i++) {
		in->g[i] = grant("s/+/t", VEIL__GRANT_KEY_ID_MIN + (uint32_t)(in->n - i), 0);
		snprintf(in->g[i].scope, sizeof(in->g[i].scope), "s/%zu/#", i);
	}
	struct target tg = target();
	tg.grants = in->g;
	tg.n_grants = in->n;
	uint8_t *b = NULL;
	size_t n = bundle(&tg, &b);
	struct veil__grants *out = NULL;
	ck_assert_int_eq(open_as(b, n, &dev_cred, 0, NULL, &out), VEIL_OK);
	ck_assert_uint_eq(out->n, VEIL__GRANTS_MAX);
	assert_grant_eq(&out->g[0], &in->g[0]);
	assert_grant_eq(&out->g[VEIL__GRANTS_MAX - 1], &in->g[VEIL__GRANTS_MAX - 1]);
	veil__grants_free(&out);
	veil__grants_free(&in);
	free(b);
}
END_TEST

/* ---- revocation statements ---------------------------------------------- */

static struct veil__rev_entry entries2[2];

static size_t revstmt(const struct veil_identity *signer, const uint8_t *cred, size_t cred_len, size_t n_entries,
                      uint8_t **out)
{
	memset(entries2, 0, sizeof(entries2));
	entries2[0].kind = VEIL__REV_CREDENTIAL;
	memset(entries2[0].id, 0xc1, VEIL_CREDENTIAL_ID_BYTES);
	entries2[0].keep_until = now + 1000;
	entries2[1].kind = VEIL__REV_SENDER;
	memcpy(entries2[1].id, dev.sender, VEIL_SENDER_ID_BYTES);
	entries2[1].keep_until = now + 2000;
	struct veil__revstmt_params p = { .keyd = signer, .credential = cred, .credential_len = cred_len,
		                          .version = 5000, .issued_at = now, .entries = entries2,
		                          .n_entries = n_entries };
	size_t cap = veil__revstmt_len(n_entries, cred_len), n = 0;
	ck_assert_uint_gt(cap, 0);
	*out = malloc(cap + 1);
	ck_assert_int_eq(veil__revstmt_build(&p, *out, cap, &n), VEIL_OK);
	ck_assert_uint_eq(n, cap);
	return n;
}

static int rev_verify(const uint8_t *s, size_t n)
{
	struct veil__trust t = trust();
	struct veil__revstmt_view v;
	return veil__revstmt_verify(s, n, &t, &v);
}

START_TEST(test_revstmt_round_trip)
{
	uint8_t *s = NULL;
	size_t n = revstmt(keyd, keyd_cred, keyd_cred_len, 2, &s);
	struct veil__trust t = trust();
	struct veil__revstmt_view v;
	ck_assert_int_eq(veil__revstmt_verify(s, n, &t, &v), VEIL_OK);
	ck_assert_uint_eq(v.version, 5000);
	ck_assert_uint_eq(v.issued_at, now);
	ck_assert_uint_eq(v.n_entries, 2);
	for (size_t i = 0; i < 2; i++) {
		struct veil__rev_entry e;
		veil__revstmt_entry(&v, i, &e);
		ck_assert_uint_eq(e.kind, entries2[i].kind);
		ck_assert_mem_eq(e.id, entries2[i].id, VEIL_CREDENTIAL_ID_BYTES);
		ck_assert_uint_eq(e.keep_until, entries2[i].keep_until);
	}
	ck_assert_str_eq(v.signer.client_id, "keyd-1");
	free(s);
	n = revstmt(keyd, keyd_cred, keyd_cred_len, 0, &s); /* nothing revoked */
	ck_assert_int_eq(rev_verify(s, n), VEIL_OK);
	free(s);
}
END_TEST

START_TEST(test_revstmt_signer)
{
	uint8_t cred[VEIL_CREDENTIAL_MAX];
	uint8_t *s = NULL;
	size_t cl = test_credential_make(auth, keyd, "keyd-1", "admin", 3600, cred);
	size_t n = revstmt(keyd, cred, cl, 2, &s);
	ck_assert_int_eq(rev_verify(s, n), VEIL_ERR_WRONG_ROLE);
	free(s);
	cl = test_credential_make(other_auth, keyd, "keyd-1", "veil-keyd", 3600, cred);
	n = revstmt(keyd, cred, cl, 2, &s);
	ck_assert_int_eq(rev_verify(s, n), VEIL_ERR_WRONG_AUTHORITY);
	free(s);
	cl = test_credential_make(auth, keyd, "keyd-1", "veil-keyd", -60, cred);
	n = revstmt(keyd, cred, cl, 2, &s);
	ck_assert_int_eq(rev_verify(s, n), VEIL_ERR_EXPIRED);
	free(s);
	n = revstmt(other_auth, keyd_cred, keyd_cred_len, 2, &s); /* signed by another key */
	ck_assert_int_eq(rev_verify(s, n), VEIL_ERR_BAD_SIGNATURE);
	free(s);
	n = revstmt(keyd, keyd_cred, keyd_cred_len, 2, &s);
	struct veil__trust t = trust();
	t.revoked = revoke_keyd;
	t.revoked_ctx = (void *)"keyd-1";
	struct veil__revstmt_view v;
	ck_assert_int_eq(veil__revstmt_verify(s, n, &t, &v), VEIL_ERR_REVOKED);
	/* A bundle signature does not verify as a statement's (domains differ). */
	resign(s, n, "veil-bundle-v1");
	ck_assert_int_eq(rev_verify(s, n), VEIL_ERR_BAD_SIGNATURE);
	free(s);
}
END_TEST

START_TEST(test_revstmt_tamper_every_byte)
{
	uint8_t *s = NULL;
	size_t n = revstmt(keyd, keyd_cred, keyd_cred_len, 2, &s);
	size_t e1 = VEIL__REVSTMT_FIXED, e2 = e1 + VEIL__REV_ENTRY_BYTES, tr = e2 + VEIL__REV_ENTRY_BYTES;
	for (size_t i = 0; i < n; i++) {
		int want = VEIL_ERR_BAD_SIGNATURE; /* versions, ids, keep_until, signature */
		if (i == 0)
			want = VEIL_ERR_VERSION;
		else if (i == 1 || i == e1 || i == e2)
			want = VEIL_ERR_PARSE; /* kind of the statement, of an entry */
		else if (i >= e2 + 1 + VEIL_SENDER_ID_BYTES && i < e2 + 1 + VEIL_CREDENTIAL_ID_BYTES)
			want = VEIL_ERR_PARSE; /* a sender id entry's zero padding */
		else if ((i >= 18 && i < 22) || i == tr || i == tr + 1)
			want = STRUCTURE; /* N, C */
		else if (i >= tr + 2 && i < tr + 2 + keyd_cred_len)
			want = cred_flip_err(keyd_cred, i - tr - 2, false);
		s[i] ^= 1;
		assert_err(rev_verify(s, n), want, i);
		s[i] ^= 1;
	}
	ck_assert_int_eq(rev_verify(s, n), VEIL_OK);
	free(s);
}
END_TEST

START_TEST(test_revstmt_structure)
{
	uint8_t *s = NULL;
	size_t n = revstmt(keyd, keyd_cred, keyd_cred_len, 2, &s);
	struct veil__revstmt_view v;
	for (size_t len = 0; len < n; len++)
		ck_assert_msg(veil__revstmt_parse(s, len, &v) == VEIL_ERR_TRUNCATED, "len %zu", len);
	s[n] = 0;
	ck_assert_int_eq(veil__revstmt_parse(s, n + 1, &v), VEIL_ERR_PARSE);
	veil__put_u32(s + 18, 3); /* one entry more: the trailer's first bytes are no entry */
	ck_assert_int_eq(veil__revstmt_parse(s, n, &v), VEIL_ERR_PARSE);
	veil__put_u32(s + 18, (uint32_t)((n - VEIL__REVSTMT_FIXED) / VEIL__REV_ENTRY_BYTES + 1)); /* cannot fit */
	ck_assert_int_eq(veil__revstmt_parse(s, n, &v), VEIL_ERR_TRUNCATED);
	veil__put_u32(s + 18, 1); /* one fewer: the second is read as the trailer */
	ck_assert_int_eq(veil__revstmt_parse(s, n, &v), VEIL_ERR_TRUNCATED);
	veil__put_u32(s + 18, VEIL__REV_ENTRIES_MAX + 1);
	ck_assert_int_eq(veil__revstmt_parse(s, n, &v), VEIL_ERR_TOO_LARGE);
	veil__put_u32(s + 18, 0xffffffff);
	ck_assert_int_eq(veil__revstmt_parse(s, n, &v), VEIL_ERR_TOO_LARGE);
	veil__put_u32(s + 18, 2);
	ck_assert_int_eq(veil__revstmt_parse(s, n, &v), VEIL_OK);
	s[VEIL__REVSTMT_FIXED] = 3; /* entry kind */
	ck_assert_int_eq(veil__revstmt_parse(s, n, &v), VEIL_ERR_PARSE);
	s[VEIL__REVSTMT_FIXED] = VEIL__REV_CREDENTIAL;
	s[1] = VEIL__KIND_BUNDLE;
	ck_assert_int_eq(veil__revstmt_parse(s, n, &v), VEIL_ERR_PARSE);
	s[1] = VEIL__KIND_REVOCATION;
	uint8_t *big = calloc(1, VEIL__REVSTMT_MAX + 1);
	ck_assert_ptr_nonnull(big);
	memcpy(big, s, n);
	ck_assert_int_eq(veil__revstmt_parse(big, VEIL__REVSTMT_MAX + 1, &v), VEIL_ERR_TOO_LARGE);
	free(big);
	ck_assert_int_eq(veil__revstmt_parse(NULL, 1, &v), VEIL_ERR_INVAL);
	/* The builder refuses what the parser refuses. */
	struct veil__rev_entry e = { .kind = VEIL__REV_SENDER };
	memset(e.id, 1, sizeof(e.id)); /* padding not zero */
	struct veil__revstmt_params p = { .keyd = keyd, .credential = keyd_cred, .credential_len = keyd_cred_len,
		                          .entries = &e, .n_entries = 1 };
	size_t got = 0;
	ck_assert_int_eq(veil__revstmt_build(&p, s, n, &got), VEIL_ERR_INVAL);
	e.kind = 0;
	ck_assert_int_eq(veil__revstmt_build(&p, s, n, &got), VEIL_ERR_INVAL);
	ck_assert_uint_eq(veil__revstmt_len((size_t)VEIL__REV_ENTRIES_MAX + 1, keyd_cred_len), 0);
	ck_assert_uint_eq(veil__revstmt_len(1, 0), 0);
	free(s);
}
END_TEST

/* ---- receive keys, roles ------------------------------------------------ */

START_TEST(test_rxkey_and_roles)
{
	struct veil__rxkey *a = NULL, *b = NULL;
	ck_assert_int_eq(veil__rxkey_generate(&a), VEIL_OK);
	ck_assert_int_eq(veil__rxkey_generate(&b), VEIL_OK);
	ck_assert_mem_ne(veil__rxkey_public(a), veil__rxkey_public(b), VEIL__X25519_BYTES);
	veil__rxkey_free(&a);
	veil__rxkey_free(&a); /* twice: a no-op */
	ck_assert_ptr_null(a);
	veil__rxkey_free(&b);
	struct veil_credential c;
	memset(&c, 0, sizeof(c));
	static const struct {
		const char *roles;
		bool has;
	} cases[] = { { "veil-keyd", true }, { "admin,veil-keyd", true }, { "veil-keyd,admin", true },
		      { "a,veil-keyd,b", true }, { "", false }, { "veil-keyd2", false }, { "xveil-keyd", false },
		      { "veil-key", false }, { "veil,keyd", false } };
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		strcpy(c.roles, cases[i].roles);
		ck_assert_msg(veil__credential_has_role(&c, VEIL__ROLE_KEYD) == cases[i].has, "%s", cases[i].roles);
	}
}
END_TEST

/* ---- vectors (docs/PROTOCOL.md section 9) -------------------------------- */

#define VEC(name, buf) test_vector_exact(name, buf, sizeof(buf))

static size_t test_vector_exact(const char *name, uint8_t *buf, size_t cap)
{
	long n = test_vector(name, buf, cap);
	ck_assert_msg(n > 0 && (size_t)n <= cap, "vector %s", name);
	return (size_t)n;
}

START_TEST(test_vectors)
{
	static uint8_t seed[32], want[4096], got[4096], cred[1024], kcred[1024], tmp[64];
	const uint64_t vnow = 1700000300;
	/* Identities and credentials, as section 9 makes them. */
	VEC("device_seed", seed);
	struct veil_identity *d = NULL, *a = NULL, *k = NULL;
	ck_assert_int_eq(veil_identity_from_seed(seed, &d), VEIL_OK);
	VEC("authority_seed", seed);
	ck_assert_int_eq(veil_identity_from_seed(seed, &a), VEIL_OK);
	VEC("keyd_seed", seed);
	ck_assert_int_eq(veil_identity_from_seed(seed, &k), VEIL_OK);
	uint8_t apk[VEIL_PK_BYTES], kpk[VEIL_PK_BYTES];
	veil_identity_public(a, apk);
	veil_identity_public(k, kpk);
	VEC("keyd_pk", tmp);
	ck_assert_mem_eq(kpk, tmp, 32);
	size_t cl = VEC("credential", cred);
	struct veil_credential kc = { .issued_at = 1700000000, .expires_at = 4102444800ULL };
	memset(kc.id, 0x4b, sizeof(kc.id));
	memcpy(kc.device_pk, kpk, sizeof(kpk));
	strcpy(kc.client_id, "veil-keyd");
	strcpy(kc.roles, "veil-keyd");
	size_t kcl = 0;
	ck_assert_int_eq(veil__credential_issue_id(a, &kc, kcred, sizeof(kcred), &kcl), VEIL_OK);
	size_t wl = VEC("keyd_credential", want);
	ck_assert_uint_eq(kcl, wl);
	ck_assert_mem_eq(kcred, want, wl);
	/* Receive keys and the ephemeral key. */
	struct veil__rxkey *rk = NULL, *next = NULL, *eph = NULL;
	VEC("receive_seed", seed);
	ck_assert_int_eq(veil__rxkey_from_secret(seed, &rk), VEIL_OK);
	VEC("receive_pk", tmp);
	ck_assert_mem_eq(veil__rxkey_public(rk), tmp, 32);
	VEC("next_receive_seed", seed);
	ck_assert_int_eq(veil__rxkey_from_secret(seed, &next), VEIL_OK);
	VEC("next_receive_pk", tmp);
	ck_assert_mem_eq(veil__rxkey_public(next), tmp, 32);
	uint8_t eph_sk[32];
	VEC("ephemeral_seed", eph_sk);
	ck_assert_int_eq(veil__rxkey_from_secret(eph_sk, &eph), VEIL_OK);
	VEC("ephemeral_pk", tmp);
	ck_assert_mem_eq(veil__rxkey_public(eph), tmp, 32);

	/* The request and the acknowledgement. */
	uint8_t rnonce[16], anonce[16], bnonce[24];
	VEC("request_nonce", rnonce);
	VEC("ack_nonce", anonce);
	VEC("bundle_nonce", bnonce);
	struct veil__devmsg_params mp = { .device = d, .credential = cred, .credential_len = cl,
		                          .client_id = "sensor-1", .kind = VEIL__KIND_REQUEST,
		                          .timestamp = 1700000300, .nonce = rnonce,
		                          .receive_pk = veil__rxkey_public(rk), .version = 0 };
	size_t n = 0;
	ck_assert_int_eq(veil__devmsg_build(&mp, got, sizeof(got), &n), VEIL_OK);
	wl = VEC("devmsg_request", want);
	ck_assert_uint_eq(n, wl);
	ck_assert_mem_eq(got, want, n);
	struct veil__trust t = { .authorities = (const uint8_t(*)[VEIL_PK_BYTES])apk, .n_authorities = 1,
		                 .now = vnow };
	struct veil__devmsg dm;
	ck_assert_int_eq(veil__devmsg_verify(want, wl, "sensor-1", &t, 60, &dm), VEIL_OK);
	mp.kind = VEIL__KIND_ACK;
	mp.timestamp = 1700000400;
	mp.nonce = anonce;
	mp.receive_pk = veil__rxkey_public(next);
	mp.version = 1700000350000000ULL;
	ck_assert_int_eq(veil__devmsg_build(&mp, got, sizeof(got), &n), VEIL_OK);
	wl = VEC("devmsg_ack", want);
	ck_assert_uint_eq(n, wl);
	ck_assert_mem_eq(got, want, n);

	/* The bundle: two grants, the second superseding. */
	struct veil__grant g[2];
	g[0] = (struct veil__grant){ .key_id = 0x80000001, .epoch = 1, .send_from = 1700000000,
		                     .send_until = 1700086400, .accept_until = 1700090000, .grace_s = 0,
		                     .flags = VEIL__GRANT_SIGNED | VEIL__GRANT_MAY_SEND };
	strcpy(g[0].scope, "factory/sensor-1/#");
	memset(g[0].key, 0x67, 32);
	g[1] = (struct veil__grant){ .key_id = 0x80000002, .epoch = 2, .send_from = 1700086400,
		                     .send_until = 1700172800, .accept_until = 1700176400, .grace_s = 30,
		                     .flags = VEIL__GRANT_SUPERSEDES };
	strcpy(g[1].scope, "factory/#");
	memset(g[1].key, 0x68, 32);
	struct veil_credential dc;
	ck_assert_int_eq(veil_credential_parse(cred, cl, &dc), VEIL_OK);
	uint8_t sid[8];
	veil_sender_id(dc.device_pk, sid);
	struct veil__bundle_params bp = { .keyd = k, .credential = kcred, .credential_len = kcl,
		                          .recipient_cred_id = dc.id, .recipient_sender_id = sid,
		                          .recipient_client_id = "sensor-1", .receive_pk = veil__rxkey_public(rk),
		                          .echo_nonce = rnonce, .version = 1700000350000000ULL, .grants = g,
		                          .n_grants = 2 };
	ck_assert_int_eq(veil__bundle_build_det(&bp, eph_sk, bnonce, got, sizeof(got), &n), VEIL_OK);
	wl = VEC("bundle", want);
	ck_assert_uint_eq(n, wl);
	ck_assert_mem_eq(got, want, n);
	/* Its plaintext, decrypted with the bundle key of the vectors. */
	uint8_t bk[32], pt[1024], ptw[1024];
	VEC("bundle_key", bk);
	struct veil__bundle_view v;
	ck_assert_int_eq(veil__bundle_parse(want, wl, &v), VEIL_OK);
	unsigned long long ptl = 0;
	ck_assert_int_eq(crypto_aead_xchacha20poly1305_ietf_decrypt(pt, &ptl, NULL, v.ciphertext, v.ciphertext_len,
	                                                            want, (size_t)(v.ciphertext - want), v.xnonce, bk),
	                 0);
	size_t pl = VEC("bundle_plaintext", ptw);
	ck_assert_uint_eq(ptl, pl);
	ck_assert_mem_eq(pt, ptw, pl);
	/* And the device opens it. */
	struct veil__rxkey *keys[] = { rk };
	struct veil__bundle_self self = { .cred = &dc, .rxkeys = keys, .n_rxkeys = 1, .echo_nonce = rnonce };
	struct veil__grants *gs = NULL;
	size_t idx = 9;
	ck_assert_int_eq(veil__bundle_open(want, wl, &t, &self, NULL, &idx, &gs), VEIL_OK);
	ck_assert_uint_eq(gs->n, 2);
	assert_grant_eq(&gs->g[0], &g[0]);
	assert_grant_eq(&gs->g[1], &g[1]);
	veil__grants_free(&gs);

	/* The revocation statement. */
	struct veil__rev_entry e[2] = { { .kind = VEIL__REV_CREDENTIAL, .keep_until = 1800000000 },
		                        { .kind = VEIL__REV_SENDER, .keep_until = 1900000000 } };
	memset(e[0].id, 0x52, 16);
	memset(e[1].id, 0x53, 8);
	struct veil__revstmt_params rp = { .keyd = k, .credential = kcred, .credential_len = kcl,
		                           .version = 1700000500000000ULL, .issued_at = 1700000500, .entries = e,
		                           .n_entries = 2 };
	ck_assert_int_eq(veil__revstmt_build(&rp, got, sizeof(got), &n), VEIL_OK);
	wl = VEC("revocation", want);
	ck_assert_uint_eq(n, wl);
	ck_assert_mem_eq(got, want, n);
	struct veil__revstmt_view rv;
	ck_assert_int_eq(veil__revstmt_verify(want, wl, &t, &rv), VEIL_OK);
	ck_assert_uint_eq(rv.n_entries, 2);

	veil__rxkey_free(&rk);
	veil__rxkey_free(&next);
	veil__rxkey_free(&eph);
	veil_identity_free(&d);
	veil_identity_free(&a);
	veil_identity_free(&k);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("bundle");
	TCase *tc = veil_tcase("core", 10);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_devmsg_round_trip);
	tcase_add_test(tc, test_devmsg_checks);
	tcase_add_test(tc, test_devmsg_build_refuses);
	tcase_add_test(tc, test_devmsg_tamper_every_byte);
	tcase_add_test(tc, test_devmsg_structure);
	tcase_add_test(tc, test_bundle_round_trip);
	tcase_add_test(tc, test_bundle_version_policy);
	tcase_add_test(tc, test_bundle_misaddressed);
	tcase_add_test(tc, test_bundle_wrong_receive_key);
	tcase_add_test(tc, test_bundle_signer);
	tcase_add_test(tc, test_bundle_verify);
	tcase_add_test(tc, test_bundle_tamper_every_byte);
	tcase_add_test(tc, test_bundle_aead_binds_header);
	tcase_add_test(tc, test_bundle_plaintext_rules);
	tcase_add_test(tc, test_bundle_build_refuses);
	tcase_add_test(tc, test_bundle_structure);
	tcase_add_test(tc, test_revstmt_round_trip);
	tcase_add_test(tc, test_revstmt_signer);
	tcase_add_test(tc, test_revstmt_tamper_every_byte);
	tcase_add_test(tc, test_revstmt_structure);
	tcase_add_test(tc, test_rxkey_and_roles);
	tcase_add_test(tc, test_vectors);
	suite_add_tcase(s, tc);
	TCase *big = veil_tcase("largest", 30);
	tcase_add_checked_fixture(big, setup, teardown);
	tcase_add_test(big, test_bundle_most_grants);
	suite_add_tcase(s, big);
	return s;
}

int main(void)
{
	return veil_check_run(suite());
}
