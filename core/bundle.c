/*
 * The key service's wire formats (docs/PROTOCOL.md sections 10-13; API and
 * what the callers decide themselves in bundle.h): device messages (request,
 * acknowledgement), bundles of topic-key grants sealed to a device's fresh
 * X25519 receive key, revocation statements, and the receive keys.
 *
 *   device message  0 version | 1 kind | 2 timestamp u64 | 10 nonce[16]
 *                   26 receive pk[32] | 58 bundle version u64 | 66 C u16
 *                   68 credential[C] | signature[64] = Ed25519(device,
 *                   "veil-devmsg-v1" || bytes before it || u8 len(cid) || cid)
 *   bundle          0 version | 1 kind 3 | 2 version u64 | 10 echoed nonce[16]
 *                   26 receive pk[32] | 58 credential id[16] | 74 sender id[8]
 *                   82 L | 83 client id[L] | eph pk[32] | xnonce[24] | n u32
 *                   ciphertext[n] (aad = the 143+L bytes before it) | C u16
 *                   keyd credential[C] | signature[64] = Ed25519(keyd,
 *                   "veil-bundle-v1" || bytes before it)
 *   revocation      0 version | 1 kind 4 | 2 version u64 | 10 issued_at u64
 *                   18 N u32 | 22 N x (kind u8 | id[16] | keep_until u64)
 *                   C u16 | keyd credential[C] | signature[64] (as the bundle,
 *                   "veil-revocation-v1")
 * Secrets (receive and ephemeral X25519 secrets, shared secrets, bundle keys,
 * plaintext grants) live in sodium_malloc'd memory or are wiped on every path.
 */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "bundle.h"
#include "internal.h"
#include "util.h"

#define DEVMSG_DOMAIN "veil-devmsg-v1"
#define BUNDLE_DOMAIN "veil-bundle-v1"
#define BUNDLE_KEY_DOMAIN "veil-bundle-key-v1"
#define REVSTMT_DOMAIN "veil-revocation-v1"
#define TRAILER_MIN (2U + VEIL_SIG_BYTES)         /* u16 C and the signature, C = 0 */
#define CT_MIN (2U + VEIL_TAG_BYTES)              /* the grant count and the tag */
#define BUNDLE_MIN (VEIL__BUNDLE_FIXED + 1U + CT_MIN + TRAILER_MIN)

bool veil__credential_has_role(const struct veil_credential *c, const char *role)
{
	if (!c || !role)
		return false;
	size_t rl = strlen(role);
	const char *p = c->roles;
	size_t left = strnlen(c->roles, sizeof(c->roles));
	while (left > 0) {
		const char *comma = memchr(p, ',', left);
		size_t n = comma ? (size_t)(comma - p) : left;
		if (n == rl && memcmp(p, role, rl) == 0)
			return true;
		if (!comma)
			break;
		left -= n + 1;
		p = comma + 1;
	}
	return false;
}

/* ---- receive keys ------------------------------------------------------- */

struct veil__rxkey {
	uint8_t sk[VEIL__X25519_BYTES];
	uint8_t pk[VEIL__X25519_BYTES];
};

int veil__rxkey_from_secret(const uint8_t sk[VEIL__X25519_BYTES], struct veil__rxkey **out)
{
	if (!sk || !out)
		return VEIL_ERR_INVAL;
	struct veil__rxkey *k = sodium_malloc(sizeof(*k));
	if (!k)
		return VEIL_ERR_NOMEM;
	memcpy(k->sk, sk, sizeof(k->sk));
	/* Clamping sets bit 254, so the public key is never the identity. */
	(void)crypto_scalarmult_base(k->pk, k->sk);
	*out = k;
	return VEIL_OK;
}

int veil__rxkey_generate(struct veil__rxkey **out)
{
	uint8_t sk[VEIL__X25519_BYTES];
	randombytes_buf(sk, sizeof(sk));
	int rc = veil__rxkey_from_secret(sk, out);
	sodium_memzero(sk, sizeof(sk));
	return rc;
}

const uint8_t *veil__rxkey_public(const struct veil__rxkey *k)
{
	return k->pk;
}

void veil__rxkey_free(struct veil__rxkey **k)
{
	if (!k || !*k)
		return;
	sodium_free(*k); /* wipes */
	*k = NULL;
}

/* ---- shared pieces ------------------------------------------------------ */

/* The signed trailer of keyd's formats, from off to exactly len:
 * u16 C || credential || signature. The credential's structure is checked. */
