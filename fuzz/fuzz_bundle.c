/*
 * libFuzzer target: the key service's formats (core/bundle.c, docs/PROTOCOL.md
 * sections 11-13). The raw input is taken as a device message (parse; keyd's
 * verify for client id `sensor-1` and for the client id its own credential
 * claims), as a bundle (parse; the device's verify-and-open with the vector
 * device credential and two receive keys it holds, with and without a
 * required nonce echo) and as a revocation statement (parse, verify, every
 * entry). Keys and credentials are the vectors' (section 9), made once at
 * start from their seeds; the clock is fixed.
 * Checked: views stay inside the input; verify and open imply parse; opened
 * grants obey section 12's rules; whatever verifies under the vector keys is
 * rebuilt byte for byte by the builders (deterministic Ed25519; for bundles
 * when the ephemeral key is the vectors'). Seeds: fuzz/corpus/bundle (the
 * request, acknowledgement, bundle and revocation statement vectors).
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "veil/identity.h"

#include "../core/bundle.h"
#include "../core/internal.h"
#include "fuzz_common.h"

#define WINDOW 3600U /* the vector messages are stamped 1700000300 and 1700000400 */

static struct veil_identity *device, *keyd;
static uint8_t dev_cred[VEIL_CREDENTIAL_MAX], keyd_cred[VEIL_CREDENTIAL_MAX];
static size_t dev_cred_len, keyd_cred_len;
static struct veil_credential dev_parsed;
static struct veil__rxkey *rx[2];
static uint8_t eph_seed[VEIL__X25519_BYTES], eph_pk[VEIL__X25519_BYTES];
static const uint8_t request_nonce[VEIL__DEVMSG_NONCE_BYTES] = {
	0x51, 0x51, 0x51, 0x51, 0x51, 0x51, 0x51, 0x51, 0x51, 0x51, 0x51, 0x51, 0x51, 0x51, 0x51, 0x51,
};

static void seed_range(uint8_t *out, size_t n, unsigned first)
{
	for (size_t i = 0; i < n; i++)
		out[i] = (uint8_t)(first + i);
}

static void issue(const struct veil_identity *auth, const struct veil_identity *who, uint8_t id_byte0, bool range,
                  const char *cid, const char *roles, uint8_t *out, size_t *len)
{
	struct veil_credential c;
	memset(&c, 0, sizeof(c));
	if (range)
		seed_range(c.id, sizeof(c.id), id_byte0);
	else
		memset(c.id, id_byte0, sizeof(c.id));
	c.issued_at = 1700000000;
	c.expires_at = 4102444800ULL;
	veil_identity_public(who, c.device_pk);
	snprintf(c.client_id, sizeof(c.client_id), "%s", cid);
	snprintf(c.roles, sizeof(c.roles), "%s", roles);
	if (veil__credential_issue_id(auth, &c, out, VEIL_CREDENTIAL_MAX, len) != VEIL_OK)
		abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_sodium_init();
	uint8_t seed[32];
	struct veil_identity *auth = NULL;
	seed_range(seed, 32, 32);
	if (veil_identity_from_seed(seed, &auth) != VEIL_OK)
		abort();
	seed_range(seed, 32, 0);
	if (veil_identity_from_seed(seed, &device) != VEIL_OK)
		abort();
	seed_range(seed, 32, 96);
	if (veil_identity_from_seed(seed, &keyd) != VEIL_OK)
		abort();
	issue(auth, device, 0xa0, true, "sensor-1", "sensor,eu", dev_cred, &dev_cred_len);
	issue(auth, keyd, 0x4b, false, "veil-keyd", "veil-keyd", keyd_cred, &keyd_cred_len);
	veil_identity_free(&auth);
	if (veil_credential_parse(dev_cred, dev_cred_len, &dev_parsed) != VEIL_OK)
		abort();
	seed_range(seed, 32, 128);
	memset(eph_seed, 0xa5, sizeof(eph_seed)); /* the next receive key of the vectors */
	if (veil__rxkey_from_secret(seed, &rx[0]) != VEIL_OK || veil__rxkey_from_secret(eph_seed, &rx[1]) != VEIL_OK)
		abort();
	seed_range(eph_seed, sizeof(eph_seed), 224);
	crypto_scalarmult_base(eph_pk, eph_seed);
	return 0;
}

