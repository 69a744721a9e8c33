/*
 * Files for tests: private temp dirs (and their removal), writing a file
 * with a mode, reading one whole, and waiting until a file (a broker log, a
 * child's output) contains something, with a deadline.
 */
#ifndef VEIL_TEST_FILES_H
#define VEIL_TEST_FILES_H

#include <stdbool.h>
#include <stddef.h>

/* A fresh directory under $TMPDIR (or /tmp); returns 0 on success. */
int test_mkdtemp(char *out, size_t outlen);
/* test_mkdtemp, then mode 0755: a broker that drops privileges to another
 * user still reads the files put there. */
int test_mkdtemp_readable(char *out, size_t outlen);
/* Remove dir and everything under it (no symlinks followed); 0 on success. */
int test_rmtree(const char *dir);
/* Write a file with mode (e.g. 0600). Returns 0 on success. */
int test_write_file(const char *path, const char *content, unsigned mode);

/* The whole file, NUL terminated (caller frees), or NULL; *len gets its
 * size (0 when absent). */
char *test_file_read(const char *path, size_t *len);
/* Whether the file holds these n bytes / this string. */
bool test_file_has_n(const char *path, const void *needle, size_t n);
bool test_file_has(const char *path, const char *needle);
/* How many times needle occurs in the file (non-overlapping). */
int test_file_count(const char *path, const char *needle);
/* Wait until the file holds needle (a string / n bytes), or holds the
 * string count times; false after base_ms (scaled, timing.h). */
bool test_file_wait(const char *path, const char *needle, int base_ms);
bool test_file_wait_n(const char *path, const void *needle, size_t n, int base_ms);
bool test_file_wait_count(const char *path, const char *needle, int count, int base_ms);
/* Print the file to stderr under a heading (for failure diagnostics). */
void test_file_dump(const char *what, const char *path);

#endif
