/*
 * Shared pieces of the libFuzzer targets: the fixed test identities of
 * tests/vectors/core.txt (docs/PROTOCOL.md section 9), a fixed clock, and the
 * libFuzzer entry point prototypes (declared here so -Wmissing-prototypes
 * stays quiet). Header-only; every target is one translation unit.
 */
#ifndef VEIL_FUZZ_COMMON_H
#define VEIL_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <sodium.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Authority public key of the vectors (seed bytes 32..63). */
static const uint8_t fuzz_authority_pk[32] = {
	0x29, 0xac, 0xba, 0xe1, 0x41, 0xbc, 0xca, 0xf0, 0xb2, 0x2e, 0x1a, 0x94, 0xd3, 0x4d, 0x0b, 0xc7,
	0x36, 0x1e, 0x52, 0x6d, 0x0b, 0xfe, 0x12, 0xc8, 0x97, 0x94, 0xbc, 0x93, 0x22, 0x96, 0x6d, 0xd7,
};
/* Device public key of the vectors (seed bytes 0..31). */
static const uint8_t fuzz_device_pk[32] = {
	0x03, 0xa1, 0x07, 0xbf, 0xf3, 0xce, 0x10, 0xbe, 0x1d, 0x70, 0xdd, 0x18, 0xe7, 0x4b, 0xc0, 0x99,
	0x67, 0xe4, 0xd6, 0x30, 0x9b, 0xa5, 0x0d, 0x5f, 0x1d, 0xdc, 0x86, 0x64, 0x12, 0x55, 0x31, 0xb8,
};
/* A fixed "now" inside the vector credential's validity and the token window:
 * the token of the vectors is stamped 1700000100. Fixed so runs are deterministic. */
#define FUZZ_NOW 1700000200ULL

/* sodium_init once; abort if the library cannot start (nothing to fuzz then). */
static inline void fuzz_sodium_init(void)
{
	if (sodium_init() < 0)
		abort();
}

#endif
