/* Tests for core/identity.c, credential.c and token.c. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "veil/veil.h"
#include "../../core/internal.h"
#include "broker.h"
#include "vectors.h"
#include "check_run.h"
#include "timing.h"

static struct veil_identity *auth, *dev;
static uint8_t apk[1][32];

static void setup(void)
{
	ck_assert_int_eq(veil_init(), VEIL_OK);
	ck_assert_int_eq(veil_identity_generate(&auth), VEIL_OK);
	ck_assert_int_eq(veil_identity_generate(&dev), VEIL_OK);
	veil_identity_public(auth, apk[0]);
}

static void teardown(void)
{
	veil_identity_free(&auth);
	veil_identity_free(&dev);
	ck_assert_ptr_null(auth);
}

static size_t issue(const char *client, uint64_t from, uint64_t to, uint8_t *out)
{
	struct veil_credential c = { 0 };
	veil_identity_public(dev, c.device_pk);
	snprintf(c.client_id, sizeof(c.client_id), "%s", client);
	strcpy(c.roles, "sensor,line-1");
	c.issued_at = from;
	c.expires_at = to;
	size_t len = 0;
	ck_assert_int_eq(veil_credential_issue(auth, &c, out, VEIL_CREDENTIAL_MAX, &len), VEIL_OK);
	return len;
}

START_TEST(test_credential_verify)
{
	uint8_t cred[VEIL_CREDENTIAL_MAX];
	size_t len = issue("sensor-1", 1000, 2000, cred);
	struct veil_credential out;
	ck_assert_int_eq(veil_credential_verify(cred, len, apk, 1, 1500, &out), VEIL_OK);
	ck_assert_str_eq(out.client_id, "sensor-1");
	ck_assert_str_eq(out.roles, "sensor,line-1");
	ck_assert_int_eq(veil_credential_verify(cred, len, apk, 1, 2000, &out), VEIL_ERR_EXPIRED);
	ck_assert_int_eq(veil_credential_verify(cred, len, apk, 1, 999, &out), VEIL_ERR_NOT_YET_VALID);
	/* Wrong authority. */
	struct veil_identity *other = NULL;
	ck_assert_int_eq(veil_identity_generate(&other), VEIL_OK);
	uint8_t opk[1][32];
	veil_identity_public(other, opk[0]);
	ck_assert_int_eq(veil_credential_verify(cred, len, opk, 1, 1500, &out), VEIL_ERR_WRONG_AUTHORITY);
	ck_assert_int_eq(veil_credential_verify(cred, len, NULL, 0, 1500, &out), VEIL_ERR_WRONG_AUTHORITY);
	veil_identity_free(&other);
	/* Bad signature: any byte of body or signature. */
	for (size_t i = 26; i < len; i++) {
		cred[i] ^= 0x04;
		int rc = veil_credential_verify(cred, len, apk, 1, 1500, &out);
		ck_assert_msg(rc == VEIL_ERR_BAD_SIGNATURE || rc == VEIL_ERR_PARSE, "byte %zu rc %d", i, rc);
		cred[i] ^= 0x04;
	}
	/* Truncated and oversized. */
	for (size_t cut = 0; cut < len; cut++)
		ck_assert_int_ne(veil_credential_verify(cred, cut, apk, 1, 1500, &out), VEIL_OK);
	ck_assert_int_eq(veil_credential_parse(cred, 10, &out), VEIL_ERR_TRUNCATED);
	ck_assert_int_eq(veil_credential_parse(cred, VEIL_CREDENTIAL_MAX + 1, &out), VEIL_ERR_TOO_LARGE);
	cred[0] = 9;
	ck_assert_int_eq(veil_credential_parse(cred, len, &out), VEIL_ERR_VERSION);
	/* Reserved flags have their own name (PROTOCOL.md section 3). */
	cred[0] = 1;
	for (unsigned bit = 0; bit < 8; bit++) {
		cred[1] = (uint8_t)(1U << bit);
		ck_assert_int_eq(veil_credential_parse(cred, len, &out), VEIL_ERR_RESERVED_FLAGS);
	}
}
END_TEST

