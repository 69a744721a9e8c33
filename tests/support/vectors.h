/* Load tests/vectors/core.txt ("name hex" lines) and tests/vectors/names.txt
 * for vector tests: what tools/gen_vectors.py, the independent
 * implementation, computes. */
#ifndef VEIL_TEST_VECTORS_H
#define VEIL_TEST_VECTORS_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
/* Decodes vector `name` into out (cap bytes); returns its length, or -1 (and fails loudly). */
long test_vector(const char *name, uint8_t *out, size_t cap);

/* A name of docs/PROTOCOL.md section 3 and its verdict as each kind. */
enum { TEST_NAME_USERNAME, TEST_NAME_CLIENT_ID, TEST_NAME_PASSWD_USER, TEST_NAME_KINDS };
struct test_name {
	char name[136];   /* NUL-terminated: the table holds no NUL byte in a name */
	size_t len;
	bool valid[TEST_NAME_KINDS];
};
/* Loads up to max names; returns the count, or -1 (and fails loudly). */
long test_names(struct test_name *out, size_t max);
#endif
