/*
 * libFuzzer target: veil-keyd's storage key file (keyd/store.c
 * kd_storage_key__load), the key that seals every topic key in keyd's
 * database: one line "veil-storage-key-v1 <base64 of 32 bytes>", blank lines
 * allowed around it, a 0600 file. The loader reads a path, so the input goes
 * to an in-memory file (memfd, mode 0600) read through /proc/self/fd/N.
 * Checked: a file that loads gives 32 bytes whose base64 is in the input
 * beside the prefix, and the input holds no other line with content; one that does not load hands out no key and its
 * error names the file. Seeds: fuzz/corpus/storage_key.
 */
#define _GNU_SOURCE
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sodium.h>

#include "veil/error.h"
#include "../core/util.h"
#include "store.h"

#include "fuzz_common.h"
#include "fuzz_memfile.h"

static const char *mem_path;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_sodium_init();
	mem_path = fuzz_memfile_init_0600("veil-fuzz-storage-key");
	return 0;
}

/* The lines of data with content, as the core's line reader (blank lines
 * and comments dropped, fuzzed on its own through every file parser) sees
 * them. */
static size_t content_lines(const uint8_t *data, size_t size)
{
	static char line[4096];
	struct veil__lines it = { .text = (const char *)data, .len = size };
	enum veil__line ls;
	size_t n = 0;
	while ((ls = veil__lines_next(&it, line, sizeof(line))) != VEIL__LINE_END)
		n += ls != VEIL__LINE_OK || line[0];
	return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_memfile_put(data, size);
	uint8_t *key = (uint8_t *)1; /* must be reset */
	char err[512];
	int rc = kd_storage_key__load(mem_path, &key, err, sizeof(err));
	if (rc != VEIL_OK) {
		if (key || !strstr(err, mem_path))
			abort(); /* a refusal hands out nothing and names the file */
		return 0;
	}
	if (!key || content_lines(data, size) != 1)
		abort();
	char b64[64];
	if (veil__b64_encode(key, KD_STORAGE_KEY_BYTES, b64, sizeof(b64)) != VEIL_OK ||
	    !memmem(data, size, KD_STORAGE_KEY_PREFIX, strlen(KD_STORAGE_KEY_PREFIX)) ||
	    !memmem(data, size, b64, strlen(b64)))
		abort();
	sodium_memzero(b64, sizeof(b64));
	kd_storage_key__free(&key);
	return 0;
}
