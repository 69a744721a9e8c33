/*
 * libFuzzer target: the client config file parser (client-shim/config.c,
 * shared by libveil and the preload). veil_config_load reads from a path and
 * keeps its parser static, so the input is written to an in-memory file
 * (memfd, no disk I/O, nothing left behind) and loaded through
 * /proc/self/fd/N. A config that loads must have valid enum values; every
 * outcome is freed with veil_config_free (also after a failed load, as its
 * contract allows). Seeds: fuzz/corpus/config.
 */
#define _GNU_SOURCE
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config.h"
#include "veil/error.h"

#include "fuzz_common.h"
#include "fuzz_memfile.h"

static const char *mem_path;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_sodium_init();
	mem_path = fuzz_memfile_init("veil-fuzz-config");
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_memfile_put(data, size);
	struct veil_config c;
	char err[512];
	if (veil_config_load(mem_path, &c, err, sizeof(err)) == VEIL_OK) {
		if ((unsigned)c.auth > VEIL_CONFIG_AUTH_NONE || (unsigned)c.sign > VEIL_CONFIG_SIGN_ALWAYS ||
		    (unsigned)c.log > VEIL_CONFIG_LOG_NONE)
			abort();
		(void)veil_config_auth_name(c.auth);
	}
	veil_config_free(&c);
	return 0;
}