START_TEST(test_credential_rejects_bad_fields)
{
	struct veil_credential c = { 0 };
	uint8_t out[VEIL_CREDENTIAL_MAX];
	size_t len;
	c.issued_at = 1;
	c.expires_at = 2;
	static const char *bad_ids[] = { "", "a+b", "a#", "a/b", "tab\there" };
	for (size_t i = 0; i < sizeof(bad_ids) / sizeof(*bad_ids); i++) {
		strcpy(c.client_id, bad_ids[i]);
		ck_assert_int_eq(veil_credential_issue(auth, &c, out, sizeof(out), &len), VEIL_ERR_INVAL);
	}
	strcpy(c.client_id, "ok");
	strcpy(c.roles, "a,,b");
	ck_assert_int_eq(veil_credential_issue(auth, &c, out, sizeof(out), &len), VEIL_ERR_INVAL);
	strcpy(c.roles, "");
	c.expires_at = 1;
	ck_assert_int_eq(veil_credential_issue(auth, &c, out, sizeof(out), &len), VEIL_ERR_INVAL);
}
END_TEST

START_TEST(test_token)
{
	uint8_t cred[VEIL_CREDENTIAL_MAX], tok[VEIL_TOKEN_MAX];
	size_t cl = issue("sensor-1", 1000, 100000, cred);
	size_t tl = 0;
	ck_assert_int_eq(veil_token_create(dev, cred, cl, "sensor-1", 5000, tok, sizeof(tok), &tl), VEIL_OK);
	struct veil_token t;
	ck_assert_int_eq(veil_token_verify(tok, tl, "sensor-1", apk, 1, 5030, 60, &t), VEIL_OK);
	ck_assert_str_eq(t.cred.client_id, "sensor-1");
	ck_assert_uint_eq(t.timestamp, 5000);
	ck_assert_int_eq(veil_token_verify(tok, tl, "sensor-1", apk, 1, 5061, 60, &t), VEIL_ERR_STALE);
	ck_assert_int_eq(veil_token_verify(tok, tl, "sensor-1", apk, 1, 4939, 60, &t), VEIL_ERR_STALE);
	ck_assert_int_eq(veil_token_verify(tok, tl, "sensor-2", apk, 1, 5000, 60, &t), VEIL_ERR_CLIENT_ID);
	/* Token for a credential that expired. */
	ck_assert_int_eq(veil_token_verify(tok, tl, "sensor-1", apk, 1, 5000, 60, &t), VEIL_OK);
	size_t cl2 = issue("sensor-1", 1000, 2000, cred);
	ck_assert_int_eq(veil_token_create(dev, cred, cl2, "sensor-1", 5000, tok, sizeof(tok), &tl), VEIL_OK);
	ck_assert_int_eq(veil_token_verify(tok, tl, "sensor-1", apk, 1, 5000, 60, &t), VEIL_ERR_EXPIRED);
	/* A token signed by another key for a valid credential (stolen credential). */
	cl = issue("sensor-1", 1000, 100000, cred);
	struct veil_identity *thief = NULL;
	ck_assert_int_eq(veil_identity_generate(&thief), VEIL_OK);
	ck_assert_int_eq(veil_token_create(thief, cred, cl, "sensor-1", 5000, tok, sizeof(tok), &tl), VEIL_OK);
	ck_assert_int_eq(veil_token_verify(tok, tl, "sensor-1", apk, 1, 5000, 60, &t), VEIL_ERR_BAD_SIGNATURE);
	veil_identity_free(&thief);
	/* Tampered, truncated, oversized. */
	ck_assert_int_eq(veil_token_create(dev, cred, cl, "sensor-1", 5000, tok, sizeof(tok), &tl), VEIL_OK);
	tok[tl - 1] ^= 1;
	ck_assert_int_eq(veil_token_verify(tok, tl, "sensor-1", apk, 1, 5000, 60, &t), VEIL_ERR_BAD_SIGNATURE);
	ck_assert_int_eq(veil_token_verify(tok, 20, "sensor-1", apk, 1, 5000, 60, &t), VEIL_ERR_TRUNCATED);
	ck_assert_int_eq(veil_token_verify(tok, VEIL_TOKEN_MAX + 1, "sensor-1", apk, 1, 5000, 60, &t),
	                 VEIL_ERR_TOO_LARGE);
	tok[0] = 7;
	ck_assert_int_eq(veil_token_verify(tok, tl, "sensor-1", apk, 1, 5000, 60, &t), VEIL_ERR_VERSION);
}
END_TEST

