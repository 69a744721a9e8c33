/*
 * Credentials (docs/PROTOCOL.md section 3): an authority's signature over a
 * device's client id, public key, validity and roles. Encoding, parsing,
 * verification, and the credential file.
 *
 *   0 version 0x01 | 1 flags 0x00 | 2 id[16] | 18 authority id[8]
 *   26 issued_at u64 | 34 expires_at u64 | 42 device pk[32]
 *   74 client id length u8 (1..128) | client id | roles length u8 | roles
 *   signature[64] = Ed25519(authority, "veil-cred-v1" || all bytes before it)
 */
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "veil/identity.h"
#include "bundle.h" /* veil__role_valid */
#include "internal.h"
#include "names.h"
#include "util.h"

#define CRED_DOMAIN "veil-cred-v1"
#define CRED_TAG "veil-credential-v1"
#define CRED_VERSION 1U

/* Roles: comma separated names of [A-Za-z0-9_.-]. */
static bool roles_ok(const char *s, size_t n)
{
	if (n > VEIL_ROLES_MAX)
		return false;
	bool empty_item = true;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == ',') {
			if (empty_item)
				return false;
			empty_item = true;
		} else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
		           c == '.' || c == '-') {
			empty_item = false;
		} else {
			return false;
		}
	}
	return n == 0 || !empty_item;
}

bool veil__role_valid(const char *role)
{
	size_t n = role ? strnlen(role, VEIL_ROLES_MAX + 1U) : 0;
	return n > 0 && !memchr(role, ',', n) && roles_ok(role, n);
}

int veil_credential_issue(const struct veil_identity *authority, struct veil_credential *c, uint8_t *out,
                          size_t out_cap, size_t *out_len)
{
	if (!authority || !c || !out || !out_len)
		return VEIL_ERR_INVAL;
	randombytes_buf(c->id, sizeof(c->id));
	return veil__credential_issue_id(authority, c, out, out_cap, out_len);
}

int veil__credential_issue_id(const struct veil_identity *authority, struct veil_credential *c, uint8_t *out,
                              size_t out_cap, size_t *out_len)
{
	size_t idl = strnlen(c->client_id, sizeof(c->client_id));
	size_t rl = strnlen(c->roles, sizeof(c->roles));
	if (veil__name_check(c->client_id, idl, VEIL__NAME_CLIENT_ID) || !roles_ok(c->roles, rl) ||
	    c->expires_at <= c->issued_at)
		return VEIL_ERR_INVAL;
	size_t need = VEIL_CREDENTIAL_FIXED + idl + 1 + rl + VEIL_SIG_BYTES;
	if (out_cap < need)
		return VEIL_ERR_INVAL;
	uint8_t apk[VEIL_PK_BYTES];
	veil_identity_public(authority, apk);
	veil_authority_id(apk, c->authority_id);

	uint8_t *p = out;
	*p++ = CRED_VERSION;
	*p++ = 0;
	memcpy(p, c->id, VEIL_CREDENTIAL_ID_BYTES);
	p += VEIL_CREDENTIAL_ID_BYTES;
	memcpy(p, c->authority_id, VEIL_AUTHORITY_ID_BYTES);
	p += VEIL_AUTHORITY_ID_BYTES;
	veil__put_u64(p, c->issued_at);
	p += 8;
	veil__put_u64(p, c->expires_at);
	p += 8;
	memcpy(p, c->device_pk, VEIL_PK_BYTES);
	p += VEIL_PK_BYTES;
	*p++ = (uint8_t)idl;
	memcpy(p, c->client_id, idl);
	p += idl;
	*p++ = (uint8_t)rl;
	memcpy(p, c->roles, rl);
	p += rl;
	size_t body = (size_t)(p - out);
	struct veil__part parts[] = { { CRED_DOMAIN, strlen(CRED_DOMAIN) }, { out, body } };
	int rc = veil__identity_sign(authority, parts, 2, p);
	if (rc != VEIL_OK)
		return rc;
	*out_len = body + VEIL_SIG_BYTES;
	return VEIL_OK;
}

