/*
 * Login tokens (docs/PROTOCOL.md section 4): a device proves, at CONNECT,
 * that it holds the key of its credential, freshly and for this client id,
 * and (version 2) for this deployment.
 *
 *   version 1: 0 0x01 | 1 timestamp u64 (unix s) | 9 nonce[16]
 *              25 credential length u16 | 27 credential | signature[64]
 *   version 2: 0 0x02 | 1 timestamp | 9 nonce[16] | 25 audience length u8 (1..128)
 *              26 audience | 26+A credential length u16 | 28+A credential | signature[64]
 *   signature = Ed25519(device, "veil-token-v<version>" || all bytes before it
 *                               || u8 client id length || client id)
 * The client id is signed but not carried: the broker knows it. The
 * audience is carried and signed, and checked before anything that costs a
 * signature: a token captured at one deployment is worth nothing at another.
 */
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "veil/identity.h"
#include "credcache.h"
#include "internal.h"
#include "names.h"
#include "util.h"

#define TOKEN_DOMAIN_V1 "veil-token-v1"
#define TOKEN_DOMAIN_V2 "veil-token-v2"
#define TOKEN_V1 1U
#define TOKEN_V2 2U
#define TOKEN_HEAD (1U + 8U + VEIL_TOKEN_NONCE_BYTES)  /* version, timestamp, nonce */
#define TOKEN_FIXED (TOKEN_HEAD + 2U)                   /* version 1: bytes before the credential */

/* A token's fields, pointers into it (structure checked). */
struct tok_view {
	unsigned version;
	uint64_t timestamp;
	const uint8_t *nonce;
	const uint8_t *audience; /* version 2, not NUL terminated; NULL for version 1 */
	size_t audience_len;
	const uint8_t *cred;
	size_t cred_len;
	size_t body;             /* bytes the signature covers (all before it) */
};

static const char *domain(unsigned version)
{
	return version == TOKEN_V2 ? TOKEN_DOMAIN_V2 : TOKEN_DOMAIN_V1;
}

int veil_token_create(const struct veil_identity *device, const uint8_t *cred, size_t cred_len,
                      const char *client_id, uint64_t now, uint8_t *out, size_t out_cap, size_t *out_len)
{
	return veil_token_create_for(device, cred, cred_len, client_id, NULL, now, out, out_cap, out_len);
}

int veil_token_create_for(const struct veil_identity *device, const uint8_t *cred, size_t cred_len,
                          const char *client_id, const char *audience, uint64_t now, uint8_t *out, size_t out_cap,
                          size_t *out_len)
{
	uint8_t nonce[VEIL_TOKEN_NONCE_BYTES];
	randombytes_buf(nonce, sizeof(nonce));
	return veil__token_create_nonce(device, cred, cred_len, client_id, audience, now, nonce, out, out_cap,
	                                out_len);
}

int veil__token_create_nonce(const struct veil_identity *device, const uint8_t *cred, size_t cred_len,
                             const char *client_id, const char *audience, uint64_t now,
                             const uint8_t nonce[VEIL_TOKEN_NONCE_BYTES], uint8_t *out, size_t out_cap,
                             size_t *out_len)
{
	if (!device || !cred || !client_id || !out || !out_len || cred_len > VEIL_CREDENTIAL_MAX)
		return VEIL_ERR_INVAL;
	if (audience && !veil_audience_valid(audience))
		return VEIL_ERR_INVAL;
	size_t idl = strlen(client_id);
	size_t al = audience ? strlen(audience) : 0;
	unsigned version = audience ? TOKEN_V2 : TOKEN_V1;
	size_t need = TOKEN_FIXED + (audience ? 1U + al : 0U) + cred_len + VEIL_SIG_BYTES;
	if (idl == 0 || idl > VEIL_CLIENT_ID_MAX || out_cap < need)
		return VEIL_ERR_INVAL;
	uint8_t *p = out;
	*p++ = (uint8_t)version;
	veil__put_u64(p, now);
	p += 8;
	memcpy(p, nonce, VEIL_TOKEN_NONCE_BYTES);
	p += VEIL_TOKEN_NONCE_BYTES;
	if (audience) {
		*p++ = (uint8_t)al;
		memcpy(p, audience, al);
		p += al;
	}
	veil__put_u16(p, (uint16_t)cred_len);
	p += 2;
	memcpy(p, cred, cred_len);
	p += cred_len;
	size_t body = (size_t)(p - out);
	uint8_t idl8 = (uint8_t)idl;
	struct veil__part parts[] = {
		{ domain(version), strlen(domain(version)) }, { out, body }, { &idl8, 1 }, { client_id, idl }
	};
	int rc = veil__identity_sign(device, parts, 4, p);
	if (rc != VEIL_OK)
		return rc;
	*out_len = body + VEIL_SIG_BYTES;
	return VEIL_OK;
}