/* Version 2 (docs/PROTOCOL.md section 4): the audience is checked right
 * after the structure, before freshness and every signature; version 1
 * passes that step at any verifier; a verifier without an audience takes no
 * version 2 token. */
START_TEST(test_token_audience)
{
	uint8_t cred[VEIL_CREDENTIAL_MAX], tok[VEIL_TOKEN_MAX], v1[VEIL_TOKEN_MAX];
	size_t cl = issue("sensor-1", 1000, 100000, cred), tl = 0, v1l = 0;
	ck_assert_int_eq(veil_token_create_for(dev, cred, cl, "sensor-1", "plant-a", 5000, tok, sizeof(tok), &tl),
	                 VEIL_OK);
	ck_assert_uint_eq(tl, 28 + 7 + cl + 64);
	ck_assert_uint_eq(tok[0], 2);
	struct veil_token t;
	ck_assert_int_eq(veil_token_verify_for(tok, tl, "sensor-1", "plant-a", apk, 1, 5030, 60, &t), VEIL_OK);
	ck_assert_str_eq(t.cred.client_id, "sensor-1");
	ck_assert_int_eq(veil_token_verify_for(tok, tl, "sensor-1", "plant-b", apk, 1, 5000, 60, &t),
	                 VEIL_ERR_WRONG_AUDIENCE);
	ck_assert_int_eq(veil_token_verify_for(tok, tl, "sensor-1", "plant-", apk, 1, 5000, 60, &t),
	                 VEIL_ERR_WRONG_AUDIENCE);
	ck_assert_int_eq(veil_token_verify_for(tok, tl, "sensor-1", "plant-aa", apk, 1, 5000, 60, &t),
	                 VEIL_ERR_WRONG_AUDIENCE);
	ck_assert_int_eq(veil_token_verify_for(tok, tl, "sensor-1", NULL, apk, 1, 5000, 60, &t), VEIL_ERR_WRONG_AUDIENCE);
	ck_assert_int_eq(veil_token_verify(tok, tl, "sensor-1", apk, 1, 5000, 60, &t), VEIL_ERR_WRONG_AUDIENCE);
	/* Before freshness and before any signature: a stale token for another
	 * deployment, from a stranger, is wrong-audience. */
	ck_assert_int_eq(veil_token_verify_for(tok, tl, "sensor-1", "plant-b", NULL, 0, 99999, 60, &t),
	                 VEIL_ERR_WRONG_AUDIENCE);
	ck_assert_int_eq(veil_token_verify_for(tok, tl, "sensor-1", "plant-a", apk, 1, 5061, 60, &t), VEIL_ERR_STALE);
	ck_assert_int_eq(veil_token_verify_for(tok, tl, "sensor-2", "plant-a", apk, 1, 5000, 60, &t),
	                 VEIL_ERR_CLIENT_ID);
	unsigned ver = 0;
	char aud[VEIL_AUDIENCE_MAX + 1];
	ck_assert_int_eq(veil_token_audience(tok, tl, &ver, aud), VEIL_OK);
	ck_assert_uint_eq(ver, 2);
	ck_assert_str_eq(aud, "plant-a");
	/* Version 1 passes the audience step anywhere (the verifier's policy
	 * decides about it), and is what veil_token_create gives. */
	ck_assert_int_eq(veil_token_create_for(dev, cred, cl, "sensor-1", NULL, 5000, v1, sizeof(v1), &v1l), VEIL_OK);
	ck_assert_uint_eq(v1[0], 1);
	ck_assert_uint_eq(v1l, 27 + cl + 64);
	ck_assert_int_eq(veil_token_verify_for(v1, v1l, "sensor-1", "plant-a", apk, 1, 5000, 60, &t), VEIL_OK);
	ck_assert_int_eq(veil_token_audience(v1, v1l, &ver, aud), VEIL_OK);
	ck_assert_uint_eq(ver, 1);
	ck_assert_str_eq(aud, "");
	/* Signed: an audience changed in transit, or one removed to pass the
	 * token off as version 1 (the domains differ), fails the signature. */
	uint8_t bad[VEIL_TOKEN_MAX];
	memcpy(bad, tok, tl);
	bad[26] = 'P'; /* "Plant-a" */
	ck_assert_int_eq(veil_token_verify_for(bad, tl, "sensor-1", "Plant-a", apk, 1, 5000, 60, &t),
	                 VEIL_ERR_BAD_SIGNATURE);
	bad[0] = 1;
	memmove(bad + 25, tok + 26 + 7, tl - 26 - 7);
	ck_assert_int_eq(veil_token_verify_for(bad, tl - 8, "sensor-1", NULL, apk, 1, 5000, 60, &t),
	                 VEIL_ERR_BAD_SIGNATURE);
	/* Structure: truncated anywhere, trailing bytes, an audience that is not
	 * a name, the largest token of each version. */
	for (size_t n = 0; n < tl; n++)
		ck_assert_int_eq(veil_token_verify_for(tok, n, "sensor-1", "plant-a", apk, 1, 5000, 60, &t),
		                 VEIL_ERR_TRUNCATED);
	memcpy(bad, tok, tl);
	bad[tl] = 0;
	ck_assert_int_eq(veil_token_verify_for(bad, tl + 1, "sensor-1", "plant-a", apk, 1, 5000, 60, &t),
	                 VEIL_ERR_PARSE);
	static const char *const not_names[] = { "a/b", "a+", "#", " a", "a ", "a\x01" };
	for (size_t i = 0; i < sizeof(not_names) / sizeof(not_names[0]); i++) {
		ck_assert_int_eq(veil_token_create_for(dev, cred, cl, "sensor-1", not_names[i], 5000, bad, sizeof(bad), &tl),
		                 VEIL_ERR_INVAL);
		ck_assert(!veil_audience_valid(not_names[i]));
	}
	ck_assert_int_eq(veil_token_create_for(dev, cred, cl, "sensor-1", "", 5000, bad, sizeof(bad), &tl),
	                 VEIL_ERR_INVAL);
	memcpy(bad, tok, 28 + 7 + cl + 64);
	bad[26] = '/';
	ck_assert_int_eq(veil_token_verify_for(bad, 28 + 7 + cl + 64, "sensor-1", "/lant-a", apk, 1, 5000, 60, &t),
	                 VEIL_ERR_PARSE);
	bad[25] = 0; /* empty audience */
	ck_assert_int_eq(veil_token_audience(bad, 28 + 7 + cl + 64, &ver, aud), VEIL_ERR_PARSE);
	char longest[VEIL_AUDIENCE_MAX + 2];
	memset(longest, 'x', sizeof(longest));
	longest[VEIL_AUDIENCE_MAX] = '\0';
	uint8_t big_cred[VEIL_CREDENTIAL_MAX];
	char cid[VEIL_CLIENT_ID_MAX + 1];
	memset(cid, 'c', VEIL_CLIENT_ID_MAX);
	cid[VEIL_CLIENT_ID_MAX] = '\0';
	struct veil_credential c = { 0 };
	veil_identity_public(dev, c.device_pk);
	strcpy(c.client_id, cid);
	memset(c.roles, 'r', VEIL_ROLES_MAX);
	c.issued_at = 1000;
	c.expires_at = 100000;
	size_t bcl = 0;
	ck_assert_int_eq(veil_credential_issue(auth, &c, big_cred, sizeof(big_cred), &bcl), VEIL_OK);
	ck_assert_uint_eq(bcl, VEIL_CREDENTIAL_MAX);
	ck_assert_int_eq(veil_token_create_for(dev, big_cred, bcl, cid, longest, 5000, bad, sizeof(bad), &tl), VEIL_OK);
	ck_assert_uint_eq(tl, VEIL_TOKEN_MAX);
	ck_assert_int_eq(veil_token_verify_for(bad, tl, cid, longest, apk, 1, 5000, 60, &t), VEIL_OK);
	ck_assert_int_eq(veil_token_create_for(dev, big_cred, bcl, cid, NULL, 5000, bad, sizeof(bad), &tl), VEIL_OK);
	ck_assert_uint_eq(tl, VEIL_TOKEN_V1_MAX);
	ck_assert_int_eq(veil_token_verify(bad, tl, cid, apk, 1, 5000, 60, &t), VEIL_OK);
	longest[VEIL_AUDIENCE_MAX] = 'x';
	longest[VEIL_AUDIENCE_MAX + 1] = '\0';
	ck_assert(!veil_audience_valid(longest));
	ck_assert_int_eq(veil_token_create_for(dev, big_cred, bcl, cid, longest, 5000, bad, sizeof(bad), &tl),
	                 VEIL_ERR_INVAL);
	/* A version 1 token grown past the largest version 1 is too large. */
	ck_assert_int_eq(veil_token_create_for(dev, big_cred, bcl, cid, NULL, 5000, bad, sizeof(bad), &tl), VEIL_OK);
	ck_assert_int_eq(veil_token_audience(bad, VEIL_TOKEN_V1_MAX + 1, &ver, aud), VEIL_ERR_TOO_LARGE);
}
END_TEST