static void inside(const uint8_t *p, size_t n, const uint8_t *q, size_t len)
{
	if (!q || q < p || len > n || q > p + n - len)
		abort();
}

/* Revokes credential ids starting with 0xff: the REVOKED path, deterministically. */
static bool revoked(const struct veil_credential *c, void *ctx)
{
	(void)ctx;
	return c->id[0] == 0xff;
}

static struct veil__trust trust(void)
{
	return (struct veil__trust){ .authorities = &fuzz_authority_pk, .n_authorities = 1, .now = FUZZ_NOW,
		                     .revoked = revoked };
}

static void as_devmsg(const uint8_t *p, size_t n)
{
	struct veil__devmsg m, v;
	bool parsed = veil__devmsg_parse(p, n, &m) == VEIL_OK;
	if (parsed) {
		inside(p, n, m.credential, m.credential_len);
		if (n != veil__devmsg_len(m.credential_len) || (m.kind != VEIL__KIND_REQUEST && m.kind != VEIL__KIND_ACK))
			abort();
	}
	struct veil__trust t = trust();
	if (veil__devmsg_verify(p, n, "sensor-1", &t, WINDOW, &v) == VEIL_OK) {
		if (!parsed || strcmp(v.cred.client_id, "sensor-1") != 0)
			abort();
		if (v.credential_len == dev_cred_len && memcmp(v.credential, dev_cred, dev_cred_len) == 0) {
			struct veil__devmsg_params bp = { .device = device, .credential = dev_cred,
				                          .credential_len = dev_cred_len, .client_id = "sensor-1",
				                          .kind = v.kind, .timestamp = v.timestamp, .nonce = v.nonce,
				                          .receive_pk = v.receive_pk, .version = v.version };
			uint8_t out[VEIL__DEVMSG_MAX];
			size_t len = 0;
			if (veil__devmsg_build(&bp, out, sizeof(out), &len) != VEIL_OK || len != n || memcmp(out, p, n) != 0)
				abort();
		}
	}
	if (parsed && veil__devmsg_verify(p, n, m.cred.client_id, &t, WINDOW, &v) == VEIL_OK &&
	    strcmp(v.cred.client_id, m.cred.client_id) != 0)
		abort();
}

static void check_grants(const struct veil__grants *g)
{
	for (size_t i = 0; i < g->n; i++) {
		const struct veil__grant *x = &g->g[i];
		size_t sl = strnlen(x->scope, sizeof(x->scope));
		if (sl == 0 || sl == sizeof(x->scope) || x->key_id < VEIL__GRANT_KEY_ID_MIN ||
		    (x->flags & ~VEIL__GRANT_FLAGS) || x->send_from > x->send_until || x->send_until > x->accept_until)
			abort();
	}
}

/* An opened bundle sealed with the vectors' ephemeral key is rebuilt exactly. */
static void rebuild_bundle(const uint8_t *p, size_t n, const struct veil__bundle_view *v,
                           const struct veil__grants *g)
{
	if (memcmp(v->eph_pk, eph_pk, sizeof(eph_pk)) != 0 || v->credential_len != keyd_cred_len ||
	    memcmp(v->credential, keyd_cred, keyd_cred_len) != 0)
		return;
	struct veil__bundle_params bp = {
		.keyd = keyd, .credential = keyd_cred, .credential_len = keyd_cred_len,
		.recipient_cred_id = dev_parsed.id, .recipient_sender_id = v->sender_id,
		.recipient_client_id = dev_parsed.client_id, .receive_pk = v->receive_pk, .echo_nonce = v->echo_nonce,
		.version = v->version, .grants = g->g, .n_grants = g->n,
	};
	uint8_t *out = malloc(n ? n : 1);
	size_t len = 0;
	if (!out || veil__bundle_build_det(&bp, eph_seed, v->xnonce, out, n, &len) != VEIL_OK || len != n ||
	    memcmp(out, p, n) != 0)
		abort();
	free(out);
}

