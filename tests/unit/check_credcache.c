/*
 * core/credcache.c, the one verified-credential cache (the plugin's logins,
 * receivers' signed messages): the cached path must give exactly the answers
 * of veil_token_verify (valid, tampered, foreign, stale, expired, wrong id,
 * malformed); a cleared cache or a dropped authority never answers from an
 * old verdict; the cache stays within its capacity, oldest entry out first.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "veil/veil.h"
#include "../../core/credcache.h"
#include "check_run.h"
#include "timing.h"

static struct veil_identity *auth_id, *other_id, *dev_id;
static uint8_t auths[1][VEIL_PK_BYTES], others[1][VEIL_PK_BYTES];
static const uint64_t T0 = 1800000000ULL;

static void setup(void)
{
	ck_assert_int_eq(veil_init(), VEIL_OK);
	ck_assert_int_eq(veil_identity_generate(&auth_id), VEIL_OK);
	ck_assert_int_eq(veil_identity_generate(&other_id), VEIL_OK);
	ck_assert_int_eq(veil_identity_generate(&dev_id), VEIL_OK);
	veil_identity_public(auth_id, auths[0]);
	veil_identity_public(other_id, others[0]);
}

static void teardown(void)
{
	veil_identity_free(&auth_id);
	veil_identity_free(&other_id);
	veil_identity_free(&dev_id);
}

static size_t cred_for(const char *cid, uint64_t expires, uint8_t *out)
{
	struct veil_credential c;
	memset(&c, 0, sizeof(c));
	veil_identity_public(dev_id, c.device_pk);
	snprintf(c.client_id, sizeof(c.client_id), "%s", cid);
	snprintf(c.roles, sizeof(c.roles), "r1,r2");
	c.issued_at = T0 - 100;
	c.expires_at = expires;
	size_t n = 0;
	ck_assert_int_eq(veil_credential_issue(auth_id, &c, out, VEIL_CREDENTIAL_MAX, &n), VEIL_OK);
	return n;
}

static size_t token(const uint8_t *cred, size_t cl, const char *cid, uint64_t t, uint8_t *out)
{
	size_t n = 0;
	ck_assert_int_eq(veil_token_create(dev_id, cred, cl, cid, t, out, VEIL_TOKEN_MAX, &n), VEIL_OK);
	return n;
}

/* Both paths on the same input: same code; on success same fields. */
static int both(struct veil__credcache *c, const uint8_t *tok, size_t n, const char *cid, uint64_t now,
                const uint8_t (*a)[VEIL_PK_BYTES], bool *cached)
{
	struct veil_token t1, t2;
	int core = veil_token_verify(tok, n, cid, a, 1, now, 60, &t1);
	int mine = veil__token_verify_cached(c, tok, n, cid, NULL, a, 1, now, 60, &t2, cached);
	ck_assert_msg(core == mine, "core %d, cached path %d", core, mine);
	if (core == VEIL_OK) {
		ck_assert_mem_eq(t1.nonce, t2.nonce, VEIL_TOKEN_NONCE_BYTES);
		ck_assert(t1.timestamp == t2.timestamp);
		ck_assert_mem_eq(t1.cred.id, t2.cred.id, VEIL_CREDENTIAL_ID_BYTES);
		ck_assert_mem_eq(t1.cred.device_pk, t2.cred.device_pk, VEIL_PK_BYTES);
		ck_assert_str_eq(t1.cred.client_id, t2.cred.client_id);
		ck_assert_str_eq(t1.cred.roles, t2.cred.roles);
		ck_assert(t1.cred.expires_at == t2.cred.expires_at);
	}
	return mine;
}