static int parse_trailer(const uint8_t *buf, size_t len, size_t off, const uint8_t **cred, size_t *cred_len,
                         struct veil_credential *signer, const uint8_t **sig)
{
	if (len - off < TRAILER_MIN)
		return VEIL_ERR_TRUNCATED;
	size_t cl = veil__get_u16(buf + off);
	size_t room = len - off - TRAILER_MIN;
	if (cl > room)
		return VEIL_ERR_TRUNCATED;
	if (cl < room)
		return VEIL_ERR_PARSE; /* trailing bytes */
	int rc = veil_credential_parse(buf + off + 2U, cl, signer);
	if (rc != VEIL_OK)
		return rc;
	*cred = buf + off + 2U;
	*cred_len = cl;
	*sig = buf + len - VEIL_SIG_BYTES;
	return VEIL_OK;
}

/* keyd's credential and signature over domain || buf[0 .. len - 64): the
 * credential verifies against t, has role veil-keyd, is not revoked. */
static int verify_keyd(const uint8_t *buf, size_t len, const char *domain, const uint8_t *cred, size_t cred_len,
                       const struct veil__trust *t, struct veil_credential *signer)
{
	int rc = veil_credential_verify(cred, cred_len, t->authorities, t->n_authorities, t->now, signer);
	if (rc != VEIL_OK)
		return rc;
	if (!veil__credential_has_role(signer, VEIL__ROLE_KEYD))
		return VEIL_ERR_WRONG_ROLE;
	if (t->revoked && t->revoked(signer, t->revoked_ctx))
		return VEIL_ERR_REVOKED;
	struct veil__part parts[] = { { domain, strlen(domain) }, { buf, len - VEIL_SIG_BYTES } };
	return veil__verify(signer->device_pk, parts, 2, buf + len - VEIL_SIG_BYTES);
}

static int sign_all(const struct veil_identity *id, const char *domain, uint8_t *out, size_t body)
{
	struct veil__part parts[] = { { domain, strlen(domain) }, { out, body } };
	return veil__identity_sign(id, parts, 2, out + body);
}

static bool trust_ok(const struct veil__trust *t)
{
	return t && (t->authorities || t->n_authorities == 0);
}

/* ---- device message ----------------------------------------------------- */

size_t veil__devmsg_len(size_t cred_len)
{
	return VEIL__DEVMSG_FIXED + cred_len + VEIL_SIG_BYTES;
}

int veil__devmsg_build(const struct veil__devmsg_params *p, uint8_t *out, size_t out_cap, size_t *out_len)
{
	if (!p || !p->device || !p->credential || !p->client_id || !p->nonce || !p->receive_pk || !out || !out_len)
		return VEIL_ERR_INVAL;
	if ((p->kind != VEIL__KIND_REQUEST && p->kind != VEIL__KIND_ACK) || p->credential_len > VEIL_CREDENTIAL_MAX)
		return VEIL_ERR_INVAL;
	/* Refuse what keyd would refuse anyway: a credential for another
	 * client id or another key. */
	struct veil_credential c;
	uint8_t pk[VEIL_PK_BYTES];
	veil_identity_public(p->device, pk);
	size_t idl = strlen(p->client_id);
	if (veil_credential_parse(p->credential, p->credential_len, &c) != VEIL_OK || idl != strlen(c.client_id) ||
	    memcmp(p->client_id, c.client_id, idl) != 0 || memcmp(pk, c.device_pk, VEIL_PK_BYTES) != 0)
		return VEIL_ERR_INVAL;
	size_t need = veil__devmsg_len(p->credential_len);
	if (out_cap < need)
		return VEIL_ERR_INVAL;
	out[0] = VEIL__KS_VERSION;
	out[1] = p->kind;
	veil__put_u64(out + 2, p->timestamp);
	memcpy(out + 10, p->nonce, VEIL__DEVMSG_NONCE_BYTES);
	memcpy(out + 26, p->receive_pk, VEIL__X25519_BYTES);
	veil__put_u64(out + 58, p->version);
	veil__put_u16(out + 66, (uint16_t)p->credential_len);
	memcpy(out + VEIL__DEVMSG_FIXED, p->credential, p->credential_len);
	size_t body = VEIL__DEVMSG_FIXED + p->credential_len;
	uint8_t idl8 = (uint8_t)idl;
	struct veil__part parts[] = {
		{ DEVMSG_DOMAIN, strlen(DEVMSG_DOMAIN) }, { out, body }, { &idl8, 1 }, { p->client_id, idl }
	};
	int rc = veil__identity_sign(p->device, parts, 4, out + body);
	if (rc != VEIL_OK)
		return rc;
	*out_len = need;
	return VEIL_OK;
}