/* A verifier that cached the credential skips only the authority check. */
START_TEST(test_token_verify_with_verified_credential)
{
	uint8_t cred[VEIL_CREDENTIAL_MAX], tok[VEIL_TOKEN_MAX];
	size_t cl = issue("sensor-1", 1000, 100000, cred), tl = 0;
	ck_assert_int_eq(veil_token_create(dev, cred, cl, "sensor-1", 5000, tok, sizeof(tok), &tl), VEIL_OK);
	struct veil_token full, with;
	ck_assert_int_eq(veil_token_verify(tok, tl, "sensor-1", apk, 1, 5000, 60, &full), VEIL_OK);
	uint64_t ts;
	uint8_t nonce[VEIL_TOKEN_NONCE_BYTES];
	const uint8_t *cp = NULL;
	size_t cpl = 0;
	ck_assert_int_eq(veil_token_parse(tok, tl, &ts, nonce, &cp, &cpl), VEIL_OK);
	ck_assert_uint_eq(ts, 5000);
	ck_assert_uint_eq(cpl, cl);
	ck_assert_mem_eq(cp, cred, cl);
	ck_assert_int_eq(veil_token_verify_with(tok, tl, "sensor-1", &full.cred, 5000, 60, &with), VEIL_OK);
	ck_assert_mem_eq(with.nonce, full.nonce, sizeof(with.nonce));
	ck_assert_str_eq(with.cred.client_id, "sensor-1");
	/* Everything but the authority signature is still checked. */
	ck_assert_int_eq(veil_token_verify_with(tok, tl, "sensor-2", &full.cred, 5000, 60, &with), VEIL_ERR_CLIENT_ID);
	ck_assert_int_eq(veil_token_verify_with(tok, tl, "sensor-1", &full.cred, 5100, 60, &with), VEIL_ERR_STALE);
	ck_assert_int_eq(veil_token_verify_with(tok, tl, "sensor-1", &full.cred, 100000, 200000, &with),
	                 VEIL_ERR_EXPIRED);
	tok[tl - 1] ^= 1;
	ck_assert_int_eq(veil_token_verify_with(tok, tl, "sensor-1", &full.cred, 5000, 60, &with),
	                 VEIL_ERR_BAD_SIGNATURE);
	ck_assert_int_eq(veil_token_parse(tok, 20, &ts, nonce, &cp, &cpl), VEIL_ERR_TRUNCATED);
}
END_TEST

