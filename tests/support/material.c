/* Test material made with the core API (see material.h). */
#include "material.h"

#include <check.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <sodium.h>

#include "veil/veil.h"

size_t test_credential_make(const struct veil_identity *authority, const struct veil_identity *device,
                            const char *client_id, const char *roles, int64_t valid_s,
                            uint8_t out[VEIL_CREDENTIAL_MAX])
{
	struct veil_credential c;
	memset(&c, 0, sizeof(c));
	veil_identity_public(device, c.device_pk);
	snprintf(c.client_id, sizeof(c.client_id), "%s", client_id);
	snprintf(c.roles, sizeof(c.roles), "%s", roles ? roles : "");
	int64_t now = (int64_t)time(NULL);
	c.issued_at = (uint64_t)(now - 3600);
	c.expires_at = (uint64_t)(now + valid_s);
	size_t n = 0;
	ck_assert_int_eq(veil_credential_issue(authority, &c, out, VEIL_CREDENTIAL_MAX, &n), VEIL_OK);
	return n;
}

size_t test_token_make(const struct veil_identity *device, const uint8_t *cred, size_t cred_len,
                       const char *client_id, int64_t skew_s, uint8_t out[VEIL_TOKEN_MAX])
{
	size_t n = 0;
	uint64_t t = (uint64_t)((int64_t)time(NULL) + skew_s);
	ck_assert_int_eq(veil_token_create(device, cred, cred_len, client_id, t, out, VEIL_TOKEN_MAX, &n), VEIL_OK);
	return n;
}

void test_token_password(const uint8_t *tok, size_t len, char out[VEIL_PASSWORD_MAX])
{
	ck_assert_int_eq(veil_token_to_password(tok, len, out, VEIL_PASSWORD_MAX), VEIL_OK);
}

void test_token_password_files(const char *key, const char *cred, const char *client_id,
                               char out[VEIL_PASSWORD_MAX])
{
	struct veil_identity *id = NULL;
	uint8_t c[VEIL_CREDENTIAL_MAX], tok[VEIL_TOKEN_MAX];
	size_t cl = 0;
	ck_assert_int_eq(veil_identity_load(key, &id, NULL, 0), VEIL_OK);
	ck_assert_int_eq(veil_credential_load(cred, c, sizeof(c), &cl, NULL, 0), VEIL_OK);
	size_t tl = test_token_make(id, c, cl, client_id, 0, tok);
	test_token_password(tok, tl, out);
	veil_identity_free(&id);
	sodium_memzero(tok, sizeof(tok));
}

void test_device_new(struct test_device *d, const struct veil_identity *authority, const char *client_id,
                     const char *roles)
{
	memset(d, 0, sizeof(*d));
	ck_assert_int_eq(veil_identity_generate(&d->id), VEIL_OK);
	uint8_t pk[VEIL_PK_BYTES];
	veil_identity_public(d->id, pk);
	veil_sender_id(pk, d->sender);
	d->cred_len = test_credential_make(authority, d->id, client_id, roles, 3600, d->cred);
	uint8_t tok[VEIL_TOKEN_MAX];
	size_t n = test_token_make(d->id, d->cred, d->cred_len, client_id, 0, tok);
	test_token_password(tok, n, d->pw);
}

void test_device_free(struct test_device *d)
{
	veil_identity_free(&d->id);
	sodium_memzero(d, sizeof(*d));
}

void test_device_save(const struct veil_identity *authority, const char *dir, const char *stem,
                      const char *client_id)
{
	test_device_save_roles(authority, dir, stem, client_id, NULL);
}

void test_device_save_roles(const struct veil_identity *authority, const char *dir, const char *stem,
                            const char *client_id, const char *roles)
{
	struct veil_identity *id = NULL;
	ck_assert_int_eq(veil_identity_generate(&id), VEIL_OK);
	char path[512];
	ck_assert_int_lt(snprintf(path, sizeof(path), "%s/%s.key", dir, stem), (int)sizeof(path));
	ck_assert_int_eq(veil_identity_save(id, path), VEIL_OK);
	struct stat st;
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(st.st_mode & 077, 0);
	uint8_t cred[VEIL_CREDENTIAL_MAX];
	size_t n = test_credential_make(authority, id, client_id, roles, 86400, cred);
	ck_assert_int_lt(snprintf(path, sizeof(path), "%s/%s.cred", dir, stem), (int)sizeof(path));
	ck_assert_int_eq(veil_credential_save(cred, n, path), VEIL_OK);
	veil_identity_free(&id);
}

void test_authority_save(const struct veil_identity *authority, const char *dir, char *out, size_t cap)
{
	uint8_t pk[VEIL_PK_BYTES];
	veil_identity_public(authority, pk);
	ck_assert_int_lt(snprintf(out, cap, "%s/authority.pub", dir), (int)cap);
	ck_assert_int_eq(veil_public_key_save(pk, out), VEIL_OK);
	ck_assert_int_eq(chmod(out, 0644), 0);
}

void test_passwd_line(char *out, size_t cap, const char *user, const char *password)
{
	char h[crypto_pwhash_STRBYTES];
	ck_assert_int_eq(crypto_pwhash_str(h, password, strlen(password), crypto_pwhash_OPSLIMIT_MIN,
	                                   crypto_pwhash_MEMLIMIT_MIN),
	                 0);
	ck_assert_int_lt(snprintf(out, cap, "%s:%s\n", user, h), (int)cap);
}

void test_b64(char *out, size_t cap, const uint8_t *in, size_t n)
{
	sodium_bin2base64(out, cap, in, n, sodium_base64_VARIANT_ORIGINAL);
}

size_t test_envelope_make(const uint8_t *key, uint32_t key_id, const char *topic,
                          const uint8_t sender[VEIL_SENDER_ID_BYTES], uint64_t seq, const struct veil_identity *signer,
                          const uint8_t *cred, size_t cred_len, const char *pt, uint8_t *out, size_t cap)
{
	struct veil_seal_params p;
	memset(&p, 0, sizeof(p));
	p.key = key;
	p.key_id = key_id;
	memcpy(p.sender, sender, VEIL_SENDER_ID_BYTES);
	p.seq = seq;
	p.signer = signer;
	p.credential = cred;
	p.credential_len = cred_len;
	size_t n = 0;
	ck_assert_int_eq(veil_envelope_seal(&p, topic, (const uint8_t *)pt, strlen(pt), out, cap, &n), VEIL_OK);
	return n;
}