START_TEST(test_hit_and_equivalence)
{
	struct veil__credcache *c = NULL;
	ck_assert_int_eq(veil__credcache_new(64, &c), 0);
	uint8_t cred[VEIL_CREDENTIAL_MAX], tok[VEIL_TOKEN_MAX];
	size_t cl = cred_for("dev-a", T0 + 3600, cred);
	bool cached = true;
	size_t n = token(cred, cl, "dev-a", T0, tok);
	ck_assert_int_eq(both(c, tok, n, "dev-a", T0, auths, &cached), VEIL_OK);
	ck_assert(!cached);
	n = token(cred, cl, "dev-a", T0 + 1, tok);
	ck_assert_int_eq(both(c, tok, n, "dev-a", T0 + 1, auths, &cached), VEIL_OK);
	ck_assert(cached);
	/* Every byte of a cached-credential token matters. */
	for (size_t i = 0; i < n; i++) {
		uint8_t t2[VEIL_TOKEN_MAX];
		memcpy(t2, tok, n);
		t2[i] ^= 0x20;
		ck_assert_int_ne(both(c, t2, n, "dev-a", T0 + 1, auths, NULL), VEIL_OK);
	}
	/* Another client id, stale and future tokens, truncated and oversized. */
	ck_assert_int_eq(both(c, tok, n, "dev-b", T0 + 1, auths, NULL), VEIL_ERR_CLIENT_ID);
	ck_assert_int_eq(both(c, tok, n, "dev-a", T0 + 200, auths, NULL), VEIL_ERR_STALE);
	ck_assert_int_eq(both(c, tok, n, "dev-a", T0 - 200, auths, NULL), VEIL_ERR_STALE);
	ck_assert_int_eq(both(c, tok, 20, "dev-a", T0 + 1, auths, NULL), VEIL_ERR_TRUNCATED);
	ck_assert_int_eq(both(c, tok, n - 1, "dev-a", T0 + 1, auths, NULL), VEIL_ERR_TRUNCATED);
	uint8_t big[VEIL_TOKEN_MAX + 8];
	memset(big, 1, sizeof(big));
	ck_assert_int_eq(both(c, big, sizeof(big), "dev-a", T0 + 1, auths, NULL), VEIL_ERR_TOO_LARGE);
	uint8_t v2[VEIL_TOKEN_MAX];
	memcpy(v2, tok, n);
	v2[0] = 3;
	ck_assert_int_eq(both(c, v2, n, "dev-a", T0 + 1, auths, NULL), VEIL_ERR_VERSION);
	/* Version 1 bytes read as version 2: no audience where one must be. */
	v2[0] = 2;
	ck_assert_int_eq(both(c, v2, n, "dev-a", T0 + 1, auths, NULL), VEIL_ERR_PARSE);
	veil__credcache_free(&c);
	ck_assert_ptr_null(c);
}
END_TEST

START_TEST(test_expiry_rechecked_on_hit)
{
	struct veil__credcache *c = NULL;
	ck_assert_int_eq(veil__credcache_new(16, &c), 0);
	uint8_t cred[VEIL_CREDENTIAL_MAX], tok[VEIL_TOKEN_MAX];
	size_t cl = cred_for("dev-e", T0 + 30, cred);
	size_t n = token(cred, cl, "dev-e", T0, tok);
	bool cached = false;
	ck_assert_int_eq(both(c, tok, n, "dev-e", T0, auths, &cached), VEIL_OK);
	n = token(cred, cl, "dev-e", T0 + 30, tok);
	ck_assert_int_eq(both(c, tok, n, "dev-e", T0 + 30, auths, &cached), VEIL_ERR_EXPIRED);
	ck_assert(cached);
	n = token(cred, cl, "dev-e", T0 - 101, tok);
	ck_assert_int_eq(both(c, tok, n, "dev-e", T0 - 101, auths, &cached), VEIL_ERR_NOT_YET_VALID);
	veil__credcache_free(&c);
}
END_TEST

/* A cache holding cid's credential, verified once under auths; its token in tok. */
static struct veil__credcache *warm(const char *cid, uint8_t *cred, size_t *cl, uint8_t *tok, size_t *n)
{
	struct veil__credcache *c = NULL;
	ck_assert_int_eq(veil__credcache_new(16, &c), 0);
	*cl = cred_for(cid, T0 + 3600, cred);
	*n = token(cred, *cl, cid, T0, tok);
	ck_assert_int_eq(both(c, tok, *n, cid, T0, auths, NULL), VEIL_OK);
	return c;
}