START_TEST(test_password_form)
{
	uint8_t cred[VEIL_CREDENTIAL_MAX], tok[VEIL_TOKEN_MAX], back[VEIL_TOKEN_MAX];
	size_t cl = issue("sensor-1", 1000, 100000, cred), tl = 0, bl = 0;
	ck_assert_int_eq(veil_token_create(dev, cred, cl, "sensor-1", 5000, tok, sizeof(tok), &tl), VEIL_OK);
	char pw[VEIL_PASSWORD_MAX];
	ck_assert_int_eq(veil_token_to_password(tok, tl, pw, sizeof(pw)), VEIL_OK);
	ck_assert(strncmp(pw, VEIL_PASSWORD_PREFIX, strlen(VEIL_PASSWORD_PREFIX)) == 0);
	ck_assert_int_eq(veil_password_to_token(pw, back, sizeof(back), &bl), VEIL_OK);
	ck_assert_uint_eq(bl, tl);
	ck_assert_mem_eq(back, tok, tl);
	ck_assert_int_eq(veil_password_to_token("hunter2", back, sizeof(back), &bl), VEIL_ERR_PARSE);
	ck_assert_int_eq(veil_password_to_token("veil1:!!!", back, sizeof(back), &bl), VEIL_ERR_PARSE);
}
END_TEST

