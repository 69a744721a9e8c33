/*
 * plugin/ratelimit.c: exponential back-off per key, the cap, reset on
 * success, decay after a quiet period, independent keys, bounded memory,
 * the failures on record, no key.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>

#include <sodium.h>

#include "veil/error.h"
#include "ratelimit.h"
#include "check_run.h"
#include "timing.h"

START_TEST(test_backoff_doubles_and_caps)
{
	struct vp_ratelimit *rl = NULL;
	ck_assert_int_eq(vp_ratelimit__new(128, 250, 30000, &rl), 0);
	uint64_t t = 1000000;
	ck_assert_uint_eq(vp_ratelimit__blocked_ms(rl, "a:1.2.3.4", t), 0);
	uint64_t want[] = { 250, 500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000 };
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		ck_assert_uint_eq(vp_ratelimit__fail(rl, "a:1.2.3.4", t), want[i]);
		ck_assert_uint_eq(vp_ratelimit__blocked_ms(rl, "a:1.2.3.4", t), want[i]);
		ck_assert_uint_eq(vp_ratelimit__blocked_ms(rl, "a:1.2.3.4", t + want[i] - 1), 1);
		ck_assert_uint_eq(vp_ratelimit__blocked_ms(rl, "a:1.2.3.4", t + want[i]), 0);
	}
	/* Other keys are unaffected. */
	ck_assert_uint_eq(vp_ratelimit__blocked_ms(rl, "a:1.2.3.5", t), 0);
	ck_assert_uint_eq(vp_ratelimit__blocked_ms(rl, "u:1.2.3.4", t), 0);
	vp_ratelimit__free(&rl);
	ck_assert_ptr_null(rl);
}
END_TEST

START_TEST(test_success_resets_and_quiet_decays)
{
	struct vp_ratelimit *rl = NULL;
	ck_assert_int_eq(vp_ratelimit__new(64, 100, 1000, &rl), 0);
	uint64_t t = 5000;
	vp_ratelimit__fail(rl, "u:alice", t);
	vp_ratelimit__fail(rl, "u:alice", t);
	ck_assert_uint_eq(vp_ratelimit__fail(rl, "u:alice", t), 400);
	vp_ratelimit__success(rl, "u:alice");
	ck_assert_uint_eq(vp_ratelimit__blocked_ms(rl, "u:alice", t), 0);
	ck_assert_uint_eq(vp_ratelimit__fail(rl, "u:alice", t), 100);
	/* Still counting shortly after the block ends... */
	ck_assert_uint_eq(vp_ratelimit__fail(rl, "u:alice", t + 200), 200);
	ck_assert_uint_eq(vp_ratelimit__failures(rl, "u:alice", t + 200), 2);
	/* ...but a failure long after (2x max past the block) starts over. */
	ck_assert_uint_eq(vp_ratelimit__failures(rl, "u:alice", t + 200 + 200 + 2001), 0);
	ck_assert_uint_eq(vp_ratelimit__fail(rl, "u:alice", t + 200 + 200 + 2001), 100);
	ck_assert_uint_eq(vp_ratelimit__failures(rl, "u:alice", t + 200 + 200 + 2001), 1);
	vp_ratelimit__success(rl, "u:alice");
	ck_assert_uint_eq(vp_ratelimit__failures(rl, "u:alice", t + 200 + 200 + 2001), 0);
	ck_assert_uint_eq(vp_ratelimit__failures(rl, "u:bob", t), 0);
	vp_ratelimit__free(&rl);
}
END_TEST

START_TEST(test_bounded_memory)
{
	struct vp_ratelimit *rl = NULL;
	ck_assert_int_eq(vp_ratelimit__new(1000, 250, 30000, &rl), 0);
	char key[32];
	for (int i = 0; i < 100000; i++) {
		snprintf(key, sizeof(key), "a:10.0.%d.%d", i / 256, i % 256);
		vp_ratelimit__fail(rl, key, 1000);
	}
	/* Capacity rounds up to 1024 and never grows. */
	ck_assert_uint_le(vp_ratelimit__used(rl), 1024);
	ck_assert_uint_ge(vp_ratelimit__used(rl), 900);
	/* The most recent key is still tracked. */
	ck_assert_uint_gt(vp_ratelimit__blocked_ms(rl, key, 1000), 0);
	vp_ratelimit__free(&rl);
}
END_TEST

/* Full table: the entry that failed least recently goes first. */
START_TEST(test_oldest_failure_evicted)
{
	struct vp_ratelimit *rl = NULL;
	ck_assert_int_eq(vp_ratelimit__new(64, 1000, 1000000, &rl), VEIL_OK);
	char key[32];
	for (int i = 0; i < 64; i++) {
		snprintf(key, sizeof(key), "u:k%d", i);
		vp_ratelimit__fail(rl, key, 1000 + (uint64_t)i);
	}
	ck_assert_uint_eq(vp_ratelimit__used(rl), 64);
	vp_ratelimit__fail(rl, "u:k0", 2000); /* k0 is recent again: k1 is now the oldest */
	vp_ratelimit__fail(rl, "u:new", 2001);
	ck_assert_uint_eq(vp_ratelimit__used(rl), 64);
	ck_assert_uint_eq(vp_ratelimit__blocked_ms(rl, "u:k1", 2001), 0);
	ck_assert_uint_gt(vp_ratelimit__blocked_ms(rl, "u:k0", 2001), 0);
	ck_assert_uint_gt(vp_ratelimit__blocked_ms(rl, "u:k2", 2001), 0);
	ck_assert_uint_gt(vp_ratelimit__blocked_ms(rl, "u:new", 2001), 0);
	/* k0 kept its count: its third failure blocks 4x base. */
	ck_assert_uint_eq(vp_ratelimit__fail(rl, "u:k0", 2002), 4000);
	vp_ratelimit__success(rl, "u:k0");
	ck_assert_uint_eq(vp_ratelimit__used(rl), 63);
	vp_ratelimit__free(&rl);
}
END_TEST

START_TEST(test_bad_parameters)
{
	struct vp_ratelimit *rl = NULL;
	ck_assert_int_ne(vp_ratelimit__new(64, 0, 100, &rl), 0);
	ck_assert_int_ne(vp_ratelimit__new(64, 500, 100, &rl), 0);
	ck_assert_int_ne(vp_ratelimit__new(64, 1, 100, NULL), 0);
	ck_assert_ptr_null(rl);
	ck_assert_uint_eq(vp_ratelimit__blocked_ms(NULL, "x", 1), 0);
	/* No key (a load balancer's address, auth.c): nothing counted or blocked. */
	ck_assert_int_eq(vp_ratelimit__new(64, 1, 100, &rl), 0);
	ck_assert_uint_eq(vp_ratelimit__fail(rl, NULL, 1), 0);
	ck_assert_uint_eq(vp_ratelimit__blocked_ms(rl, NULL, 1), 0);
	ck_assert_uint_eq(vp_ratelimit__failures(rl, NULL, 1), 0);
	ck_assert_uint_eq(vp_ratelimit__used(rl), 0);
	vp_ratelimit__free(&rl);
	vp_ratelimit__free(NULL);
	ck_assert_uint_gt(vp_ratelimit__now_ms(), 0);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("ratelimit");
	TCase *t = veil_tcase("core", 2);
	tcase_add_test(t, test_backoff_doubles_and_caps);
	tcase_add_test(t, test_success_resets_and_quiet_decays);
	tcase_add_test(t, test_bounded_memory);
	tcase_add_test(t, test_oldest_failure_evicted);
	tcase_add_test(t, test_bad_parameters);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	return veil_check_run(suite());
}