int veil__devmsg_parse(const uint8_t *buf, size_t len, struct veil__devmsg *out)
{
	if ((!buf && len) || !out)
		return VEIL_ERR_INVAL;
	memset(out, 0, sizeof(*out));
	if (len < VEIL__DEVMSG_FIXED + VEIL_SIG_BYTES)
		return VEIL_ERR_TRUNCATED;
	if (len > VEIL__DEVMSG_MAX)
		return VEIL_ERR_TOO_LARGE;
	if (buf[0] != VEIL__KS_VERSION)
		return VEIL_ERR_VERSION;
	if (buf[1] != VEIL__KIND_REQUEST && buf[1] != VEIL__KIND_ACK)
		return VEIL_ERR_PARSE;
	size_t cl = veil__get_u16(buf + 66);
	size_t room = len - VEIL__DEVMSG_FIXED - VEIL_SIG_BYTES;
	if (cl > room)
		return VEIL_ERR_TRUNCATED;
	if (cl < room)
		return VEIL_ERR_PARSE; /* trailing bytes */
	int rc = veil_credential_parse(buf + VEIL__DEVMSG_FIXED, cl, &out->cred);
	if (rc != VEIL_OK) {
		memset(out, 0, sizeof(*out));
		return rc;
	}
	out->kind = buf[1];
	out->timestamp = veil__get_u64(buf + 2);
	memcpy(out->nonce, buf + 10, VEIL__DEVMSG_NONCE_BYTES);
	memcpy(out->receive_pk, buf + 26, VEIL__X25519_BYTES);
	out->version = veil__get_u64(buf + 58);
	out->credential = buf + VEIL__DEVMSG_FIXED;
	out->credential_len = cl;
	return VEIL_OK;
}

/* X25519 with a small-order point gives all zeros for every scalar (libsodium
 * reports it): such a receive key would make the bundle key public. */
static bool x25519_usable(const uint8_t pk[VEIL__X25519_BYTES])
{
	static const uint8_t scalar[VEIL__X25519_BYTES] = { 9 };
	uint8_t q[VEIL__X25519_BYTES];
	return crypto_scalarmult(q, scalar, pk) == 0;
}

int veil__devmsg_verify(const uint8_t *buf, size_t len, const char *topic_client_id, const struct veil__trust *t,
                        uint32_t window_s, struct veil__devmsg *out)
{
	if (!topic_client_id || !trust_ok(t) || !out)
		return VEIL_ERR_INVAL;
	int rc = veil__devmsg_parse(buf, len, out);
	if (rc != VEIL_OK)
		return rc;
	size_t idl = strlen(topic_client_id);
	if (idl != strlen(out->cred.client_id) || memcmp(topic_client_id, out->cred.client_id, idl) != 0)
		return VEIL_ERR_CLIENT_ID;
	rc = veil_credential_verify(out->credential, out->credential_len, t->authorities, t->n_authorities, t->now,
	                            &out->cred);
	if (rc != VEIL_OK)
		return rc;
	if (t->revoked && t->revoked(&out->cred, t->revoked_ctx))
		return VEIL_ERR_REVOKED;
	size_t body = len - VEIL_SIG_BYTES;
	uint8_t idl8 = (uint8_t)idl;
	struct veil__part parts[] = {
		{ DEVMSG_DOMAIN, strlen(DEVMSG_DOMAIN) }, { buf, body }, { &idl8, 1 }, { topic_client_id, idl }
	};
	rc = veil__verify(out->cred.device_pk, parts, 4, buf + body);
	if (rc != VEIL_OK)
		return rc;
	uint64_t skew = out->timestamp > t->now ? out->timestamp - t->now : t->now - out->timestamp;
	if (skew > window_s)
		return VEIL_ERR_STALE;
	if (!x25519_usable(out->receive_pk))
		return VEIL_ERR_PARSE;
	return VEIL_OK;
}

/* ---- grants ------------------------------------------------------------- */

int veil__grants_new(size_t n, struct veil__grants **out)
{
	if (!out || n > VEIL__GRANTS_MAX)
		return VEIL_ERR_INVAL;
	size_t size = sizeof(struct veil__grants) + n * sizeof(struct veil__grant);
	struct veil__grants *g = sodium_malloc(size);
	if (!g)
		return VEIL_ERR_NOMEM;
	memset(g, 0, size);
	g->n = n;
	*out = g;
	return VEIL_OK;
}

void veil__grants_free(struct veil__grants **g)
{
	if (!g || !*g)
		return;
	sodium_free(*g); /* wipes */
	*g = NULL;
}

/* One grant's rules (section 12), for building and parsing alike. */
static int grant_check(const struct veil__grant *g, size_t *scope_len)
{
	size_t sl = strnlen(g->scope, sizeof(g->scope));
	if (sl == 0 || sl > VEIL__GRANT_SCOPE_MAX || !veil__filter_valid(g->scope))
		return VEIL_ERR_PARSE;
	if (g->key_id < VEIL__GRANT_KEY_ID_MIN)
		return VEIL_ERR_PARSE;
	if (g->flags & ~VEIL__GRANT_FLAGS)
		return VEIL_ERR_RESERVED_FLAGS;
	if (g->send_from > g->send_until || g->send_until > g->accept_until)
		return VEIL_ERR_PARSE;
	*scope_len = sl;
	return VEIL_OK;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return (x > y) - (x < y);
}