START_TEST(test_files)
{
	char dir[256], path[300], pub[300], cpath[300];
	ck_assert_int_eq(test_mkdtemp(dir, sizeof(dir)), 0);
	snprintf(path, sizeof(path), "%s/dev.key", dir);
	snprintf(pub, sizeof(pub), "%s/auth.pub", dir);
	snprintf(cpath, sizeof(cpath), "%s/dev.cred", dir);
	ck_assert_int_eq(veil_identity_save(dev, path), VEIL_OK);
	ck_assert_int_eq(veil_identity_save(dev, path), VEIL_ERR_IO); /* never overwrites */
	struct stat st;
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_uint_eq(st.st_mode & 0777, 0600);
	struct veil_identity *back = NULL;
	char err[256] = "";
	ck_assert_int_eq(veil_identity_load(path, &back, err, sizeof(err)), VEIL_OK);
	uint8_t a[32], b[32];
	veil_identity_public(dev, a);
	veil_identity_public(back, b);
	ck_assert_mem_eq(a, b, 32);
	veil_identity_free(&back);
	chmod(path, 0644);
	ck_assert_int_eq(veil_identity_load(path, &back, err, sizeof(err)), VEIL_ERR_PERM);
	ck_assert_ptr_nonnull(strstr(err, path));
	/* Broken identity file: message names file and line. */
	ck_assert_int_eq(test_write_file(path, "# c\n\nveil-identity-v1 notbase64!\n", 0600), 0);
	ck_assert_int_eq(veil_identity_load(path, &back, err, sizeof(err)), VEIL_ERR_PARSE);
	ck_assert_msg(strstr(err, ":3:") != NULL, "%s", err);
	/* Public keys file with two authorities. */
	ck_assert_int_eq(veil_public_key_save(apk[0], pub), VEIL_OK);
	uint8_t pks[4][32];
	size_t n = 0;
	ck_assert_int_eq(veil_public_keys_load(pub, pks, 4, &n, err, sizeof(err)), VEIL_OK);
	ck_assert_uint_eq(n, 1);
	ck_assert_mem_eq(pks[0], apk[0], 32);
	ck_assert_int_eq(test_write_file(pub, "veil-public-key-v1 AAAA\n", 0644), 0);
	ck_assert_int_eq(veil_public_keys_load(pub, pks, 4, &n, err, sizeof(err)), VEIL_ERR_PARSE);
	ck_assert_msg(strstr(err, ":1:") != NULL, "%s", err);
	/* Credential file. */
	uint8_t cred[VEIL_CREDENTIAL_MAX], c2[VEIL_CREDENTIAL_MAX];
	size_t cl = issue("sensor-9", 1, 10, cred), cl2 = 0;
	ck_assert_int_eq(veil_credential_save(cred, cl, cpath), VEIL_OK);
	ck_assert_int_eq(veil_credential_load(cpath, c2, sizeof(c2), &cl2, err, sizeof(err)), VEIL_OK);
	ck_assert_uint_eq(cl, cl2);
	ck_assert_mem_eq(cred, c2, cl);
	ck_assert_int_eq(veil_credential_load("/nonexistent/x", c2, sizeof(c2), &cl2, err, sizeof(err)), VEIL_ERR_IO);
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
}
END_TEST

/* PROTOCOL.md section 2: one comment rule for the key files (a field that
 * begins with '#' starts a comment; '#' inside a field does not). */