START_TEST(test_clear_on_authority_change)
{
	uint8_t cred[VEIL_CREDENTIAL_MAX], tok[VEIL_TOKEN_MAX];
	size_t cl, n;
	struct veil__credcache *c = warm("dev-c", cred, &cl, tok, &n);
	veil__credcache_clear(c);
	bool cached = true;
	ck_assert_int_eq(both(c, tok, n, "dev-c", T0, others, &cached), VEIL_ERR_WRONG_AUTHORITY);
	ck_assert(!cached);
	/* A failed verification is never cached. */
	ck_assert_int_eq(both(c, tok, n, "dev-c", T0, others, &cached), VEIL_ERR_WRONG_AUTHORITY);
	ck_assert(!cached);
	veil__credcache_free(&c);
}
END_TEST

/* Without clear: a verdict under an authority no longer trusted is not used. */
START_TEST(test_dropped_authority)
{
	uint8_t cred[VEIL_CREDENTIAL_MAX], tok[VEIL_TOKEN_MAX];
	size_t cl, n;
	struct veil__credcache *c = warm("dev-d", cred, &cl, tok, &n);
	bool cached = true;
	ck_assert_int_eq(both(c, tok, n, "dev-d", T0, others, &cached), VEIL_ERR_WRONG_AUTHORITY);
	ck_assert(!cached);
	/* Trusted among others again: the entry answers. */
	uint8_t both_keys[2][VEIL_PK_BYTES];
	memcpy(both_keys[0], others[0], VEIL_PK_BYTES);
	memcpy(both_keys[1], auths[0], VEIL_PK_BYTES);
	struct veil_credential out;
	ck_assert_int_eq(veil__credential_verify_cached(c, cred, cl, (const uint8_t(*)[VEIL_PK_BYTES])both_keys, 2, T0,
	                                                &out, &cached),
	                 VEIL_OK);
	ck_assert(cached);
	ck_assert_str_eq(out.client_id, "dev-d");
	/* No cache at all: plain verification. */
	ck_assert_int_eq(veil__credential_verify_cached(NULL, cred, cl, auths, 1, T0, &out, &cached), VEIL_OK);
	ck_assert(!cached);
	veil__credcache_free(&c);
}
END_TEST

START_TEST(test_bounded_oldest_out)
{
	struct veil__credcache *c = NULL;
	ck_assert_int_eq(veil__credcache_new(0, &c), VEIL_ERR_INVAL);
	ck_assert_int_eq(veil__credcache_new(VEIL__CREDCACHE_MAX + 1, &c), VEIL_ERR_INVAL);
	ck_assert_int_eq(veil__credcache_new(3, &c), 0);
	uint8_t creds[5][VEIL_CREDENTIAL_MAX];
	size_t lens[5];
	char cid[16];
	bool cached = true;
	for (int i = 0; i < 5; i++) {
		snprintf(cid, sizeof(cid), "dev-%d", i);
		lens[i] = cred_for(cid, T0 + 3600, creds[i]);
		ck_assert_int_eq(veil__credential_verify_cached(c, creds[i], lens[i], auths, 1, T0, NULL, &cached), VEIL_OK);
		ck_assert(!cached);
		ck_assert_uint_eq(veil__credcache_count(c), i < 3 ? (size_t)i + 1 : 3U);
	}
	/* 0 and 1 went first; 2, 3 and 4 answer from the cache. */
	for (int i = 4; i >= 0; i--) {
		ck_assert_int_eq(veil__credential_verify_cached(c, creds[i], lens[i], auths, 1, T0, NULL, &cached), VEIL_OK);
		ck_assert_msg(cached == (i >= 2), "entry %d: cached %d", i, cached);
	}
	ck_assert_uint_eq(veil__credcache_count(c), 3);
	veil__credcache_clear(c);
	ck_assert_uint_eq(veil__credcache_count(c), 0);
	veil__credcache_free(&c);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("credcache");
	TCase *t = veil_tcase("core", 2);
	tcase_add_checked_fixture(t, setup, teardown);
	tcase_add_test(t, test_hit_and_equivalence);
	tcase_add_test(t, test_expiry_rechecked_on_hit);
	tcase_add_test(t, test_clear_on_authority_change);
	tcase_add_test(t, test_dropped_authority);
	tcase_add_test(t, test_bounded_oldest_out);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	return veil_check_run(suite());
}
