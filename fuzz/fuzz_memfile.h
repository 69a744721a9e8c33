/* Needs _GNU_SOURCE (memfd_create), defined by the including target first. */
#ifndef VEIL_FUZZ_MEMFILE_H
#define VEIL_FUZZ_MEMFILE_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
/*
 * For parsers that read from a path: the input goes into one in-memory file
 * (memfd: no disk I/O, nothing left behind), loaded through
 * /proc/self/fd/N. fuzz_memfile_init once (LLVMFuzzerInitialize), then
 * fuzz_memfile_put per input; both return the path to load.
 */
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static int fuzz_memfd = -1;
static char fuzz_mem_path[64];

static inline const char *fuzz_memfile_init(const char *name)
{
	fuzz_memfd = memfd_create(name, MFD_CLOEXEC);
	if (fuzz_memfd < 0)
		abort();
	snprintf(fuzz_mem_path, sizeof(fuzz_mem_path), "/proc/self/fd/%d", fuzz_memfd);
	return fuzz_mem_path;
}

/* The same for loaders of secret files, which refuse a file others may
 * read: the memfd is made mode 0600. */
static inline const char *fuzz_memfile_init_0600(const char *name)
{
	const char *p = fuzz_memfile_init(name);
	if (fchmod(fuzz_memfd, 0600) != 0)
		abort();
	return p;
}

static inline const char *fuzz_memfile_put(const uint8_t *data, size_t size)
{
	if (ftruncate(fuzz_memfd, 0) != 0)
		abort();
	size_t off = 0;
	while (off < size) {
		ssize_t w = pwrite(fuzz_memfd, data + off, size - off, (off_t)off);
		if (w <= 0)
			abort();
		off += (size_t)w;
	}
	return fuzz_mem_path;
}

#endif
