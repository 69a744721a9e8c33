/* Tests for core/replay.c: sliding window, eviction, persistence, and the
 * sender's sequence state across restarts and lost state. */
#include <check.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "veil/veil.h"
#include "internal.h"
#include "broker.h"
#include "check_run.h"
#include "timing.h"

static const uint8_t A[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
static const uint8_t B[8] = { 8, 7, 6, 5, 4, 3, 2, 1 };

START_TEST(test_window)
{
	struct veil_replay *r = NULL;
	ck_assert_int_eq(veil_replay_new(16, &r), VEIL_OK);
	ck_assert_int_eq(veil_replay_accept(r, 7, A, 100), VEIL_OK);
	ck_assert_int_eq(veil_replay_accept(r, 7, A, 100), VEIL_ERR_REPLAY);
	ck_assert_int_eq(veil_replay_check(r, 7, A, 100), VEIL_ERR_REPLAY);
	/* Reordered within the window: accepted once. */
	ck_assert_int_eq(veil_replay_accept(r, 7, A, 105), VEIL_OK);
	ck_assert_int_eq(veil_replay_accept(r, 7, A, 103), VEIL_OK);
	ck_assert_int_eq(veil_replay_accept(r, 7, A, 103), VEIL_ERR_REPLAY);
	ck_assert_int_eq(veil_replay_accept(r, 7, A, 101), VEIL_OK);
	/* Another sender is independent. */
	ck_assert_int_eq(veil_replay_accept(r, 7, B, 100), VEIL_OK);
	/* Jump far ahead: old ones fall out of the window and count as replays. */
	ck_assert_int_eq(veil_replay_accept(r, 7, A, 105 + VEIL_REPLAY_WINDOW + 10), VEIL_OK);
	ck_assert_int_eq(veil_replay_accept(r, 7, A, 104), VEIL_ERR_REPLAY);
	ck_assert_int_eq(veil_replay_accept(r, 7, A, 105 + 20), VEIL_OK);
	ck_assert_int_eq(veil_replay_accept(r, 7, A, 105 + 20), VEIL_ERR_REPLAY);
	/* Shifts by non-multiples of 64 keep earlier bits. */
	ck_assert_int_eq(veil_replay_accept(r, 7, B, 100 + 70), VEIL_OK);
	ck_assert_int_eq(veil_replay_accept(r, 7, B, 100), VEIL_ERR_REPLAY);
	ck_assert_int_eq(veil_replay_accept(r, 7, B, 101), VEIL_OK);
	ck_assert_int_eq(veil_replay_accept(r, 7, B, 100 + 69), VEIL_OK);
	ck_assert_int_eq(veil_replay_accept(r, 7, B, 100 + 69), VEIL_ERR_REPLAY);
	veil_replay_free(&r);
	ck_assert_ptr_null(r);
}
END_TEST

/* PROTOCOL.md section 7: replay iff s <= top and (top - s >= 1024 or s seen);
 * the difference is never taken for s > top, so a small top (< 1024) does not
 * underflow into "everything is too old": every unseen s in 0..top passes. */
START_TEST(test_window_small_top)
{
	ck_assert_uint_eq(VEIL_REPLAY_WINDOW, 1024);
	struct veil_replay *r = NULL;
	ck_assert_int_eq(veil_replay_new(16, &r), VEIL_OK);
	ck_assert_int_eq(veil_replay_accept(r, 1, A, 5), VEIL_OK);
	ck_assert_int_eq(veil_replay_accept(r, 1, A, 0), VEIL_OK); /* below top, top < 1024 */
	ck_assert_int_eq(veil_replay_accept(r, 1, A, 0), VEIL_ERR_REPLAY);
	ck_assert_int_eq(veil_replay_accept(r, 1, A, 4), VEIL_OK);
	ck_assert_int_eq(veil_replay_accept(r, 1, A, 5), VEIL_ERR_REPLAY);
	/* top = 1023: sequence 0 is still inside the window ... */
	ck_assert_int_eq(veil_replay_accept(r, 1, A, 1023), VEIL_OK);
	ck_assert_int_eq(veil_replay_accept(r, 1, A, 1), VEIL_OK);
	ck_assert_int_eq(veil_replay_check(r, 1, A, 2), VEIL_OK);
	/* ... top = 1024: top - s >= 1024 only for s = 0 */
	ck_assert_int_eq(veil_replay_accept(r, 1, A, 1024), VEIL_OK);
	ck_assert_int_eq(veil_replay_check(r, 1, A, 0), VEIL_ERR_REPLAY);
	ck_assert_int_eq(veil_replay_accept(r, 1, A, 2), VEIL_OK);
	/* A first message with sequence 0 opens a window at top = 0. */
	ck_assert_int_eq(veil_replay_accept(r, 1, B, 0), VEIL_OK);
	ck_assert_int_eq(veil_replay_accept(r, 1, B, 0), VEIL_ERR_REPLAY);
	ck_assert_int_eq(veil_replay_accept(r, 1, B, 1), VEIL_OK);
	veil_replay_free(&r);
}
END_TEST

/* No window is ever evicted: a full key refuses a new sender instead, and
 * only that key (issue "Close the holes...", 3). */
START_TEST(test_full_partition_refuses_never_evicts)
{
	struct veil_replay *r = NULL;
	ck_assert_int_eq(veil_replay_new(4, &r), VEIL_OK);
	uint8_t s[8] = { 0 };
	for (uint8_t i = 0; i < 4; i++) {
		s[0] = i;
		ck_assert_int_eq(veil_replay_accept(r, 7, s, 10), VEIL_OK);
	}
	ck_assert_uint_eq(veil_replay_count(r, 7), 4);
	for (uint8_t i = 4; i < 50; i++) {
		s[0] = i;
		ck_assert_int_eq(veil_replay_check(r, 7, s, 10), VEIL_ERR_REPLAY_FULL);
		ck_assert_int_eq(veil_replay_accept(r, 7, s, 10), VEIL_ERR_REPLAY_FULL);
	}
	/* Every first sender is still remembered: its old message stays a replay. */
	for (uint8_t i = 0; i < 4; i++) {
		s[0] = i;
		ck_assert_int_eq(veil_replay_accept(r, 7, s, 10), VEIL_ERR_REPLAY);
		ck_assert_int_eq(veil_replay_accept(r, 7, s, 11), VEIL_OK);
	}
	/* Another key has its own room. */
	s[0] = 99;
	ck_assert_int_eq(veil_replay_accept(r, 8, s, 10), VEIL_OK);
	ck_assert_uint_eq(veil_replay_count(r, 8), 1);
	ck_assert_uint_eq(veil_replay_count(r, 7), 4);
	veil_replay_free(&r);
}
END_TEST

/* A sender whose sequence started an hour earlier is not locked out by
 * anything another sender did (no floor derived from anything). */
START_TEST(test_no_floor)
{
	struct veil_replay *r = NULL;
	ck_assert_int_eq(veil_replay_new(8, &r), VEIL_OK);
	uint64_t now_us = 1800000000ULL * 1000000ULL;
	uint8_t forged[8] = { 0xee };
	ck_assert_int_eq(veil_replay_accept(r, 7, forged, UINT64_MAX - 1), VEIL_OK);
	uint64_t old = now_us - 3600ULL * 1000000ULL;
	ck_assert_int_eq(veil_replay_accept(r, 7, A, old), VEIL_OK);
	ck_assert_int_eq(veil_replay_accept(r, 7, A, old + 1), VEIL_OK);
	ck_assert_int_eq(veil_replay_accept(r, 7, A, old), VEIL_ERR_REPLAY);
	veil_replay_free(&r);
}
END_TEST

START_TEST(test_persistence)
{
	char dir[256], path[300];
	ck_assert_int_eq(test_mkdtemp(dir, sizeof(dir)), 0);
	snprintf(path, sizeof(path), "%s/replay", dir);
	struct veil_replay *r = NULL, *r2 = NULL;
	ck_assert_int_eq(veil_replay_new(16, &r), VEIL_OK);
	ck_assert_int_eq(veil_replay_accept(r, 7, A, 500), VEIL_OK);
	ck_assert_int_eq(veil_replay_accept(r, 7, A, 498), VEIL_OK);
	ck_assert_int_eq(veil_replay_save(r, path), VEIL_OK);
	ck_assert_int_eq(veil_replay_new(16, &r2), VEIL_OK);
	ck_assert_int_eq(veil_replay_load(r2, path), VEIL_OK);
	ck_assert_int_eq(veil_replay_accept(r2, 7, A, 500), VEIL_ERR_REPLAY);
	ck_assert_int_eq(veil_replay_accept(r2, 7, A, 498), VEIL_ERR_REPLAY);
	ck_assert_int_eq(veil_replay_accept(r2, 7, A, 499), VEIL_OK);
	/* Corrupt files: refused, not half-loaded. */
	ck_assert_int_eq(test_write_file(path, "VEILRPL1\x00\x00\x00\x05", 0600), 0);
	ck_assert_int_eq(veil_replay_load(r2, path), VEIL_ERR_STATE);
	ck_assert_int_eq(test_write_file(path, "VEILRPL2\x00\x00\x00\x05", 0600), 0);
	ck_assert_int_eq(veil_replay_load(r2, path), VEIL_ERR_STATE);
	veil_replay_free(&r);
	veil_replay_free(&r2);
	remove(path);
	remove(dir);
}
END_TEST

/* A state file of the previous format (one table keyed by
 * BLAKE2b-128("veil-replay-window-v1" || sender || u32 key id)[0..7]) still
 * refuses what it had seen: the upgrade reopens no replay. */
START_TEST(test_previous_format_upgrade)
{
	char dir[256], path[300];
	ck_assert_int_eq(test_mkdtemp(dir, sizeof(dir)), 0);
	snprintf(path, sizeof(path), "%s/replay", dir);
	static const char domain[] = "veil-replay-window-v1";
	uint8_t in[sizeof(domain) - 1 + 8 + 4], h[16];
	memcpy(in, domain, sizeof(domain) - 1);
	memcpy(in + sizeof(domain) - 1, A, 8);
	in[sizeof(domain) - 1 + 8] = 0, in[sizeof(domain) + 8] = 0, in[sizeof(domain) + 9] = 0;
	in[sizeof(domain) + 10] = 7;
	crypto_generichash(h, sizeof(h), in, sizeof(in), NULL, 0);
	uint8_t file[12 + 8 + 8 + 128];
	memset(file, 0, sizeof(file));
	memcpy(file, "VEILRPL1", 8);
	file[11] = 1;
	memcpy(file + 12, h, 8);
	file[12 + 8 + 7] = 200; /* top = 200 */
	file[12 + 16 + 7] = 0x05; /* 200 and 198 seen */
	FILE *f = fopen(path, "wb");
	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(file, 1, sizeof(file), f), sizeof(file));
	fclose(f);
	struct veil_replay *r = NULL;
	ck_assert_int_eq(veil_replay_new(16, &r), VEIL_OK);
	ck_assert_int_eq(veil_replay_load(r, path), VEIL_OK);
	ck_assert_int_eq(veil_replay_check(r, 7, A, 200), VEIL_ERR_REPLAY);
	ck_assert_int_eq(veil_replay_accept(r, 7, A, 198), VEIL_ERR_REPLAY);
	ck_assert_int_eq(veil_replay_accept(r, 7, A, 199), VEIL_OK);
	ck_assert_int_eq(veil_replay_accept(r, 7, A, 200), VEIL_ERR_REPLAY);
	ck_assert_int_eq(veil_replay_accept(r, 8, A, 200), VEIL_OK); /* another key: its own window */
	/* Saved again, in the new format, still refusing. */
	ck_assert_int_eq(veil_replay_save(r, path), VEIL_OK);
	struct veil_replay *r2 = NULL;
	ck_assert_int_eq(veil_replay_new(16, &r2), VEIL_OK);
	ck_assert_int_eq(veil_replay_load(r2, path), VEIL_OK);
	ck_assert_int_eq(veil_replay_accept(r2, 7, A, 199), VEIL_ERR_REPLAY);
	ck_assert_int_eq(veil_replay_accept(r2, 8, A, 200), VEIL_ERR_REPLAY);
	veil_replay_free(&r);
	veil_replay_free(&r2);
	remove(path);
	remove(dir);
}
END_TEST

