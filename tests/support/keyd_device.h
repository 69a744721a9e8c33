/*
 * A key-service device for tests, made with core/bundle.c only (no
 * libveil): it signs requests and acknowledgements with a fresh receive
 * key each, keeps the receive secrets, and opens bundles as section 12 of
 * docs/PROTOCOL.md says (its own authorities, held version, nonce echo
 * when it has none). Used by keyd's unit tests and the broker test.
 */
#ifndef VEIL_TEST_KEYD_DEVICE_H
#define VEIL_TEST_KEYD_DEVICE_H

#include <stddef.h>
#include <stdint.h>

#include "veil/identity.h"
#include "../../core/bundle.h"

#define TEST_KD_RX_MAX 64

struct test_kd_device {
	struct veil_identity *id;
	uint8_t cred[VEIL_CREDENTIAL_MAX];
	size_t cred_len;
	struct veil_credential c;
	struct veil__rxkey *rx[TEST_KD_RX_MAX]; /* receive keys it holds, oldest first */
	size_t n_rx;
	uint8_t last_nonce[VEIL__DEVMSG_NONCE_BYTES];
	uint64_t held_version;                   /* of the bundle it applied last */
};

/* A device whose credential (signed by authority) is valid valid_s seconds. */
void test_kd_device_new(struct test_kd_device *d, const struct veil_identity *authority, const char *client_id,
                        const char *roles, int64_t valid_s);
void test_kd_device_free(struct test_kd_device *d);
/* A device message of kind (request or ack) dated ts, with a fresh receive
 * key (kept) and nonce; version as section 11 says. Returns its length. */
size_t test_kd_devmsg(struct test_kd_device *d, uint8_t kind, uint64_t ts, uint64_t version,
                      uint8_t out[VEIL__DEVMSG_MAX]);
/* Open a bundle as the device would, at unix time now, trusting one
 * authority. On success *g holds the grants (free with veil__grants_free),
 * the held version moves and the receive keys up to the one used are
 * wiped. */
int test_kd_open(struct test_kd_device *d, const uint8_t authority_pk[VEIL_PK_BYTES], uint64_t now,
                 const uint8_t *buf, size_t len, struct veil__grants **g);
/* The grant of g for scope with the highest key id, or NULL. */
const struct veil__grant *test_kd_grant(const struct veil__grants *g, const char *scope);

#endif
