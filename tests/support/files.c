/* Files for tests (see files.h). */
#define _GNU_SOURCE /* memmem, nftw */
#include "files.h"

#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "timing.h"

int test_mkdtemp(char *out, size_t outlen)
{
	const char *tmp = getenv("TMPDIR");
	if (!tmp || !*tmp)
		tmp = "/tmp";
	if ((size_t)snprintf(out, outlen, "%s/veil-test-XXXXXX", tmp) >= outlen)
		return -1;
	return mkdtemp(out) ? 0 : -1;
}

int test_mkdtemp_readable(char *out, size_t outlen)
{
	if (test_mkdtemp(out, outlen) != 0)
		return -1;
	return chmod(out, 0755);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

int test_rmtree(const char *dir)
{
	if (!dir || !*dir)
		return -1;
	int rc = nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
	if (rc != 0)
		fprintf(stderr, "could not remove %s\n", dir);
	return rc;
}

int test_write_file(const char *path, const char *content, unsigned mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, (mode_t)mode);
	if (fd < 0)
		return -1;
	size_t n = strlen(content);
	ssize_t w = write(fd, content, n);
	int ch = fchmod(fd, (mode_t)mode);
	close(fd);
	return (w == (ssize_t)n && ch == 0) ? 0 : -1;
}

char *test_file_read(const char *path, size_t *len)
{
	*len = 0;
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap);
	while (buf) {
		n += fread(buf + n, 1, cap - n - 1, f);
		if (n < cap - 1)
			break;
		char *bigger = realloc(buf, cap * 2);
		if (!bigger) {
			free(buf);
			buf = NULL;
			break;
		}
		buf = bigger;
		cap *= 2;
	}
	fclose(f);
	if (!buf)
		return NULL;
	buf[n] = '\0';
	*len = n;
	return buf;
}

/* Occurrences of needle (n bytes, non-overlapping), counting up to max. */
static int count_n(const char *path, const void *needle, size_t n, int max)
{
	size_t len;
	char *b = test_file_read(path, &len);
	int count = 0;
	for (char *p = b; p && n && count < max && (p = memmem(p, len - (size_t)(p - b), needle, n)) != NULL; p += n)
		count++;
	free(b);
	return count;
}

bool test_file_has_n(const char *path, const void *needle, size_t n)
{
	return count_n(path, needle, n, 1) == 1;
}

bool test_file_has(const char *path, const char *needle)
{
	return test_file_has_n(path, needle, strlen(needle));
}

int test_file_count(const char *path, const char *needle)
{
	return count_n(path, needle, strlen(needle), INT_MAX);
}

static bool wait_n(const char *path, const void *needle, size_t n, int count, int base_ms)
{
	struct veil_deadline d = veil_deadline_in(base_ms);
	for (;;) {
		if (count_n(path, needle, n, count) >= count)
			return true;
		if (veil_deadline_passed(&d))
			return false;
		veil_poll_pause();
	}
}

bool test_file_wait(const char *path, const char *needle, int base_ms)
{
	return wait_n(path, needle, strlen(needle), 1, base_ms);
}

bool test_file_wait_n(const char *path, const void *needle, size_t n, int base_ms)
{
	return wait_n(path, needle, n, 1, base_ms);
}

bool test_file_wait_count(const char *path, const char *needle, int count, int base_ms)
{
	return wait_n(path, needle, strlen(needle), count, base_ms);
}

void test_file_dump(const char *what, const char *path)
{
	size_t len;
	char *b = test_file_read(path, &len);
	fprintf(stderr, "---- %s (%s) ----\n%s\n", what, path, b ? b : "(none)");
	free(b);
}