static void as_bundle(const uint8_t *p, size_t n)
{
	struct veil__bundle_view v;
	bool parsed = veil__bundle_parse(p, n, &v) == VEIL_OK;
	if (parsed) {
		inside(p, n, v.client_id, v.client_id_len);
		inside(p, n, v.ciphertext, v.ciphertext_len);
		inside(p, n, v.credential, v.credential_len);
		inside(p, n, v.signature, VEIL_SIG_BYTES);
		if (v.ciphertext_len < 2U + VEIL_TAG_BYTES || v.client_id_len == 0 || v.client_id_len > VEIL_CLIENT_ID_MAX)
			abort();
	}
	struct veil__trust t = trust();
	for (int echo = 0; echo < 2; echo++) {
		struct veil__bundle_self self = { .cred = &dev_parsed, .rxkeys = rx, .n_rxkeys = 2,
			                          .echo_nonce = echo ? request_nonce : NULL };
		struct veil__grants *g = NULL;
		size_t idx = 0;
		int rc = veil__bundle_open(p, n, &t, &self, &v, &idx, &g);
		if (rc != VEIL_OK) {
			if (g)
				abort(); /* nothing handed out on failure */
			continue;
		}
		if (!parsed || !g || idx > 1 || g->n > VEIL__GRANTS_MAX)
			abort();
		check_grants(g);
		rebuild_bundle(p, n, &v, g);
		veil__grants_free(&g);
	}
}

static void as_revstmt(const uint8_t *p, size_t n)
{
	struct veil__revstmt_view v;
	bool parsed = veil__revstmt_parse(p, n, &v) == VEIL_OK;
	if (parsed) {
		inside(p, n, v.credential, v.credential_len);
		if (n != veil__revstmt_len(v.n_entries, v.credential_len))
			abort();
		for (size_t i = 0; i < v.n_entries; i++) {
			struct veil__rev_entry e;
			veil__revstmt_entry(&v, i, &e);
			if (e.kind != VEIL__REV_CREDENTIAL && e.kind != VEIL__REV_SENDER)
				abort();
		}
	}
	struct veil__trust t = trust();
	if (veil__revstmt_verify(p, n, &t, &v) != VEIL_OK)
		return;
	if (!parsed)
		abort();
	if (v.credential_len != keyd_cred_len || memcmp(v.credential, keyd_cred, keyd_cred_len) != 0)
		return;
	struct veil__rev_entry *e = malloc((v.n_entries ? v.n_entries : 1) * sizeof(*e));
	uint8_t *out = malloc(n ? n : 1);
	if (!e || !out)
		abort();
	for (size_t i = 0; i < v.n_entries; i++)
		veil__revstmt_entry(&v, i, &e[i]);
	struct veil__revstmt_params rp = { .keyd = keyd, .credential = keyd_cred, .credential_len = keyd_cred_len,
		                           .version = v.version, .issued_at = v.issued_at, .entries = e,
		                           .n_entries = v.n_entries };
	size_t len = 0;
	if (veil__revstmt_build(&rp, out, n, &len) != VEIL_OK || len != n || memcmp(out, p, n) != 0)
		abort();
	free(out);
	free(e);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* An exact-size heap copy, so ASan catches any read past the input. */
	uint8_t *copy = malloc(size ? size : 1);
	if (!copy)
		abort();
	if (size)
		memcpy(copy, data, size);
	as_devmsg(copy, size);
	as_bundle(copy, size);
	as_revstmt(copy, size);
	free(copy);
	return 0;
}