/* A key id names one epoch: no two grants of a bundle share one. */
static int key_ids_unique(const struct veil__grant *g, size_t n)
{
	if (n < 2)
		return VEIL_OK;
	uint32_t *ids = malloc(n * sizeof(*ids));
	if (!ids)
		return VEIL_ERR_NOMEM;
	for (size_t i = 0; i < n; i++)
		ids[i] = g[i].key_id;
	qsort(ids, n, sizeof(*ids), cmp_u32);
	int rc = VEIL_OK;
	for (size_t i = 1; i < n && rc == VEIL_OK; i++)
		if (ids[i] == ids[i - 1])
			rc = VEIL_ERR_PARSE;
	free(ids);
	return rc;
}

static uint8_t *put_grant(uint8_t *p, const struct veil__grant *g, size_t sl)
{
	*p++ = (uint8_t)sl;
	memcpy(p, g->scope, sl);
	p += sl;
	veil__put_u32(p, g->key_id);
	veil__put_u32(p + 4, g->epoch);
	veil__put_u64(p + 8, g->send_from);
	veil__put_u64(p + 16, g->send_until);
	veil__put_u64(p + 24, g->accept_until);
	veil__put_u32(p + 32, g->grace_s);
	p[36] = g->flags;
	memcpy(p + 37, g->key, VEIL_KEY_BYTES);
	return p + 37 + VEIL_KEY_BYTES;
}

/* The decrypted plaintext: u16 N, then N grants, nothing after. */
static int parse_grants(const uint8_t *pt, size_t len, struct veil__grants **out)
{
	if (len < 2)
		return VEIL_ERR_TRUNCATED;
	size_t n = veil__get_u16(pt);
	if (n > (len - 2) / (1U + VEIL__GRANT_FIXED))
		return VEIL_ERR_TRUNCATED; /* the count does not fit: checked before allocating */
	struct veil__grants *gs = NULL;
	int rc = veil__grants_new(n, &gs);
	if (rc != VEIL_OK)
		return rc;
	size_t pos = 2;
	for (size_t i = 0; i < n && rc == VEIL_OK; i++) {
		struct veil__grant *g = &gs->g[i];
		if (pos == len) {
			rc = VEIL_ERR_TRUNCATED;
			break;
		}
		size_t sl = pt[pos];
		if (len - pos < sl + VEIL__GRANT_FIXED) {
			rc = VEIL_ERR_TRUNCATED;
			break;
		}
		const uint8_t *p = pt + pos + 1U;
		if (sl == 0 || memchr(p, '\0', sl)) {
			rc = VEIL_ERR_PARSE;
			break;
		}
		memcpy(g->scope, p, sl);
		p += sl;
		g->key_id = veil__get_u32(p);
		g->epoch = veil__get_u32(p + 4);
		g->send_from = veil__get_u64(p + 8);
		g->send_until = veil__get_u64(p + 16);
		g->accept_until = veil__get_u64(p + 24);
		g->grace_s = veil__get_u32(p + 32);
		g->flags = p[36];
		memcpy(g->key, p + 37, VEIL_KEY_BYTES);
		size_t checked = 0;
		rc = grant_check(g, &checked);
		pos += sl + VEIL__GRANT_FIXED;
	}
	if (rc == VEIL_OK && pos != len)
		rc = VEIL_ERR_PARSE; /* trailing bytes */
	if (rc == VEIL_OK)
		rc = key_ids_unique(gs->g, n);
	if (rc != VEIL_OK) {
		veil__grants_free(&gs);
		return rc;
	}
	*out = gs;
	return VEIL_OK;
}

int veil__grants_parse(const uint8_t *buf, size_t len, struct veil__grants **out)
{
	if (!buf || !out)
		return VEIL_ERR_INVAL;
	*out = NULL;
	return parse_grants(buf, len, out);
}

size_t veil__grants_encoded_len(const struct veil__grant *g, size_t n)
{
	size_t total = 2;
	for (size_t i = 0; i < n; i++)
		total += strnlen(g[i].scope, sizeof(g[i].scope)) + VEIL__GRANT_FIXED;
	return total;
}

int veil__grants_encode(const struct veil__grant *g, size_t n, uint8_t *out, size_t cap, size_t *out_len)
{
	if ((!g && n) || !out || !out_len || n > VEIL__GRANTS_MAX || cap < veil__grants_encoded_len(g, n))
		return VEIL_ERR_INVAL;
	veil__put_u16(out, (uint16_t)n);
	uint8_t *p = out + 2;
	for (size_t i = 0; i < n; i++) {
		size_t sl = 0;
		int rc = grant_check(&g[i], &sl);
		if (rc != VEIL_OK) {
			sodium_memzero(out, cap);
			return VEIL_ERR_INVAL;
		}
		p = put_grant(p, &g[i], sl);
	}
	*out_len = (size_t)(p - out);
	return VEIL_OK;
}