int veil_credential_parse(const uint8_t *buf, size_t len, struct veil_credential *out)
{
	if (!buf || !out)
		return VEIL_ERR_INVAL;
	memset(out, 0, sizeof(*out));
	if (len < VEIL_CREDENTIAL_FIXED)
		return VEIL_ERR_TRUNCATED;
	if (len > VEIL_CREDENTIAL_MAX)
		return VEIL_ERR_TOO_LARGE;
	if (buf[0] != CRED_VERSION)
		return VEIL_ERR_VERSION;
	if (buf[1] != 0)
		return VEIL_ERR_RESERVED_FLAGS;
	const uint8_t *p = buf + 2;
	memcpy(out->id, p, VEIL_CREDENTIAL_ID_BYTES);
	p += VEIL_CREDENTIAL_ID_BYTES;
	memcpy(out->authority_id, p, VEIL_AUTHORITY_ID_BYTES);
	p += VEIL_AUTHORITY_ID_BYTES;
	out->issued_at = veil__get_u64(p);
	p += 8;
	out->expires_at = veil__get_u64(p);
	p += 8;
	memcpy(out->device_pk, p, VEIL_PK_BYTES);
	p += VEIL_PK_BYTES;
	size_t idl = *p++;
	size_t off = (size_t)(p - buf);
	if (len < off + idl + 1)
		return VEIL_ERR_TRUNCATED;
	if (veil__name_check((const char *)p, idl, VEIL__NAME_CLIENT_ID))
		return VEIL_ERR_PARSE;
	memcpy(out->client_id, p, idl);
	p += idl;
	size_t rl = *p++;
	off = (size_t)(p - buf);
	if (len < off + rl + VEIL_SIG_BYTES)
		return VEIL_ERR_TRUNCATED;
	if (len > off + rl + VEIL_SIG_BYTES)
		return VEIL_ERR_PARSE; /* trailing bytes */
	if (!roles_ok((const char *)p, rl))
		return VEIL_ERR_PARSE;
	memcpy(out->roles, p, rl);
	return VEIL_OK;
}

int veil_credential_verify(const uint8_t *buf, size_t len, const uint8_t (*authorities)[VEIL_PK_BYTES],
                           size_t n_authorities, uint64_t now, struct veil_credential *out)
{
	struct veil_credential c;
	int rc = veil_credential_parse(buf, len, &c);
	if (rc != VEIL_OK)
		return rc;
	const uint8_t *apk = NULL;
	for (size_t i = 0; i < n_authorities && !apk; i++) {
		uint8_t aid[VEIL_AUTHORITY_ID_BYTES];
		veil_authority_id(authorities[i], aid);
		if (sodium_memcmp(aid, c.authority_id, sizeof(aid)) == 0)
			apk = authorities[i];
	}
	if (!apk)
		return VEIL_ERR_WRONG_AUTHORITY;
	size_t body = len - VEIL_SIG_BYTES;
	struct veil__part parts[] = { { CRED_DOMAIN, strlen(CRED_DOMAIN) }, { buf, body } };
	rc = veil__verify(apk, parts, 2, buf + body);
	if (rc != VEIL_OK)
		return rc;
	if (now < c.issued_at)
		return VEIL_ERR_NOT_YET_VALID;
	if (now >= c.expires_at)
		return VEIL_ERR_EXPIRED;
	if (out)
		*out = c;
	return VEIL_OK;
}

int veil_credential_load(const char *path, uint8_t *out, size_t out_cap, size_t *out_len, char *errbuf,
                         size_t errlen)
{
	if (!path || !out || !out_len)
		return VEIL_ERR_INVAL;
	struct veil__text t;
	int rc = veil__file_read(path, 0, 8192, &t, errbuf, errlen);
	if (rc != VEIL_OK)
		return rc;
	struct veil__lines it = { .text = t.text, .len = t.len };
	char line[1024];
	enum veil__line ls;
	rc = VEIL_ERR_PARSE;
	veil__errf(errbuf, errlen, "%s: no '%s' line", path, CRED_TAG);
	while ((ls = veil__lines_next(&it, line, sizeof(line))) != VEIL__LINE_END) {
		if (ls != VEIL__LINE_OK) {
			veil__errf(errbuf, errlen, "%s:%u: %s", path, it.lineno,
			           ls == VEIL__LINE_NUL ? "NUL byte in the line" : "line too long");
			break;
		}
		if (!line[0])
			continue;
		char *f[3];
		size_t n = veil__split(line, f, 2);
		if (n != 2 || strcmp(f[0], CRED_TAG) != 0) {
			veil__errf(errbuf, errlen, "%s:%u: expected '%s <base64>'", path, it.lineno, CRED_TAG);
			break;
		}
		uint8_t tmp[VEIL_CREDENTIAL_MAX];
		size_t got = 0;
		struct veil_credential c;
		if (veil__b64_decode(f[1], strlen(f[1]), tmp, sizeof(tmp), &got) != VEIL_OK ||
		    veil_credential_parse(tmp, got, &c) != VEIL_OK) {
			veil__errf(errbuf, errlen, "%s:%u: not a valid credential", path, it.lineno);
			break;
		}
		if (got > out_cap) {
			rc = VEIL_ERR_INVAL;
			break;
		}
		memcpy(out, tmp, got);
		*out_len = got;
		rc = VEIL_OK;
		break;
	}
	veil__text_free(&t);
	return rc;
}

int veil_credential_save(const uint8_t *cred, size_t len, const char *path)
{
	if (!cred || !path || len > VEIL_CREDENTIAL_MAX)
		return VEIL_ERR_INVAL;
	char b64[sodium_base64_ENCODED_LEN(VEIL_CREDENTIAL_MAX, sodium_base64_VARIANT_ORIGINAL)];
	char text[sizeof(b64) + 64];
	veil__b64_encode(cred, len, b64, sizeof(b64));
	int n = snprintf(text, sizeof(text), "%s %s\n", CRED_TAG, b64);
	return veil__file_write_atomic(path, text, (size_t)n, 0644, false);
}
