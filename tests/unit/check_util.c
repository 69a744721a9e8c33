/*
 * core/util.c: the one whole-file reader and the one line reader of Veil's
 * files (every file format, the plugin's and the CLI's included, reads
 * through them): modes, limits, refusals with their "path: reason", and
 * lines with their numbers, comments, CR/LF, truncated and oversized input.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sodium.h>

#include "../../core/util.h"
#include "veil/error.h"
#include "check_run.h"
#include "files.h"
#include "timing.h"

static char dir[256];
static char path[400];

static void setup(void)
{
	ck_assert_int_ge(sodium_init(), 0);
	ck_assert_int_eq(test_mkdtemp(dir, sizeof(dir)), 0);
	snprintf(path, sizeof(path), "%s/f", dir);
}

static void teardown(void)
{
	test_rmtree(dir);
}

START_TEST(whole_file)
{
	char err[512];
	struct veil__text t;
	ck_assert_int_eq(test_write_file(path, "abc\n", 0644), 0);
	for (unsigned flags = 0; flags <= VEIL__FILE_WIPE; flags += VEIL__FILE_WIPE) {
		ck_assert_int_eq(veil__file_read(path, flags, 4, &t, err, sizeof(err)), VEIL_OK);
		ck_assert_uint_eq(t.len, 4);
		ck_assert_str_eq(t.text, "abc\n"); /* NUL-terminated */
		ck_assert(t.wiped == (flags != 0));
		veil__text_free(&t);
		ck_assert_ptr_null(t.text);
	}
	/* One byte over the limit. */
	ck_assert_int_eq(veil__file_read(path, 0, 3, &t, err, sizeof(err)), VEIL_ERR_TOO_LARGE);
	ck_assert_msg(strstr(err, path) == err && strstr(err, "larger than 3 bytes"), "%s", err);
	ck_assert_ptr_null(t.text);
	veil__text_free(&t); /* harmless after an error */
	/* Empty file. */
	ck_assert_int_eq(test_write_file(path, "", 0644), 0);
	ck_assert_int_eq(veil__file_read(path, 0, 0, &t, err, sizeof(err)), VEIL_OK);
	ck_assert_uint_eq(t.len, 0);
	ck_assert_str_eq(t.text, "");
	veil__text_free(&t);
	/* Secrets: group or other access refused, 0600 read into wiped memory. */
	ck_assert_int_eq(test_write_file(path, "s", 0640), 0);
	ck_assert_int_eq(veil__file_read(path, VEIL__FILE_SECRET, 10, &t, err, sizeof(err)), VEIL_ERR_PERM);
	ck_assert_msg(strstr(err, "chmod 600"), "%s", err);
	ck_assert_int_eq(chmod(path, 0600), 0);
	ck_assert_int_eq(veil__file_read(path, VEIL__FILE_SECRET, 10, &t, err, sizeof(err)), VEIL_OK);
	ck_assert(t.wiped);
	veil__text_free(&t);
	/* Missing: errno kept for callers that treat ENOENT as "none yet". */
	unlink(path);
	ck_assert_int_eq(veil__file_read(path, 0, 10, &t, err, sizeof(err)), VEIL_ERR_IO);
	ck_assert_int_eq(errno, ENOENT);
	ck_assert_msg(strstr(err, path) == err && strstr(err, "No such file"), "%s", err);
	/* Not a regular file, unless VEIL__FILE_ANY (and then a directory still fails to read). */
	ck_assert_int_eq(veil__file_read(dir, 0, 10, &t, err, sizeof(err)), VEIL_ERR_IO);
	ck_assert_msg(strstr(err, "not a regular file"), "%s", err);
	ck_assert_int_eq(veil__file_read(dir, VEIL__FILE_ANY, 10, &t, err, sizeof(err)), VEIL_ERR_IO);
	ck_assert_int_eq(veil__file_read(NULL, 0, 10, &t, err, sizeof(err)), VEIL_ERR_INVAL);
}
END_TEST

/* A pipe has no size: read to its end, bounded by max, growing as it comes. */
static int read_pipe(const char *data, size_t n, size_t max, struct veil__text *t)
{
	char fifo[450];
	snprintf(fifo, sizeof(fifo), "%s/fifo", dir);
	unlink(fifo);
	ck_assert_int_eq(mkfifo(fifo, 0600), 0);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int fd = open(fifo, O_WRONLY);
		size_t off = 0;
		while (fd >= 0 && off < n) {
			ssize_t w = write(fd, data + off, n - off);
			if (w <= 0)
				break; /* the reader stopped at its limit */
			off += (size_t)w;
		}
		_exit(0);
	}
	char err[512];
	int rc = veil__file_read(fifo, VEIL__FILE_ANY | VEIL__FILE_WIPE, max, t, err, sizeof(err));
	kill(pid, SIGKILL);
	int st;
	waitpid(pid, &st, 0);
	return rc;
}