/* ---- bundle ------------------------------------------------------------- */

/* k = BLAKE2b-256("veil-bundle-key-v1" || X25519(sk, peer) || eph_pk || receive_pk). */
static int bundle_key(const uint8_t *sk, const uint8_t *peer, const uint8_t *eph_pk, const uint8_t *receive_pk,
                      uint8_t k[VEIL_KEY_BYTES])
{
	uint8_t shared[VEIL__X25519_BYTES];
	if (crypto_scalarmult(shared, sk, peer) != 0) {
		sodium_memzero(shared, sizeof(shared));
		return VEIL_ERR_PARSE;
	}
	crypto_generichash_state st;
	crypto_generichash_init(&st, NULL, 0, VEIL_KEY_BYTES);
	crypto_generichash_update(&st, (const uint8_t *)BUNDLE_KEY_DOMAIN, strlen(BUNDLE_KEY_DOMAIN));
	crypto_generichash_update(&st, shared, sizeof(shared));
	crypto_generichash_update(&st, eph_pk, VEIL__X25519_BYTES);
	crypto_generichash_update(&st, receive_pk, VEIL__X25519_BYTES);
	crypto_generichash_final(&st, k, VEIL_KEY_BYTES);
	sodium_memzero(&st, sizeof(st));
	sodium_memzero(shared, sizeof(shared));
	return VEIL_OK;
}

/* Everything build checks except duplicate key ids; the plaintext and total sizes. */
static int bundle_check(const struct veil__bundle_params *p, size_t *pt_len, size_t *total)
{
	if (!p || !p->keyd || !p->credential || !p->recipient_cred_id || !p->recipient_sender_id ||
	    !p->recipient_client_id || !p->receive_pk || !p->echo_nonce || (!p->grants && p->n_grants))
		return VEIL_ERR_INVAL;
	size_t idl = strlen(p->recipient_client_id);
	if (idl == 0 || idl > VEIL_CLIENT_ID_MAX || p->credential_len == 0 ||
	    p->credential_len > VEIL_CREDENTIAL_MAX || p->n_grants > VEIL__GRANTS_MAX)
		return VEIL_ERR_INVAL;
	size_t n = 2;
	for (size_t i = 0; i < p->n_grants; i++) {
		size_t sl = 0;
		if (grant_check(&p->grants[i], &sl) != VEIL_OK)
			return VEIL_ERR_INVAL;
		n += sl + VEIL__GRANT_FIXED;
	}
	*pt_len = n;
	*total = VEIL__BUNDLE_FIXED + idl + n + VEIL_TAG_BYTES + 2U + p->credential_len + VEIL_SIG_BYTES;
	return VEIL_OK;
}

size_t veil__bundle_len(const struct veil__bundle_params *p)
{
	size_t pt_len = 0, total = 0;
	return bundle_check(p, &pt_len, &total) == VEIL_OK ? total : 0;
}

int veil__bundle_build(const struct veil__bundle_params *p, uint8_t *out, size_t out_cap, size_t *out_len)
{
	uint8_t eph_sk[VEIL__X25519_BYTES], xnonce[VEIL_NONCE_BYTES];
	randombytes_buf(eph_sk, sizeof(eph_sk));
	randombytes_buf(xnonce, sizeof(xnonce));
	int rc = veil__bundle_build_det(p, eph_sk, xnonce, out, out_cap, out_len);
	sodium_memzero(eph_sk, sizeof(eph_sk));
	return rc;
}

