/* A key-service device for tests (see keyd_device.h). */
#include "keyd_device.h"

#include <check.h>
#include <string.h>

#include <sodium.h>

#include "veil/veil.h"
#include "material.h"

void test_kd_device_new(struct test_kd_device *d, const struct veil_identity *authority, const char *client_id,
                        const char *roles, int64_t valid_s)
{
	memset(d, 0, sizeof(*d));
	ck_assert_int_eq(veil_identity_generate(&d->id), VEIL_OK);
	d->cred_len = test_credential_make(authority, d->id, client_id, roles, valid_s, d->cred);
	ck_assert_int_eq(veil_credential_parse(d->cred, d->cred_len, &d->c), VEIL_OK);
}

void test_kd_device_free(struct test_kd_device *d)
{
	for (size_t i = 0; i < d->n_rx; i++)
		veil__rxkey_free(&d->rx[i]);
	veil_identity_free(&d->id);
	sodium_memzero(d, sizeof(*d));
}

size_t test_kd_devmsg(struct test_kd_device *d, uint8_t kind, uint64_t ts, uint64_t version,
                      uint8_t out[VEIL__DEVMSG_MAX])
{
	if (d->n_rx == TEST_KD_RX_MAX) { /* drop the oldest */
		veil__rxkey_free(&d->rx[0]);
		memmove(d->rx, d->rx + 1, (TEST_KD_RX_MAX - 1) * sizeof(d->rx[0]));
		d->n_rx--;
	}
	ck_assert_int_eq(veil__rxkey_generate(&d->rx[d->n_rx]), VEIL_OK);
	randombytes_buf(d->last_nonce, sizeof(d->last_nonce));
	struct veil__devmsg_params p = { .device = d->id, .credential = d->cred, .credential_len = d->cred_len,
		                         .client_id = d->c.client_id, .kind = kind, .timestamp = ts,
		                         .nonce = d->last_nonce, .receive_pk = veil__rxkey_public(d->rx[d->n_rx]),
		                         .version = version };
	d->n_rx++;
	size_t n = 0;
	ck_assert_int_eq(veil__devmsg_build(&p, out, VEIL__DEVMSG_MAX, &n), VEIL_OK);
	return n;
}

int test_kd_open(struct test_kd_device *d, const uint8_t authority_pk[VEIL_PK_BYTES], uint64_t now,
                 const uint8_t *buf, size_t len, struct veil__grants **g)
{
	const uint8_t(*auth)[VEIL_PK_BYTES] = (const uint8_t(*)[VEIL_PK_BYTES])authority_pk;
	struct veil__trust t = { .authorities = auth, .n_authorities = 1, .now = now };
	struct veil__bundle_self self = { .cred = &d->c, .rxkeys = d->rx, .n_rxkeys = d->n_rx,
		                          .held_version = d->held_version,
		                          .echo_nonce = d->held_version ? NULL : d->last_nonce };
	size_t idx = 0;
	int rc = veil__bundle_open(buf, len, &t, &self, NULL, &idx, g);
	if (rc != VEIL_OK)
		return rc;
	struct veil__bundle_view v;
	ck_assert_int_eq(veil__bundle_parse(buf, len, &v), VEIL_OK);
	d->held_version = v.version;
	for (size_t i = 0; i <= idx; i++)
		veil__rxkey_free(&d->rx[i]);
	memmove(d->rx, d->rx + idx + 1, (d->n_rx - idx - 1) * sizeof(d->rx[0]));
	d->n_rx -= idx + 1;
	return VEIL_OK;
}

const struct veil__grant *test_kd_grant(const struct veil__grants *g, const char *scope)
{
	const struct veil__grant *best = NULL;
	for (size_t i = 0; g && i < g->n; i++)
		if (!strcmp(g->g[i].scope, scope) && (!best || g->g[i].key_id > best->key_id))
			best = &g->g[i];
	return best;
}