START_TEST(pipes)
{
	size_t n = 100000;
	char *big = malloc(n);
	ck_assert_ptr_nonnull(big);
	for (size_t i = 0; i < n; i++)
		big[i] = (char)('a' + i % 26);
	struct veil__text t;
	ck_assert_int_eq(read_pipe(big, n, n, &t), VEIL_OK);
	ck_assert_uint_eq(t.len, n);
	ck_assert(memcmp(t.text, big, n) == 0 && t.text[n] == '\0');
	veil__text_free(&t);
	ck_assert_int_eq(read_pipe(big, n, n - 1, &t), VEIL_ERR_TOO_LARGE);
	ck_assert_int_eq(errno, EFBIG);
	ck_assert_int_eq(read_pipe(big, 5, 5000, &t), VEIL_OK);
	ck_assert_uint_eq(t.len, 5);
	veil__text_free(&t);
	free(big);
}
END_TEST

/* Collect every line of text into "status:lineno:content|" for comparison. */
static void lines_of(const char *text, size_t len, bool verbatim, size_t cap, char *out, size_t outlen)
{
	static const char *const dirs[] = { "key", NULL };
	struct veil__lines it = { .text = text, .len = len, .filter_directives = dirs, .verbatim = verbatim };
	char line[64];
	ck_assert_uint_le(cap, sizeof(line));
	out[0] = '\0';
	enum veil__line ls;
	while ((ls = veil__lines_next(&it, line, cap)) != VEIL__LINE_END) {
		size_t o = strlen(out);
		snprintf(out + o, outlen - o, "%d:%u:%s|", (int)ls, it.lineno, line);
	}
}

START_TEST(lines)
{
	char got[512];
	const char t1[] = "a b  # comment\r\n\n  # only a comment\n\tkey # 1 x # c\nlast";
	lines_of(t1, sizeof(t1) - 1, false, 64, got, sizeof(got));
	ck_assert_str_eq(got, "1:1:a b|1:2:|1:3:|1:4:key # 1 x|1:5:last|");
	lines_of(t1, sizeof(t1) - 1, true, 64, got, sizeof(got));
	ck_assert_str_eq(got, "1:1:a b  # comment|1:2:|1:3:  # only a comment|1:4:\tkey # 1 x # c|1:5:last|");
	/* A '#' inside a word is not a comment; a trailing newline adds no line. */
	lines_of("a#b c\n", 6, false, 64, got, sizeof(got));
	ck_assert_str_eq(got, "1:1:a#b c|");
	/* Limits: cap - 1 bytes fit, one more does not; what counts is what
	 * the parser would get (a long comment does not). */
	lines_of("1234\n12345\n1234 # long comment\n", 31, false, 5, got, sizeof(got));
	ck_assert_str_eq(got, "1:1:1234|2:2:|1:3:1234|");
	lines_of("1234 # long comment\n", 20, true, 5, got, sizeof(got));
	ck_assert_str_eq(got, "2:1:|");
	/* A NUL byte anywhere in a line, comments included. */
	lines_of("ok\nx # \0 y\nz", 12, false, 64, got, sizeof(got));
	ck_assert_str_eq(got, "1:1:ok|3:2:|1:3:z|");
	lines_of("", 0, false, 64, got, sizeof(got));
	ck_assert_str_eq(got, "");
}
END_TEST

/* Base64 (keys in every text file): the alphabet and nothing else. Debian
 * 12's libsodium decodes bytes >= 0x80 as letters; the core refuses them. */
START_TEST(base64_strict)
{
	uint8_t k[32], out[32];
	for (size_t i = 0; i < sizeof(k); i++)
		k[i] = (uint8_t)(0x40 + i);
	char text[64];
	ck_assert_int_eq(veil__b64_encode(k, sizeof(k), text, sizeof(text)), VEIL_OK);
	size_t n = 0;
	ck_assert_int_eq(veil__b64_decode(text, strlen(text), out, sizeof(out), &n), VEIL_OK);
	ck_assert_uint_eq(n, 32);
	ck_assert_mem_eq(out, k, 32);
	/* The fuzzer's find: eight bytes >= 0x80 for eight letters. */
	const char bad[] = "QEFCQ0RFR\x95\x9b\xb6\xac\xaa\x8f\xb3\xab" "E1OT1BRUlNUVVZXWFlaW1xdXl8=";
	ck_assert_int_eq(veil__b64_decode(bad, strlen(bad), out, sizeof(out), &n), VEIL_ERR_PARSE);
	for (unsigned c = 0; c < 256; c++) {
		char one[sizeof(text)];
		memcpy(one, text, sizeof(one));
		one[5] = (char)c;
		bool alphabet = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
		                c == '/';
		int rc = veil__b64_decode(one, strlen(text), out, sizeof(out), &n);
		ck_assert_msg(alphabet ? rc == VEIL_OK : rc == VEIL_ERR_PARSE, "byte 0x%02x: %d", c, rc);
	}
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("util");
	TCase *t = veil_tcase("readers", 5);
	tcase_add_checked_fixture(t, setup, teardown);
	tcase_add_test(t, whole_file);
	tcase_add_test(t, pipes);
	tcase_add_test(t, lines);
	tcase_add_test(t, base64_strict);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	return veil_check_run(suite());
}