int veil__bundle_build_det(const struct veil__bundle_params *p, const uint8_t eph_sk[VEIL__X25519_BYTES],
                           const uint8_t xnonce[VEIL_NONCE_BYTES], uint8_t *out, size_t out_cap, size_t *out_len)
{
	size_t pt_len = 0, need = 0;
	if (!eph_sk || !xnonce || !out || !out_len || bundle_check(p, &pt_len, &need) != VEIL_OK || out_cap < need)
		return VEIL_ERR_INVAL;
	int rc = key_ids_unique(p->grants, p->n_grants);
	if (rc != VEIL_OK)
		return rc == VEIL_ERR_PARSE ? VEIL_ERR_INVAL : rc;
	uint8_t eph_pk[VEIL__X25519_BYTES], k[VEIL_KEY_BYTES];
	(void)crypto_scalarmult_base(eph_pk, eph_sk);
	rc = bundle_key(eph_sk, p->receive_pk, eph_pk, p->receive_pk, k);
	if (rc != VEIL_OK)
		return rc; /* the device's receive key is of small order */

	size_t idl = strlen(p->recipient_client_id);
	size_t aad_len = VEIL__BUNDLE_FIXED + idl;
	out[0] = VEIL__KS_VERSION;
	out[1] = VEIL__KIND_BUNDLE;
	veil__put_u64(out + 2, p->version);
	memcpy(out + 10, p->echo_nonce, VEIL__DEVMSG_NONCE_BYTES);
	memcpy(out + 26, p->receive_pk, VEIL__X25519_BYTES);
	memcpy(out + 58, p->recipient_cred_id, VEIL_CREDENTIAL_ID_BYTES);
	memcpy(out + 74, p->recipient_sender_id, VEIL_SENDER_ID_BYTES);
	out[82] = (uint8_t)idl;
	memcpy(out + 83, p->recipient_client_id, idl);
	memcpy(out + 83 + idl, eph_pk, VEIL__X25519_BYTES);
	memcpy(out + 115 + idl, xnonce, VEIL_NONCE_BYTES);
	veil__put_u32(out + 139 + idl, (uint32_t)(pt_len + VEIL_TAG_BYTES));

	/* The plaintext is written where its ciphertext goes and sealed in
	 * place, so no other copy of the keys exists. */
	uint8_t *ct = out + aad_len;
	uint8_t *w = ct;
	veil__put_u16(w, (uint16_t)p->n_grants);
	w += 2;
	for (size_t i = 0; i < p->n_grants; i++)
		w = put_grant(w, &p->grants[i], strnlen(p->grants[i].scope, sizeof(p->grants[i].scope)));
	unsigned long long clen = 0;
	crypto_aead_xchacha20poly1305_ietf_encrypt(ct, &clen, ct, pt_len, out, aad_len, NULL, xnonce, k);
	sodium_memzero(k, sizeof(k));

	size_t off = aad_len + (size_t)clen;
	veil__put_u16(out + off, (uint16_t)p->credential_len);
	memcpy(out + off + 2U, p->credential, p->credential_len);
	rc = sign_all(p->keyd, BUNDLE_DOMAIN, out, off + 2U + p->credential_len);
	if (rc != VEIL_OK) {
		sodium_memzero(out, need);
		return rc;
	}
	*out_len = need;
	return VEIL_OK;
}

int veil__bundle_parse(const uint8_t *buf, size_t len, struct veil__bundle_view *out)
{
	if ((!buf && len) || !out)
		return VEIL_ERR_INVAL;
	memset(out, 0, sizeof(*out));
	if (len < BUNDLE_MIN)
		return VEIL_ERR_TRUNCATED;
	if (len > VEIL__BUNDLE_MAX)
		return VEIL_ERR_TOO_LARGE;
	if (buf[0] != VEIL__KS_VERSION)
		return VEIL_ERR_VERSION;
	if (buf[1] != VEIL__KIND_BUNDLE)
		return VEIL_ERR_PARSE;
	size_t idl = buf[82];
	if (idl == 0 || idl > VEIL_CLIENT_ID_MAX)
		return VEIL_ERR_PARSE;
	size_t fixed = VEIL__BUNDLE_FIXED + idl;
	if (len < fixed)
		return VEIL_ERR_TRUNCATED;
	size_t n = veil__get_u32(buf + 139 + idl);
	if (n < CT_MIN)
		return VEIL_ERR_PARSE;
	if (n > VEIL__BUNDLE_PT_MAX + VEIL_TAG_BYTES)
		return VEIL_ERR_TOO_LARGE;
	if (n > len - fixed)
		return VEIL_ERR_TRUNCATED;
	struct veil__bundle_view v = { 0 };
	int rc = parse_trailer(buf, len, fixed + n, &v.credential, &v.credential_len, &v.signer, &v.signature);
	if (rc != VEIL_OK)
		return rc;
	v.version = veil__get_u64(buf + 2);
	v.echo_nonce = buf + 10;
	v.receive_pk = buf + 26;
	v.cred_id = buf + 58;
	v.sender_id = buf + 74;
	v.client_id = buf + 83;
	v.client_id_len = idl;
	v.eph_pk = buf + 83 + idl;
	v.xnonce = buf + 115 + idl;
	v.ciphertext = buf + fixed;
	v.ciphertext_len = n;
	v.buf = buf;
	v.len = len;
	*out = v;
	return VEIL_OK;
}

/* Which of the held receive keys the bundle is sealed to. */
static const struct veil__rxkey *find_rxkey(const struct veil__bundle_self *self, const uint8_t *pk, size_t *idx)
{
	for (size_t i = 0; i < self->n_rxkeys; i++) {
		if (self->rxkeys[i] && sodium_memcmp(self->rxkeys[i]->pk, pk, VEIL__X25519_BYTES) == 0) {
			*idx = i;
			return self->rxkeys[i];
		}
	}
	return NULL;
}