/* Structure (section 4, step 1), in this order: shorter than the smallest
 * token, TRUNCATED; longer than the largest of any version, TOO_LARGE;
 * unknown version; then per version its lengths (a version 1 token longer
 * than VEIL_TOKEN_V1_MAX is TOO_LARGE); an audience that is not a name
 * (empty, too long, not UTF-8, a control character, a wildcard, '/'), or
 * bytes after the signature, PARSE. */
static int view(const uint8_t *tok, size_t len, struct tok_view *v)
{
	if (len < TOKEN_FIXED + VEIL_SIG_BYTES)
		return VEIL_ERR_TRUNCATED;
	if (len > VEIL_TOKEN_MAX)
		return VEIL_ERR_TOO_LARGE;
	memset(v, 0, sizeof(*v));
	v->version = tok[0];
	if (v->version != TOKEN_V1 && v->version != TOKEN_V2)
		return VEIL_ERR_VERSION;
	size_t off = TOKEN_HEAD;
	if (v->version == TOKEN_V1) {
		if (len > VEIL_TOKEN_V1_MAX)
			return VEIL_ERR_TOO_LARGE;
	} else {
		v->audience_len = tok[off++];
		if (off + v->audience_len + 2U + VEIL_SIG_BYTES > len)
			return VEIL_ERR_TRUNCATED;
		v->audience = tok + off;
		if (veil__name_check((const char *)v->audience, v->audience_len, VEIL__NAME_CLIENT_ID) != NULL)
			return VEIL_ERR_PARSE;
		off += v->audience_len;
	}
	size_t cl = veil__get_u16(tok + off);
	off += 2U;
	if (off + cl + VEIL_SIG_BYTES > len)
		return VEIL_ERR_TRUNCATED;
	if (off + cl + VEIL_SIG_BYTES < len)
		return VEIL_ERR_PARSE;
	v->timestamp = veil__get_u64(tok + 1);
	v->nonce = tok + 9;
	v->cred = tok + off;
	v->cred_len = cl;
	v->body = off + cl;
	return VEIL_OK;
}

int veil_token_parse(const uint8_t *tok, size_t len, uint64_t *timestamp, uint8_t nonce[VEIL_TOKEN_NONCE_BYTES],
                     const uint8_t **cred, size_t *cred_len)
{
	if (!tok || !timestamp || !nonce || !cred || !cred_len)
		return VEIL_ERR_INVAL;
	struct tok_view v;
	int rc = view(tok, len, &v);
	if (rc != VEIL_OK)
		return rc;
	*timestamp = v.timestamp;
	memcpy(nonce, v.nonce, VEIL_TOKEN_NONCE_BYTES);
	*cred = v.cred;
	*cred_len = v.cred_len;
	return VEIL_OK;
}

int veil_token_audience(const uint8_t *tok, size_t len, unsigned *version, char audience[VEIL_AUDIENCE_MAX + 1])
{
	if (!tok || !version || !audience)
		return VEIL_ERR_INVAL;
	struct tok_view v;
	int rc = view(tok, len, &v);
	if (rc != VEIL_OK)
		return rc;
	*version = v.version;
	memcpy(audience, v.audience ? v.audience : (const uint8_t *)"", v.audience_len);
	audience[v.audience_len] = '\0';
	return VEIL_OK;
}

/* Section 4, step 2: a version 2 token is for exactly this deployment; a
 * verifier without a name takes none (the token says where it is valid,
 * and this is not known to be there). Version 1 names no deployment: the
 * verifier's policy decides about it, not this rule. */
static int audience_check(const struct tok_view *v, const char *audience)
{
	if (v->version == TOKEN_V1)
		return VEIL_OK;
	if (!audience || strlen(audience) != v->audience_len || memcmp(audience, v->audience, v->audience_len) != 0)
		return VEIL_ERR_WRONG_AUDIENCE;
	return VEIL_OK;
}

static bool fresh(uint64_t ts, uint64_t now, uint32_t window_s)
{
	uint64_t skew = ts > now ? ts - now : now - ts;
	return skew <= window_s;
}

/* The checks after the credential: its client id, and the device's signature. */
static int check_device(const uint8_t *tok, const struct tok_view *v, const char *client_id,
                        const struct veil_credential *c)
{
	size_t idl = strlen(client_id);
	if (idl != strlen(c->client_id) || sodium_memcmp(client_id, c->client_id, idl) != 0)
		return VEIL_ERR_CLIENT_ID;
	uint8_t idl8 = (uint8_t)idl;
	struct veil__part parts[] = {
		{ domain(v->version), strlen(domain(v->version)) }, { tok, v->body }, { &idl8, 1 }, { client_id, idl }
	};
	return veil__verify(c->device_pk, parts, 4, tok + v->body);
}

