/*
 * plugin/nonce_cache.c: a nonce is refused while live, forgotten once its
 * token can no longer be fresh, and a full cache refuses (fail closed)
 * instead of forgetting live nonces. The journal (plugin_opt_state_dir):
 * every fresh nonce is in the file before the login is accepted, a new
 * cache reloads the live ones, the file is compacted, and a journal that
 * is not one (or holds more than fits) is refused, while a record cut short
 * by a crash is ignored.
 */
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "veil/error.h"
#include "nonce_cache.h"
#include "check_run.h"
#include "files.h"
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

/* The capacity is exact and counts live nonces only: each is forgotten the
 * second after its expiry, also after a long pause or far in the future. */
START_TEST(test_expiry_frees_room)
{
	struct vp_nonce_cache *nc = NULL;
	ck_assert_int_eq(vp_nonce_cache__new(256, &nc), VEIL_OK);
	static uint8_t n[256 + 129][VEIL_TOKEN_NONCE_BYTES];
	for (size_t i = 0; i < sizeof(n) / sizeof(n[0]); i++)
		randombytes_buf(n[i], sizeof(n[i]));
	/* Half expire at 1000, half at 1001. */
	for (int i = 0; i < 256; i++)
		ck_assert_int_eq(vp_nonce_cache__add(nc, n[i], 1000 + (uint64_t)(i % 2), 900), VP_NONCE_FRESH);
	ck_assert_int_eq(vp_nonce_cache__add(nc, n[256], 5000, 900), VP_NONCE_FULL);
	ck_assert_int_eq(vp_nonce_cache__add(nc, n[256], 5000, 1000), VP_NONCE_FULL); /* all live at 1000 */
	/* At 1001 the half that expired at 1000 is gone: exactly 128 places. */
	for (int i = 256; i < 256 + 128; i++)
		ck_assert_int_eq(vp_nonce_cache__add(nc, n[i], 5000, 1001), VP_NONCE_FRESH);
	ck_assert_int_eq(vp_nonce_cache__add(nc, n[256 + 128], 5000, 1001), VP_NONCE_FULL);
	ck_assert_uint_eq(vp_nonce_cache__live(nc, 1001), 256);
	ck_assert_int_eq(vp_nonce_cache__add(nc, n[1], 1001, 1001), VP_NONCE_REPLAY); /* expires at 1001: live */
	vp_nonce_cache__free(&nc);

	/* Far beyond one turn of the wheel (8192 s), and a clock that jumps. */
	ck_assert_int_eq(vp_nonce_cache__new(256, &nc), VEIL_OK);
	ck_assert_int_eq(vp_nonce_cache__add(nc, n[0], 1000 + 3 * 8192, 1000), VP_NONCE_FRESH);
	ck_assert_int_eq(vp_nonce_cache__add(nc, n[1], 1061, 1000), VP_NONCE_FRESH);
	ck_assert_int_eq(vp_nonce_cache__add(nc, n[0], 1, 1000 + 8192 + 5), VP_NONCE_REPLAY);
	ck_assert_uint_eq(vp_nonce_cache__live(nc, 1000 + 8192 + 5), 1);
	ck_assert_int_eq(vp_nonce_cache__add(nc, n[1], 99999, 1000 + 8192 + 5), VP_NONCE_FRESH);
	ck_assert_int_eq(vp_nonce_cache__add(nc, n[0], 1, 1000000000), VP_NONCE_FRESH); /* expired: not kept */
	ck_assert_uint_eq(vp_nonce_cache__live(nc, 1000000000), 0);
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

/* ---- the journal ---- */

#define MAGIC_LEN 8
#define RECORD_LEN (VEIL_TOKEN_NONCE_BYTES + 8)

static char dir[256], journal[300];

static void journal_setup(void)
{
	ck_assert_int_eq(test_mkdtemp(dir, sizeof(dir)), 0);
	snprintf(journal, sizeof(journal), "%s/token-nonces", dir);
}

static void journal_teardown(void)
{
	ck_assert_int_eq(test_rmtree(dir), 0);
}

static off_t file_size(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 ? st.st_size : -1;
}

static struct vp_nonce_cache *persisted(size_t cap, uint64_t now, int want)
{
	struct vp_nonce_cache *nc = NULL;
	char err[300] = "";
	ck_assert_int_eq(vp_nonce_cache__new(cap, &nc), 0);
	int rc = vp_nonce_cache__persist(nc, journal, now, err, sizeof(err));
	ck_assert_msg(rc == want, "persist: %s (%s)", veil_errname(rc), err);
	if (want != VEIL_OK) {
		ck_assert_msg(strstr(err, journal) != NULL, "error does not name the file: %s", err);
		vp_nonce_cache__free(&nc);
	}
	return nc;
}

START_TEST(test_journal_persist_and_reload)
{
	journal_setup();
	struct vp_nonce_cache *nc = persisted(1024, 1000, VEIL_OK);
	ck_assert_int_eq(file_size(journal), MAGIC_LEN);
	struct stat st;
	ck_assert_int_eq(stat(journal, &st), 0);
	ck_assert_int_eq(st.st_mode & 077, 0);
	uint8_t live[3][VEIL_TOKEN_NONCE_BYTES], dead[VEIL_TOKEN_NONCE_BYTES];
	for (int i = 0; i < 3; i++) {
		randombytes_buf(live[i], sizeof(live[i]));
		ck_assert_int_eq(vp_nonce_cache__add(nc, live[i], 1061, 1000), VP_NONCE_FRESH);
	}
	randombytes_buf(dead, sizeof(dead));
	ck_assert_int_eq(vp_nonce_cache__add(nc, dead, 1010, 1000), VP_NONCE_FRESH);
	/* In the file at once, before any sync: a SIGKILL loses nothing. */
	ck_assert_int_eq(file_size(journal), MAGIC_LEN + 4 * RECORD_LEN);
	ck_assert_int_eq(vp_nonce_cache__add(nc, live[0], 1061, 1000), VP_NONCE_REPLAY);
	ck_assert_int_eq(file_size(journal), MAGIC_LEN + 4 * RECORD_LEN); /* a replay adds nothing */
	vp_nonce_cache__sync(nc, 1001);
	ck_assert_uint_eq(vp_nonce_cache__write_errors(nc), 0);
	vp_nonce_cache__free(&nc); /* no clean shutdown needed: the file is complete */

	/* A restart at 1020: the live nonces are refused, the expired one is
	 * not even loaded, and the file is rewritten with the live ones only. */
	nc = persisted(1024, 1020, VEIL_OK);
	ck_assert_int_eq(file_size(journal), MAGIC_LEN + 3 * RECORD_LEN);
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(vp_nonce_cache__add(nc, live[i], 1061, 1020), VP_NONCE_REPLAY);
	ck_assert_int_eq(vp_nonce_cache__add(nc, dead, 1080, 1020), VP_NONCE_FRESH);
	ck_assert_uint_eq(vp_nonce_cache__live(nc, 1020), 4);
	vp_nonce_cache__free(&nc);
	/* Persisting twice, or without a path, is a caller error. */
	nc = persisted(1024, 1020, VEIL_OK);
	ck_assert_int_eq(vp_nonce_cache__persist(nc, journal, 1020, NULL, 0), VEIL_ERR_INVAL);
	ck_assert_int_eq(vp_nonce_cache__persist(NULL, journal, 1020, NULL, 0), VEIL_ERR_INVAL);
	vp_nonce_cache__free(&nc);
	journal_teardown();
}
END_TEST

/* A crash in the middle of an append leaves a record cut short at the end:
 * it was never acknowledged to a client, so it is ignored and dropped. */
START_TEST(test_journal_cut_short_record_ignored)
{
	journal_setup();
	struct vp_nonce_cache *nc = persisted(1024, 1000, VEIL_OK);
	uint8_t a[VEIL_TOKEN_NONCE_BYTES];
	randombytes_buf(a, sizeof(a));
	ck_assert_int_eq(vp_nonce_cache__add(nc, a, 1061, 1000), VP_NONCE_FRESH);
	vp_nonce_cache__free(&nc);
	int fd = open(journal, O_WRONLY | O_APPEND);
	ck_assert_int_ge(fd, 0);
	uint8_t partial[RECORD_LEN - 5];
	randombytes_buf(partial, sizeof(partial));
	ck_assert_int_eq(write(fd, partial, sizeof(partial)), (ssize_t)sizeof(partial));
	close(fd);
	nc = persisted(1024, 1001, VEIL_OK);
	ck_assert_int_eq(vp_nonce_cache__add(nc, a, 1061, 1001), VP_NONCE_REPLAY);
	ck_assert_uint_eq(vp_nonce_cache__live(nc, 1001), 1);
	ck_assert_int_eq(file_size(journal), MAGIC_LEN + RECORD_LEN);
	vp_nonce_cache__free(&nc);
	journal_teardown();
}
END_TEST

/* Whatever is not a journal is refused, never taken as empty: the operator
 * must look (the broker then does not start). */
START_TEST(test_journal_malformed_refused)
{
	journal_setup();
	ck_assert_int_eq(test_write_file(journal, "", 0600), 0);
	persisted(1024, 1000, VEIL_ERR_PARSE);
	ck_assert_int_eq(test_write_file(journal, "VEILNCJ", 0600), 0); /* shorter than the magic */
	persisted(1024, 1000, VEIL_ERR_PARSE);
	ck_assert_int_eq(test_write_file(journal, "VEILNCJ2 and more bytes than a record holds..", 0600), 0);
	persisted(1024, 1000, VEIL_ERR_PARSE);
	ck_assert_int_eq(unlink(journal), 0);
	ck_assert_int_eq(mkdir(journal, 0700), 0); /* not a regular file */
	persisted(1024, 1000, VEIL_ERR_PARSE);
	ck_assert_int_eq(rmdir(journal), 0);
	/* A symbolic link is not followed, either way. */
	char target[320];
	snprintf(target, sizeof(target), "%s/elsewhere", dir);
	ck_assert_int_eq(test_write_file(target, "VEILNCJ1", 0600), 0);
	ck_assert_int_eq(symlink(target, journal), 0);
	persisted(1024, 1000, VEIL_ERR_IO);
	ck_assert_int_eq(unlink(journal), 0);
	char tmp[320];
	snprintf(tmp, sizeof(tmp), "%s.new", journal);
	ck_assert_int_eq(symlink(target, tmp), 0);
	persisted(1024, 1000, VEIL_ERR_IO);
	ck_assert_int_eq(file_size(target), MAGIC_LEN); /* untouched */
	struct stat st;
	ck_assert_int_ne(lstat(tmp, &st), 0); /* the link itself was removed */
	/* A directory that does not exist. */
	snprintf(journal, sizeof(journal), "%s/missing/token-nonces", dir);
	persisted(1024, 1000, VEIL_ERR_IO);
	journal_teardown();
}
END_TEST

/* More live nonces in the journal than the cache holds: refused (the broker
 * does not start) rather than forgetting some. */
START_TEST(test_journal_larger_than_cache)
{
	journal_setup();
	struct vp_nonce_cache *nc = persisted(4096, 1000, VEIL_OK);
	uint8_t n[VEIL_TOKEN_NONCE_BYTES];
	size_t fresh = 0;
	for (int i = 0; i < 3000; i++) {
		randombytes_buf(n, sizeof(n));
		fresh += vp_nonce_cache__add(nc, n, 5000, 1000) == VP_NONCE_FRESH;
	}
	vp_nonce_cache__free(&nc);
	ck_assert_int_eq(file_size(journal), (off_t)(MAGIC_LEN + fresh * RECORD_LEN));
	persisted(256, 1000, VEIL_ERR_NOMEM);
	/* Once they have expired they no longer count. */
	nc = persisted(256, 5001, VEIL_OK);
	ck_assert_int_eq(file_size(journal), MAGIC_LEN);
	vp_nonce_cache__free(&nc);
	journal_teardown();
}
END_TEST

/* The journal is rewritten when it holds more than 4096 records and four
 * times more than are live; never while most records are still live. */
START_TEST(test_journal_compaction)
{
	journal_setup();
	struct vp_nonce_cache *nc = persisted(16384, 1000, VEIL_OK);
	uint8_t n[VEIL_TOKEN_NONCE_BYTES], keep[VEIL_TOKEN_NONCE_BYTES];
	for (int i = 0; i < 5000; i++) {
		randombytes_buf(n, sizeof(n));
		ck_assert_int_eq(vp_nonce_cache__add(nc, n, i < 100 ? 9000 : 1100, 1000), VP_NONCE_FRESH);
		if (i == 0)
			memcpy(keep, n, sizeof(keep));
	}
	ck_assert_int_eq(file_size(journal), MAGIC_LEN + 5000 * RECORD_LEN);
	vp_nonce_cache__sync(nc, 1050); /* all live: kept as it is */
	ck_assert_int_eq(file_size(journal), MAGIC_LEN + 5000 * RECORD_LEN);
	vp_nonce_cache__sync(nc, 1200); /* 100 live of 5000 */
	ck_assert_int_eq(file_size(journal), MAGIC_LEN + 100 * RECORD_LEN);
	ck_assert_uint_eq(vp_nonce_cache__write_errors(nc), 0);
	/* Appends go on into the rewritten file. */
	randombytes_buf(n, sizeof(n));
	ck_assert_int_eq(vp_nonce_cache__add(nc, n, 9000, 1200), VP_NONCE_FRESH);
	ck_assert_int_eq(file_size(journal), MAGIC_LEN + 101 * RECORD_LEN);
	vp_nonce_cache__free(&nc);
	nc = persisted(16384, 1200, VEIL_OK);
	ck_assert_int_eq(vp_nonce_cache__add(nc, keep, 9000, 1200), VP_NONCE_REPLAY);
	ck_assert_int_eq(vp_nonce_cache__add(nc, n, 9000, 1200), VP_NONCE_REPLAY);
	ck_assert_uint_eq(vp_nonce_cache__live(nc, 1200), 101);
	vp_nonce_cache__free(&nc);
	journal_teardown();
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("nonce_cache");
	TCase *t = veil_tcase("core", 2);
	tcase_add_test(t, test_replay_until_expiry);
	tcase_add_test(t, test_full_fails_closed);
	tcase_add_test(t, test_expiry_frees_room);
	tcase_add_test(t, test_bad_parameters);
	suite_add_tcase(s, t);
	TCase *j = veil_tcase("journal", 5);
	tcase_add_test(j, test_journal_persist_and_reload);
	tcase_add_test(j, test_journal_cut_short_record_ignored);
	tcase_add_test(j, test_journal_malformed_refused);
	tcase_add_test(j, test_journal_larger_than_cache);
	tcase_add_test(j, test_journal_compaction);
	suite_add_tcase(s, j);
	return s;
}

int main(void)
{
	return veil_check_run(suite());
}