static int check_addressing(const struct veil__bundle_view *v, const struct veil_credential *self)
{
	uint8_t sid[VEIL_SENDER_ID_BYTES];
	veil_sender_id(self->device_pk, sid);
	size_t idl = strnlen(self->client_id, sizeof(self->client_id));
	if (memcmp(v->cred_id, self->id, VEIL_CREDENTIAL_ID_BYTES) != 0 ||
	    memcmp(v->sender_id, sid, VEIL_SENDER_ID_BYTES) != 0 || v->client_id_len != idl ||
	    memcmp(v->client_id, self->client_id, idl) != 0)
		return VEIL_ERR_MISADDRESSED;
	return VEIL_OK;
}

/* Decrypt with the receive secret and parse the grants. */
static int unseal(const struct veil__bundle_view *v, const struct veil__rxkey *rx, struct veil__grants **grants)
{
	uint8_t k[VEIL_KEY_BYTES];
	if (bundle_key(rx->sk, v->eph_pk, v->eph_pk, v->receive_pk, k) != VEIL_OK)
		return VEIL_ERR_DECRYPT; /* keyd's ephemeral key is of small order */
	/* The plaintext lives only until its grants are copied into sodium_malloc'd
	 * memory: plain malloc, wiped before free (sodium_malloc costs two
	 * mprotect calls, an eighth of the whole open). */
	size_t pt_len = v->ciphertext_len - VEIL_TAG_BYTES;
	uint8_t *pt = malloc(pt_len);
	if (!pt) {
		sodium_memzero(k, sizeof(k));
		return VEIL_ERR_NOMEM;
	}
	size_t aad_len = (size_t)(v->ciphertext - v->buf);
	int rc = crypto_aead_xchacha20poly1305_ietf_decrypt(pt, NULL, NULL, v->ciphertext, v->ciphertext_len, v->buf,
	                                                     aad_len, v->xnonce, k) == 0
	                 ? parse_grants(pt, pt_len, grants)
	                 : VEIL_ERR_DECRYPT;
	sodium_memzero(k, sizeof(k));
	sodium_memzero(pt, pt_len);
	free(pt);
	return rc;
}

int veil__bundle_verify(const uint8_t *buf, size_t len, const struct veil__trust *t, struct veil__bundle_view *view)
{
	if (!trust_ok(t))
		return VEIL_ERR_INVAL;
	struct veil__bundle_view v;
	memset(&v, 0, sizeof(v));
	int rc = veil__bundle_parse(buf, len, &v);
	if (rc == VEIL_OK)
		rc = verify_keyd(buf, len, BUNDLE_DOMAIN, v.credential, v.credential_len, t, &v.signer);
	if (view)
		*view = v; /* zeroed by the parser when the structure failed */
	return rc;
}

int veil__bundle_open(const uint8_t *buf, size_t len, const struct veil__trust *t,
                      const struct veil__bundle_self *self, struct veil__bundle_view *view, size_t *rxkey_index,
                      struct veil__grants **grants)
{
	if (grants)
		*grants = NULL;
	if (!trust_ok(t) || !self || !self->cred || (!self->rxkeys && self->n_rxkeys) || !rxkey_index || !grants)
		return VEIL_ERR_INVAL;
	struct veil__bundle_view v;
	int rc = veil__bundle_parse(buf, len, &v);
	if (rc == VEIL_OK)
		rc = verify_keyd(buf, len, BUNDLE_DOMAIN, v.credential, v.credential_len, t, &v.signer);
	if (rc == VEIL_OK)
		rc = check_addressing(&v, self->cred);
	const struct veil__rxkey *rx = NULL;
	if (rc == VEIL_OK && !(rx = find_rxkey(self, v.receive_pk, rxkey_index)))
		rc = VEIL_ERR_WRONG_RECEIVE_KEY;
	if (rc == VEIL_OK && v.version <= self->held_version)
		rc = VEIL_ERR_OUTDATED;
	if (rc == VEIL_OK && self->echo_nonce &&
	    sodium_memcmp(v.echo_nonce, self->echo_nonce, VEIL__DEVMSG_NONCE_BYTES) != 0)
		rc = VEIL_ERR_NO_NONCE_ECHO;
	if (rc == VEIL_OK)
		rc = unseal(&v, rx, grants);
	if (view)
		*view = v;
	return rc;
}

/* ---- revocation statement ----------------------------------------------- */

size_t veil__revstmt_len(size_t n_entries, size_t cred_len)
{
	if (n_entries > VEIL__REV_ENTRIES_MAX || cred_len == 0 || cred_len > VEIL_CREDENTIAL_MAX)
		return 0;
	return VEIL__REVSTMT_FIXED + n_entries * VEIL__REV_ENTRY_BYTES + 2U + cred_len + VEIL_SIG_BYTES;
}

static const uint8_t zero_pad[VEIL_CREDENTIAL_ID_BYTES - VEIL_SENDER_ID_BYTES];