START_TEST(test_sequence_restart_and_lost_state)
{
	char dir[256], path[300];
	ck_assert_int_eq(test_mkdtemp(dir, sizeof(dir)), 0);
	snprintf(path, sizeof(path), "%s/seq", dir);
	uint64_t now = 1000000;
	struct veil_seq *s = NULL;
	ck_assert_int_eq(veil_seq_open(path, now, &s), VEIL_OK);
	uint64_t last = 0, v = 0;
	for (unsigned i = 0; i < VEIL_SEQ_BLOCK * 2 + 5; i++) {
		ck_assert_int_eq(veil_seq_next(s, &v), VEIL_OK);
		ck_assert(i == 0 || v == last + 1);
		last = v;
	}
	veil_seq_close(&s);
	/* Restart with the clock going BACKWARDS: the persisted mark wins. */
	ck_assert_int_eq(veil_seq_open(path, 5, &s), VEIL_OK);
	ck_assert_int_eq(veil_seq_next(s, &v), VEIL_OK);
	ck_assert_uint_gt(v, last);
	veil_seq_close(&s);
	/* Crash without close: the reserved block is never reused either. */
	ck_assert_int_eq(veil_seq_open(path, 5, &s), VEIL_OK);
	uint64_t before_crash = 0;
	ck_assert_int_eq(veil_seq_next(s, &before_crash), VEIL_OK);
	veil_seq_close(&s);
	ck_assert_int_eq(veil_seq_open(path, 5, &s), VEIL_OK);
	ck_assert_int_eq(veil_seq_next(s, &v), VEIL_OK);
	ck_assert_uint_gt(v, before_crash);
	veil_seq_close(&s);
	/* Lost state: the clock floor keeps new sequences above old ones. */
	remove(path);
	ck_assert_int_eq(veil_seq_open(path, now + 10 * 1000000ULL, &s), VEIL_OK);
	ck_assert_int_eq(veil_seq_next(s, &v), VEIL_OK);
	ck_assert_uint_gt(v, last);
	veil_seq_close(&s);
	/* Corrupt state file: loud error. */
	ck_assert_int_eq(test_write_file(path, "garbage\n", 0600), 0);
	ck_assert_int_eq(veil_seq_open(path, now, &s), VEIL_ERR_STATE);
	ck_assert_ptr_null(s);
	remove(path);
	remove(dir);
}
END_TEST

