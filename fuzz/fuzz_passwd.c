/*
 * libFuzzer target: the plugin's Argon2id password file parser
 * (plugin/passwd.c with file.c, the core's file and line readers and
 * core/names.c). vp_passwd__load reads
 * from a path, so the input is written to an in-memory file (memfd) and
 * loaded through /proc/self/fd/N. A file that loads is queried for fixed
 * users and for the user named on its first line; a user that is found must
 * have an Argon2id hash string. No hash is verified (that is libsodium's
 * Argon2 at 64 MiB a try: it would stop the fuzzer, and it is not our parser).
 * Seeds: fuzz/corpus/passwd.
 */
#define _GNU_SOURCE
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "passwd.h"
#include "veil/error.h"

#include "fuzz_common.h"
#include "fuzz_memfile.h"

static const char *mem_path;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_sodium_init();
	mem_path = fuzz_memfile_init("veil-fuzz-passwd");
	return 0;
}

static void lookup(const struct vp_passwd *p, const char *user)
{
	const char *h = vp_passwd__hash(p, user);
	if (h && strncmp(h, "$argon2id$", 10) != 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_memfile_put(data, size);
	struct vp_passwd *p = NULL;
	char err[512];
	if (vp_passwd__load(mem_path, &p, err, sizeof(err)) == VEIL_OK) {
		if (!p)
			abort();
		lookup(p, "alice");
		lookup(p, "");
		char user[128];
		size_t k = 0;
		while (k < size && k + 1 < sizeof(user) && data[k] != ':' && data[k] != '\n' && data[k] != '\0') {
			user[k] = (char)data[k];
			k++;
		}
		user[k] = '\0';
		lookup(p, user);
		(void)vp_passwd__count(p);
		vp_passwd__free(&p);
	} else if (p) {
		abort(); /* a failed load must not hand out a table */
	}
	return 0;
}