START_TEST(test_file_comments)
{
	char dir[256], path[300], pub[300], cpath[300], text[1024], b64[128];
	ck_assert_int_eq(test_mkdtemp(dir, sizeof(dir)), 0);
	snprintf(path, sizeof(path), "%s/dev.key", dir);
	snprintf(pub, sizeof(pub), "%s/auth.pub", dir);
	snprintf(cpath, sizeof(cpath), "%s/dev.cred", dir);
	/* identity: the seed line with a trailing comment (tab before it) */
	uint8_t seed[32];
	for (int i = 0; i < 32; i++)
		seed[i] = (uint8_t)i;
	sodium_bin2base64(b64, sizeof(b64), seed, 32, sodium_base64_VARIANT_ORIGINAL);
	snprintf(text, sizeof(text), "  # device 7\nveil-identity-v1 %s\t# SECRET #2\n", b64);
	ck_assert_int_eq(test_write_file(path, text, 0600), 0);
	struct veil_identity *id = NULL, *ref = NULL;
	char err[256] = "";
	ck_assert_msg(veil_identity_load(path, &id, err, sizeof(err)) == VEIL_OK, "%s", err);
	ck_assert_int_eq(veil_identity_from_seed(seed, &ref), VEIL_OK);
	uint8_t a[32], b[32];
	veil_identity_public(id, a);
	veil_identity_public(ref, b);
	ck_assert_mem_eq(a, b, 32);
	veil_identity_free(&id);
	veil_identity_free(&ref);
	/* a '#' glued to the value is not a comment: the line is malformed */
	snprintf(text, sizeof(text), "veil-identity-v1 %s#x\n", b64);
	ck_assert_int_eq(test_write_file(path, text, 0600), 0);
	ck_assert_int_eq(veil_identity_load(path, &id, err, sizeof(err)), VEIL_ERR_PARSE);
	/* public keys: two lines, each with a comment */
	sodium_bin2base64(b64, sizeof(b64), apk[0], 32, sodium_base64_VARIANT_ORIGINAL);
	snprintf(text, sizeof(text), "veil-public-key-v1 %s # fleet A\nveil-public-key-v1 %s #\n", b64, b64);
	ck_assert_int_eq(test_write_file(pub, text, 0644), 0);
	uint8_t pks[4][32];
	size_t n = 0;
	ck_assert_msg(veil_public_keys_load(pub, pks, 4, &n, err, sizeof(err)) == VEIL_OK, "%s", err);
	ck_assert_uint_eq(n, 2);
	ck_assert_mem_eq(pks[1], apk[0], 32);
	/* credential */
	uint8_t cred[VEIL_CREDENTIAL_MAX], c2[VEIL_CREDENTIAL_MAX];
	char cb64[sodium_base64_ENCODED_LEN(VEIL_CREDENTIAL_MAX, sodium_base64_VARIANT_ORIGINAL)];
	size_t cl = issue("sensor-9", 1, 10, cred), cl2 = 0;
	sodium_bin2base64(cb64, sizeof(cb64), cred, cl, sodium_base64_VARIANT_ORIGINAL);
	snprintf(text, sizeof(text), "veil-credential-v1 %s   # issued for line 1\n", cb64);
	ck_assert_int_eq(test_write_file(cpath, text, 0644), 0);
	ck_assert_msg(veil_credential_load(cpath, c2, sizeof(c2), &cl2, err, sizeof(err)) == VEIL_OK, "%s", err);
	ck_assert_uint_eq(cl2, cl);
	ck_assert_mem_eq(c2, cred, cl);
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
}
END_TEST

/* PROTOCOL.md section 2: "mode 0600" means no group or other permission bit. */
START_TEST(test_secret_file_modes)
{
	char dir[256], path[300];
	ck_assert_int_eq(test_mkdtemp(dir, sizeof(dir)), 0);
	snprintf(path, sizeof(path), "%s/dev.key", dir);
	ck_assert_int_eq(veil_identity_save(dev, path), VEIL_OK);
	static const struct {
		unsigned mode;
		int rc;
	} modes[] = { { 0600, VEIL_OK },       { 0400, VEIL_OK },       { 0700, VEIL_OK },
		      { 0640, VEIL_ERR_PERM }, { 0604, VEIL_ERR_PERM }, { 0620, VEIL_ERR_PERM },
		      { 0602, VEIL_ERR_PERM }, { 0610, VEIL_ERR_PERM }, { 0601, VEIL_ERR_PERM } };
	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		ck_assert_int_eq(chmod(path, (mode_t)modes[i].mode), 0);
		struct veil_identity *id = NULL;
		char err[256] = "";
		int rc = veil_identity_load(path, &id, err, sizeof(err));
		ck_assert_msg(rc == modes[i].rc, "mode %03o: %d (%s)", modes[i].mode, rc, err);
		ck_assert_str_eq(veil_errname(VEIL_ERR_PERM), "insecure-permissions");
		veil_identity_free(&id);
	}
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
}
END_TEST