/* Structure, audience, freshness: the steps before any signature. */
static int precheck(const uint8_t *tok, size_t len, const char *audience, uint64_t now, uint32_t window_s,
                    struct tok_view *v, struct veil_token *out)
{
	int rc = view(tok, len, v);
	if (rc != VEIL_OK)
		return rc;
	out->timestamp = v->timestamp;
	memcpy(out->nonce, v->nonce, VEIL_TOKEN_NONCE_BYTES);
	rc = audience_check(v, audience);
	if (rc != VEIL_OK)
		return rc;
	/* Freshness next: cheap, and stale tokens need no signature work. */
	return fresh(v->timestamp, now, window_s) ? VEIL_OK : VEIL_ERR_STALE;
}

int veil_token_verify(const uint8_t *tok, size_t len, const char *client_id,
                      const uint8_t (*authorities)[VEIL_PK_BYTES], size_t n_authorities, uint64_t now,
                      uint32_t window_s, struct veil_token *out)
{
	return veil__token_verify_cached(NULL, tok, len, client_id, NULL, authorities, n_authorities, now, window_s,
	                                 out, NULL);
}

int veil_token_verify_for(const uint8_t *tok, size_t len, const char *client_id, const char *audience,
                          const uint8_t (*authorities)[VEIL_PK_BYTES], size_t n_authorities, uint64_t now,
                          uint32_t window_s, struct veil_token *out)
{
	return veil__token_verify_cached(NULL, tok, len, client_id, audience, authorities, n_authorities, now,
	                                 window_s, out, NULL);
}

int veil__token_verify_cached(struct veil__credcache *c, const uint8_t *tok, size_t len, const char *client_id,
                              const char *audience, const uint8_t (*authorities)[VEIL_PK_BYTES],
                              size_t n_authorities, uint64_t now, uint32_t window_s, struct veil_token *out,
                              bool *cached)
{
	if (cached)
		*cached = false;
	if (!tok || !client_id || !out)
		return VEIL_ERR_INVAL;
	memset(out, 0, sizeof(*out));
	struct tok_view v;
	int rc = precheck(tok, len, audience, now, window_s, &v, out);
	if (rc != VEIL_OK)
		return rc;
	rc = veil__credential_verify_cached(c, v.cred, v.cred_len, authorities, n_authorities, now, &out->cred, cached);
	if (rc != VEIL_OK)
		return rc;
	return check_device(tok, &v, client_id, &out->cred);
}

int veil_token_verify_with(const uint8_t *tok, size_t len, const char *client_id,
                           const struct veil_credential *verified, uint64_t now, uint32_t window_s,
                           struct veil_token *out)
{
	if (!tok || !client_id || !verified || !out)
		return VEIL_ERR_INVAL;
	memset(out, 0, sizeof(*out));
	struct tok_view v;
	int rc = precheck(tok, len, NULL, now, window_s, &v, out);
	if (rc != VEIL_OK)
		return rc;
	if (now < verified->issued_at)
		return VEIL_ERR_NOT_YET_VALID;
	if (now >= verified->expires_at)
		return VEIL_ERR_EXPIRED;
	out->cred = *verified;
	return check_device(tok, &v, client_id, &out->cred);
}

int veil_token_to_password(const uint8_t *tok, size_t len, char *out, size_t out_cap)
{
	size_t pre = strlen(VEIL_PASSWORD_PREFIX);
	if (!tok || !out || len > VEIL_TOKEN_MAX || out_cap < pre + 1)
		return VEIL_ERR_INVAL;
	memcpy(out, VEIL_PASSWORD_PREFIX, pre);
	return veil__b64_encode(tok, len, out + pre, out_cap - pre);
}

int veil_password_to_token(const char *password, uint8_t *out, size_t out_cap, size_t *out_len)
{
	size_t pre = strlen(VEIL_PASSWORD_PREFIX);
	if (!password || !out || !out_len)
		return VEIL_ERR_INVAL;
	if (strncmp(password, VEIL_PASSWORD_PREFIX, pre) != 0)
		return VEIL_ERR_PARSE;
	const char *b = password + pre;
	size_t bl = strlen(b);
	if (bl > ((VEIL_TOKEN_MAX + 2U) / 3U) * 4U)
		return VEIL_ERR_TOO_LARGE;
	return veil__b64_decode(b, bl, out, out_cap, out_len);
}
