/* Core internals shared across core files (not installed). */
#ifndef VEIL_CORE_INTERNAL_H
#define VEIL_CORE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "veil/identity.h"

/* Detached Ed25519 signature over the concatenation of n parts. */
struct veil__part {
	const void *p;
	size_t n;
};
int veil__identity_sign(const struct veil_identity *id, const struct veil__part *parts, size_t nparts,
                         uint8_t sig[VEIL_SIG_BYTES]);
int veil__verify(const uint8_t pk[VEIL_PK_BYTES], const struct veil__part *parts, size_t nparts,
                 const uint8_t sig[VEIL_SIG_BYTES]);

#endif