/* The persisted mark, read back from the file. */
static uint64_t seq_mark(const char *path)
{
	char text[64] = "";
	FILE *f = fopen(path, "r");
	ck_assert_ptr_nonnull(f);
	ck_assert_ptr_nonnull(fgets(text, sizeof(text), f));
	fclose(f);
	ck_assert(strncmp(text, "veil-seq-v1 ", 12) == 0);
	return strtoull(text + 12, NULL, 10);
}

struct ahead_race {
	struct veil_seq *s;
	volatile int stop;
};

/* The session's writer, unthrottled: writes ahead whenever asked. */
static void *ahead_writer(void *arg)
{
	struct ahead_race *r = arg;
	while (!r->stop) {
		if (veil__seq_ahead_due(r->s))
			ck_assert_int_eq(veil__seq_write_ahead(r->s), VEIL_OK);
		else
			sched_yield();
	}
	return NULL;
}

/* Write-ahead (the session's state writer): asked for once, when less than
 * half a block is left; the file's mark is above every number handed out,
 * whether the write-ahead runs, never runs (veil_seq_next then writes the
 * mark itself) or races veil_seq_next from another thread; never lower
 * after a race; and a restart continues above everything used. */
START_TEST(test_sequence_write_ahead)
{
	char dir[256], path[300];
	ck_assert_int_eq(test_mkdtemp(dir, sizeof(dir)), 0);
	snprintf(path, sizeof(path), "%s/seq", dir);
	struct veil_seq *s = NULL;
	ck_assert_int_eq(veil_seq_open(path, 1000000, &s), VEIL_OK);
	uint64_t mark = seq_mark(path), v = 0, last = 0;
	ck_assert_uint_eq(mark, 1000000 + VEIL_SEQ_BLOCK);
	size_t due_at = 0, dues = 0;
	for (size_t i = 1; i <= VEIL_SEQ_BLOCK / 2 + 10; i++) {
		ck_assert_int_eq(veil_seq_next(s, &v), VEIL_OK);
		if (veil__seq_ahead_due(s)) {
			dues++;
			due_at = due_at ? due_at : i;
		}
	}
	ck_assert_uint_eq(dues, 1);                       /* once, until written */
	ck_assert_uint_eq(due_at, VEIL_SEQ_BLOCK / 2 + 1); /* under half a block left */
	ck_assert_uint_eq(seq_mark(path), mark);           /* nothing written yet */
	ck_assert_int_eq(veil__seq_write_ahead(s), VEIL_OK);
	ck_assert_uint_eq(seq_mark(path), mark + VEIL_SEQ_BLOCK);
	/* Write-ahead in step: the numbers run past the first block with the
	 * mark always above them. */
	for (size_t i = 0; i < 3 * VEIL_SEQ_BLOCK; i++) {
		ck_assert_int_eq(veil_seq_next(s, &v), VEIL_OK);
		ck_assert_uint_lt(v, seq_mark(path));
		if (veil__seq_ahead_due(s))
			ck_assert_int_eq(veil__seq_write_ahead(s), VEIL_OK);
	}
	/* Asked for and never run (the writer fell behind): still above. */
	for (size_t i = 0; i < 3 * VEIL_SEQ_BLOCK; i++) {
		ck_assert_int_eq(veil_seq_next(s, &v), VEIL_OK);
		ck_assert_uint_lt(v, seq_mark(path));
		(void)veil__seq_ahead_due(s);
	}
	/* The late write-ahead lands; then one racing veil_seq_next (whose
	 * fallback may run meanwhile). */
	ck_assert_int_eq(veil__seq_write_ahead(s), VEIL_OK);
	struct ahead_race r = { s, 0 };
	pthread_t t;
	ck_assert_int_eq(pthread_create(&t, NULL, ahead_writer, &r), 0);
	uint64_t prev_mark = 0;
	for (size_t i = 0; i < 3 * VEIL_SEQ_BLOCK; i++) {
		ck_assert_int_eq(veil_seq_next(s, &v), VEIL_OK);
		uint64_t m = seq_mark(path);
		ck_assert_uint_lt(v, m);
		ck_assert_uint_ge(m, prev_mark); /* never goes back */
		prev_mark = m;
		last = v;
	}
	r.stop = 1;
	pthread_join(t, NULL);
	veil_seq_close(&s);
	ck_assert_int_eq(veil_seq_open(path, 5, &s), VEIL_OK);
	ck_assert_int_eq(veil_seq_next(s, &v), VEIL_OK);
	ck_assert_uint_gt(v, last);
	veil_seq_close(&s);
	remove(path);
	remove(dir);
}
END_TEST

