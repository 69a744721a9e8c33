/*
 * libFuzzer target: the plugin's revocation list parser (plugin/revoke.c with
 * file.c, the core's file and line readers and core/names.c).
 * vp_revoke__load reads from a path, so the input is written to an in-memory file (memfd) and loaded through
 * /proc/self/fd/N. Property checked: when a list loads and its first line is
 * exactly "credential <32 hex>" or "client <name>", that entry is revoked.
 * Seeds: fuzz/corpus/revoke.
 */
#define _GNU_SOURCE
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "revoke.h"
#include "veil/error.h"

#include "fuzz_common.h"
#include "fuzz_memfile.h"

static const char *mem_path;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_sodium_init();
	mem_path = fuzz_memfile_init("veil-fuzz-revoke");
	return 0;
}

/* The first line, NUL terminated, if it is shorter than cap and has no NUL. */
static bool first_line(const uint8_t *data, size_t size, char *out, size_t cap)
{
	const uint8_t *nl = memchr(data, '\n', size);
	size_t n = nl ? (size_t)(nl - data) : size;
	if (n >= cap || memchr(data, '\0', n))
		return false;
	memcpy(out, data, n);
	out[n] = '\0';
	return true;
}

static void check_first_entry(const struct vp_revoke *r, const uint8_t *data, size_t size)
{
	char line[256] = ""; /* zeroed: the analyzer cannot see first_line's memcpy */
	if (!first_line(data, size, line, sizeof(line)))
		return;
	uint8_t id[VEIL_CREDENTIAL_ID_BYTES];
	size_t n = 0;
	/* 32 characters that decode to 16 bytes are 32 hex digits. */
	if (!strncmp(line, "credential ", 11) && strlen(line + 11) == 2 * VEIL_CREDENTIAL_ID_BYTES &&
	    sodium_hex2bin(id, sizeof(id), line + 11, 2 * VEIL_CREDENTIAL_ID_BYTES, NULL, &n, NULL) == 0 &&
	    n == sizeof(id)) {
		if (!vp_revoke__credential(r, id))
			abort();
	} else if (!strncmp(line, "client ", 7) && line[7] && !strpbrk(line + 7, " \t\r")) {
		if (!vp_revoke__client(r, line + 7))
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_memfile_put(data, size);
	struct vp_revoke *r = NULL;
	char err[512];
	if (vp_revoke__load(mem_path, &r, err, sizeof(err)) == VEIL_OK) {
		if (!r)
			abort();
		check_first_entry(r, data, size);
		static const uint8_t zero[VEIL_CREDENTIAL_ID_BYTES] = { 0 };
		(void)vp_revoke__credential(r, zero);
		(void)vp_revoke__client(r, "sensor-1");
		vp_revoke__free(&r);
	} else if (r) {
		abort(); /* a failed load must not hand out a list */
	}
	return 0;
}
