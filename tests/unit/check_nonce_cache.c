/*
 * plugin/nonce_cache.c: a nonce is refused while live, forgotten once its
 * token can no longer be fresh, and a full cache refuses (fail closed)
 * instead of forgetting live nonces.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "nonce_cache.h"
#include "check_run.h"
#include "timing.h"

START_TEST(test_replay_until_expiry)
{
	struct vp_nonce_cache *nc = NULL;
	ck_assert_int_eq(vp_nonce_cache__new(1024, &nc), 0);
	uint8_t a[VEIL_TOKEN_NONCE_BYTES], b[VEIL_TOKEN_NONCE_BYTES];
	randombytes_buf(a, sizeof(a));
	memcpy(b, a, sizeof(b));
	b[15] ^= 1;
	ck_assert_int_eq(vp_nonce_cache__add(nc, a, 1061, 1000), VP_NONCE_FRESH);
	ck_assert_int_eq(vp_nonce_cache__add(nc, a, 1061, 1000), VP_NONCE_REPLAY);
	ck_assert_int_eq(vp_nonce_cache__add(nc, a, 1061, 1061), VP_NONCE_REPLAY);
	ck_assert_int_eq(vp_nonce_cache__add(nc, b, 1061, 1000), VP_NONCE_FRESH);
	ck_assert_uint_eq(vp_nonce_cache__live(nc, 1000), 2);
	/* After expiry the slot is free again (the token would be stale anyway). */
	ck_assert_uint_eq(vp_nonce_cache__live(nc, 1062), 0);
	ck_assert_int_eq(vp_nonce_cache__add(nc, a, 1200, 1062), VP_NONCE_FRESH);
	vp_nonce_cache__free(&nc);
	ck_assert_ptr_null(nc);
}
END_TEST

START_TEST(test_full_fails_closed)
{
	struct vp_nonce_cache *nc = NULL;
	ck_assert_int_eq(vp_nonce_cache__new(256, &nc), 0);
	uint8_t n[VEIL_TOKEN_NONCE_BYTES];
	size_t fresh = 0, full = 0;
	uint8_t first[VEIL_TOKEN_NONCE_BYTES];
	for (int i = 0; i < 2000; i++) {
		randombytes_buf(n, sizeof(n));
		if (i == 0)
			memcpy(first, n, sizeof(n));
		enum vp_nonce_result r = vp_nonce_cache__add(nc, n, 5000, 1000);
		ck_assert_int_ne(r, VP_NONCE_REPLAY);
		fresh += r == VP_NONCE_FRESH;
		full += r == VP_NONCE_FULL;
	}
	ck_assert_uint_le(fresh, 256);
	ck_assert_uint_ge(fresh, 200);
	ck_assert_uint_eq(fresh + full, 2000);
	/* Nothing live was forgotten. */
	ck_assert_int_eq(vp_nonce_cache__add(nc, first, 5000, 1000), VP_NONCE_REPLAY);
	/* Once expired, room again. */
	randombytes_buf(n, sizeof(n));
	ck_assert_int_eq(vp_nonce_cache__add(nc, n, 9000, 5001), VP_NONCE_FRESH);
	vp_nonce_cache__free(&nc);
}
END_TEST

START_TEST(test_bad_parameters)
{
	struct vp_nonce_cache *nc = NULL;
	ck_assert_int_ne(vp_nonce_cache__new(16, NULL), 0);
	ck_assert_int_ne(vp_nonce_cache__new((size_t)1 << 30, &nc), 0);
	uint8_t n[VEIL_TOKEN_NONCE_BYTES] = { 0 };
	ck_assert_int_eq(vp_nonce_cache__add(NULL, n, 1, 1), VP_NONCE_FULL);
	vp_nonce_cache__free(NULL);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("nonce_cache");
	TCase *t = veil_tcase("core", 2);
	tcase_add_test(t, test_replay_until_expiry);
	tcase_add_test(t, test_full_fails_closed);
	tcase_add_test(t, test_bad_parameters);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	return veil_check_run(suite());
}