static bool entry_ok(uint8_t kind, const uint8_t *id)
{
	if (kind == VEIL__REV_CREDENTIAL)
		return true;
	return kind == VEIL__REV_SENDER && memcmp(id + VEIL_SENDER_ID_BYTES, zero_pad, sizeof(zero_pad)) == 0;
}

int veil__revstmt_build(const struct veil__revstmt_params *p, uint8_t *out, size_t out_cap, size_t *out_len)
{
	if (!p || !p->keyd || !p->credential || (!p->entries && p->n_entries) || !out || !out_len)
		return VEIL_ERR_INVAL;
	size_t need = veil__revstmt_len(p->n_entries, p->credential_len);
	if (need == 0 || out_cap < need)
		return VEIL_ERR_INVAL;
	for (size_t i = 0; i < p->n_entries; i++)
		if (!entry_ok(p->entries[i].kind, p->entries[i].id))
			return VEIL_ERR_INVAL;
	out[0] = VEIL__KS_VERSION;
	out[1] = VEIL__KIND_REVOCATION;
	veil__put_u64(out + 2, p->version);
	veil__put_u64(out + 10, p->issued_at);
	veil__put_u32(out + 18, (uint32_t)p->n_entries);
	uint8_t *w = out + VEIL__REVSTMT_FIXED;
	for (size_t i = 0; i < p->n_entries; i++, w += VEIL__REV_ENTRY_BYTES) {
		w[0] = p->entries[i].kind;
		memcpy(w + 1, p->entries[i].id, VEIL_CREDENTIAL_ID_BYTES);
		veil__put_u64(w + 17, p->entries[i].keep_until);
	}
	veil__put_u16(w, (uint16_t)p->credential_len);
	memcpy(w + 2, p->credential, p->credential_len);
	int rc = sign_all(p->keyd, REVSTMT_DOMAIN, out, need - VEIL_SIG_BYTES);
	if (rc != VEIL_OK)
		return rc;
	*out_len = need;
	return VEIL_OK;
}

int veil__revstmt_parse(const uint8_t *buf, size_t len, struct veil__revstmt_view *out)
{
	if ((!buf && len) || !out)
		return VEIL_ERR_INVAL;
	memset(out, 0, sizeof(*out));
	if (len < VEIL__REVSTMT_FIXED + TRAILER_MIN)
		return VEIL_ERR_TRUNCATED;
	if (len > VEIL__REVSTMT_MAX)
		return VEIL_ERR_TOO_LARGE;
	if (buf[0] != VEIL__KS_VERSION)
		return VEIL_ERR_VERSION;
	if (buf[1] != VEIL__KIND_REVOCATION)
		return VEIL_ERR_PARSE;
	size_t n = veil__get_u32(buf + 18);
	if (n > VEIL__REV_ENTRIES_MAX)
		return VEIL_ERR_TOO_LARGE;
	if (n > (len - VEIL__REVSTMT_FIXED) / VEIL__REV_ENTRY_BYTES)
		return VEIL_ERR_TRUNCATED; /* the count does not fit */
	const uint8_t *e = buf + VEIL__REVSTMT_FIXED;
	for (size_t i = 0; i < n; i++, e += VEIL__REV_ENTRY_BYTES)
		if (!entry_ok(e[0], e + 1))
			return VEIL_ERR_PARSE;
	struct veil__revstmt_view v = { 0 };
	int rc = parse_trailer(buf, len, VEIL__REVSTMT_FIXED + n * VEIL__REV_ENTRY_BYTES, &v.credential,
	                       &v.credential_len, &v.signer, &v.signature);
	if (rc != VEIL_OK)
		return rc;
	v.version = veil__get_u64(buf + 2);
	v.issued_at = veil__get_u64(buf + 10);
	v.n_entries = n;
	v.entries = buf + VEIL__REVSTMT_FIXED;
	*out = v;
	return VEIL_OK;
}

int veil__revstmt_verify(const uint8_t *buf, size_t len, const struct veil__trust *t, struct veil__revstmt_view *out)
{
	if (!trust_ok(t) || !out)
		return VEIL_ERR_INVAL;
	int rc = veil__revstmt_parse(buf, len, out);
	if (rc != VEIL_OK)
		return rc;
	return verify_keyd(buf, len, REVSTMT_DOMAIN, out->credential, out->credential_len, t, &out->signer);
}

void veil__revstmt_entry(const struct veil__revstmt_view *v, size_t i, struct veil__rev_entry *e)
{
	const uint8_t *p = v->entries + i * VEIL__REV_ENTRY_BYTES;
	e->kind = p[0];
	memcpy(e->id, p + 1, VEIL_CREDENTIAL_ID_BYTES);
	e->keep_until = veil__get_u64(p + 17);
}
