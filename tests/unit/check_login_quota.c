/*
 * Tests for plugin/login_quota.c: each credential's share of the token
 * replay cache (logins counted over two periods, idle credentials
 * forgotten, a full table refuses new credentials rather than forget one).
 */
#include <check.h>
#include <string.h>

#include "veil/veil.h"
#include "login_quota.h"
#include "check_run.h"
#include "timing.h"

static void id_of(uint8_t id[VEIL_CREDENTIAL_ID_BYTES], int n)
{
	memset(id, 0, VEIL_CREDENTIAL_ID_BYTES);
	id[0] = (uint8_t)n;
}

START_TEST(share_over_two_periods)
{
	struct vp_login_quota *q = NULL;
	ck_assert_int_eq(vp_login_quota__new(3, 10, 100, &q), VEIL_OK);
	uint8_t a[VEIL_CREDENTIAL_ID_BYTES], b[VEIL_CREDENTIAL_ID_BYTES];
	id_of(a, 1);
	id_of(b, 2);
	for (int i = 0; i < 3; i++) {
		ck_assert(vp_login_quota__room(q, a, 100));
		ck_assert(vp_login_quota__count(q, a, 100 + (uint64_t)i));
	}
	ck_assert(!vp_login_quota__room(q, a, 109));  /* same period */
	ck_assert(vp_login_quota__room(q, b, 109));   /* another credential */
	ck_assert(!vp_login_quota__room(q, a, 115));  /* the period before still counts */
	ck_assert(vp_login_quota__room(q, a, 120));   /* two periods later: free */
	ck_assert(vp_login_quota__count(q, a, 120));
	ck_assert_uint_eq(vp_login_quota__tracked(q), 1);
	ck_assert_uint_eq(vp_login_quota__quota(q), 3);
	/* Idle for two periods: forgotten. */
	vp_login_quota__prune(q, 139);
	ck_assert_uint_eq(vp_login_quota__tracked(q), 1);
	vp_login_quota__prune(q, 140);
	ck_assert_uint_eq(vp_login_quota__tracked(q), 0);
	vp_login_quota__free(&q);
	ck_assert_ptr_null(q);
	vp_login_quota__free(&q);
}
END_TEST

START_TEST(full_table_refuses_new)
{
	struct vp_login_quota *q = NULL;
	ck_assert_int_eq(vp_login_quota__new(5, 10, 2, &q), VEIL_OK);
	uint8_t id[VEIL_CREDENTIAL_ID_BYTES];
	id_of(id, 1);
	ck_assert(vp_login_quota__count(q, id, 100));
	id_of(id, 2);
	ck_assert(vp_login_quota__count(q, id, 100));
	id_of(id, 3);
	ck_assert(!vp_login_quota__count(q, id, 105)); /* the two are live: not forgotten */
	ck_assert(vp_login_quota__count(q, id, 120));  /* once they are idle, room */
	ck_assert_uint_eq(vp_login_quota__tracked(q), 1);
	vp_login_quota__free(&q);
	ck_assert_int_eq(vp_login_quota__new(0, 10, 2, &q), VEIL_ERR_INVAL);
	ck_assert_int_eq(vp_login_quota__new(1, 0, 2, &q), VEIL_ERR_INVAL);
	ck_assert(!vp_login_quota__room(NULL, id, 1));
	ck_assert(!vp_login_quota__count(NULL, id, 1));
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("login_quota");
	TCase *tc = veil_tcase("login_quota", 2);
	tcase_add_test(tc, share_over_two_periods);
	tcase_add_test(tc, full_table_refuses_new);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return veil_check_run(suite());
}
