/* Load tests/vectors/core.txt ("name hex" lines) for vector tests. */
#ifndef VEIL_TEST_VECTORS_H
#define VEIL_TEST_VECTORS_H
#include <stddef.h>
#include <stdint.h>
/* Decodes vector `name` into out (cap bytes); returns its length, or -1 (and fails loudly). */
long test_vector(const char *name, uint8_t *out, size_t cap);
#endif