/* A state file whose number is negative, overflows, is at the top of the
 * 64-bit range or has trailing garbage is corrupt: sscanf("%llu") used to take
 * "-1" as 2^64-1, after which the reserved block and then the sequence itself
 * wrapped to small numbers that every receiver refuses as replays. */
START_TEST(test_sequence_corrupt_numbers)
{
	char dir[256], path[300];
	ck_assert_int_eq(test_mkdtemp(dir, sizeof(dir)), 0);
	snprintf(path, sizeof(path), "%s/seq", dir);
	static const char *const bad[] = {
		"veil-seq-v1 -1\n",
		"veil-seq-v1 18446744073709551615\n",
		"veil-seq-v1 99999999999999999999999\n",
		"veil-seq-v1 18446744073709547520\n", /* 2^64 - 4096: the next block would wrap */
		"veil-seq-v1 12abc\n",
		"veil-seq-v1 +12\n",
		"veil-seq-v1\n",
		"veil-seq-v2 12\n",
	};
	struct veil_seq *s = NULL;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_int_eq(test_write_file(path, bad[i], 0600), 0);
		ck_assert_msg(veil_seq_open(path, 1000, &s) == VEIL_ERR_STATE, "accepted '%s'", bad[i]);
		ck_assert_ptr_null(s);
	}
	/* A well-formed mark above the clock is still honoured. */
	ck_assert_int_eq(test_write_file(path, "veil-seq-v1 5000000\n", 0600), 0);
	ck_assert_int_eq(veil_seq_open(path, 1000, &s), VEIL_OK);
	uint64_t v = 0;
	ck_assert_int_eq(veil_seq_next(s, &v), VEIL_OK);
	ck_assert_uint_eq(v, 5000000);
	veil_seq_close(&s);
	remove(path);
	remove(dir);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("replay");
	TCase *tc = veil_tcase("core", 3);
	tcase_add_test(tc, test_window);
	tcase_add_test(tc, test_window_small_top);
	tcase_add_test(tc, test_full_partition_refuses_never_evicts);
	tcase_add_test(tc, test_no_floor);
	tcase_add_test(tc, test_previous_format_upgrade);
	tcase_add_test(tc, test_persistence);
	tcase_add_test(tc, test_sequence_restart_and_lost_state);
	tcase_add_test(tc, test_sequence_corrupt_numbers);
	suite_add_tcase(s, tc);
	/* A dozen fsyncs and thousands of reads of the mark: disk-bound. */
	TCase *ahead = veil_tcase("seq_ahead", 15);
	tcase_add_test(ahead, test_sequence_write_ahead);
	suite_add_tcase(s, ahead);
	return s;
}

int main(void)
{
	if (veil_init() != VEIL_OK)
		return EXIT_FAILURE;
	return veil_check_run(suite());
}