START_TEST(test_vectors)
{
	uint8_t seed[32], aseed[32], want[1024], cred[VEIL_CREDENTIAL_MAX], tok[VEIL_TOKEN_MAX];
	ck_assert_int_eq(test_vector("device_seed", seed, 32), 32);
	ck_assert_int_eq(test_vector("authority_seed", aseed, 32), 32);
	struct veil_identity *d = NULL, *a = NULL;
	ck_assert_int_eq(veil_identity_from_seed(seed, &d), VEIL_OK);
	ck_assert_int_eq(veil_identity_from_seed(aseed, &a), VEIL_OK);
	uint8_t pk[32];
	veil_identity_public(d, pk);
	ck_assert_int_eq(test_vector("device_pk", want, sizeof(want)), 32);
	ck_assert_mem_eq(pk, want, 32);
	struct veil_credential c = { 0 };
	for (int i = 0; i < 16; i++)
		c.id[i] = (uint8_t)(0xA0 + i);
	c.issued_at = 1700000000;
	c.expires_at = 4102444800ULL;
	memcpy(c.device_pk, pk, 32);
	strcpy(c.client_id, "sensor-1");
	strcpy(c.roles, "sensor,eu");
	size_t cl = 0, tl = 0;
	ck_assert_int_eq(veil__credential_issue_id(a, &c, cred, sizeof(cred), &cl), VEIL_OK);
	long wl = test_vector("credential", want, sizeof(want));
	ck_assert_int_eq((long)cl, wl);
	ck_assert_mem_eq(cred, want, cl);
	uint8_t nonce[16];
	for (int i = 0; i < 16; i++)
		nonce[i] = (uint8_t)(0xB0 + i);
	ck_assert_int_eq(
		veil__token_create_nonce(d, cred, cl, "sensor-1", NULL, 1700000100, nonce, tok, sizeof(tok), &tl), VEIL_OK);
	wl = test_vector("token", want, sizeof(want));
	ck_assert_int_eq((long)tl, wl);
	ck_assert_mem_eq(tok, want, tl);
	uint8_t apk2[1][32];
	veil_identity_public(a, apk2[0]);
	struct veil_token t;
	ck_assert_int_eq(veil_token_verify(want, tl, "sensor-1", apk2, 1, 1700000100, 60, &t), VEIL_OK);
	/* Version 2: the same inputs bound to the audience "factory-eu". */
	ck_assert_int_eq(veil__token_create_nonce(d, cred, cl, "sensor-1", "factory-eu", 1700000100, nonce, tok,
	                                          sizeof(tok), &tl),
	                 VEIL_OK);
	wl = test_vector("token_v2", want, sizeof(want));
	ck_assert_int_eq((long)tl, wl);
	ck_assert_mem_eq(tok, want, tl);
	ck_assert_int_eq(veil_token_verify_for(want, tl, "sensor-1", "factory-eu", apk2, 1, 1700000100, 60, &t), VEIL_OK);
	veil_identity_free(&d);
	veil_identity_free(&a);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("identity");
	TCase *tc = veil_tcase("core", 2);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_credential_verify);
	tcase_add_test(tc, test_credential_rejects_bad_fields);
	tcase_add_test(tc, test_token);
	tcase_add_test(tc, test_token_audience);
	tcase_add_test(tc, test_token_verify_with_verified_credential);
	tcase_add_test(tc, test_password_form);
	tcase_add_test(tc, test_files);
	tcase_add_test(tc, test_file_comments);
	tcase_add_test(tc, test_secret_file_modes);
	tcase_add_test(tc, test_vectors);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return veil_check_run(suite());
}
