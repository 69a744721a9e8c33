/*
 * Forward secrecy by epochs (issue 13, "Forward secrecy by epochs"), end to
 * end with real components (tests/support/lifecycle_fixture.h).
 *
 * Traffic across three epochs (4 s each, short so the test is), recorded
 * by an eavesdropper subscribed to everything, bundles included (the broker
 * runs without the plugin: it hands the recorder every topic, as a
 * compromised broker would keep them). At the end, once the first two
 * epochs are past their accept-until, the adversary holds:
 *   - both devices' identity keys and their entire state_dirs,
 *   - keyd's database with its -wal, -shm and -journal files, and its
 *     storage key,
 *   - the capture of all traffic (every bundle, request, statement,
 *     envelope),
 *   - the broker's persistence file.
 * It tries every 32-byte window of all of it as a topic key, and every blob
 * it can unseal with any of it: each window of keyd's files decrypted (the
 * stream alone, no tag needed) under the storage key and under every
 * identity-derived key, and every bundle opened with any window (or
 * identity-derived X25519 key) whose public key is the bundle's receive
 * key. Nothing opens an envelope of the first two epochs; the third's open
 * from the state_dir and from keyd's store (the search works), and a
 * bundle whose receive secret is planted in the data is opened (so is the
 * bundle search).
 */
#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>
#include <uthash.h>

#include "veil/veil.h"
#include "../../core/bundle.h"
#include "../../core/util.h"

#include "check_run.h"
#include "files.h"
#include "material.h"
#include "lifecycle_fixture.h"
#include "timing.h"

#define PERIOD 4

static void setup(void)
{
	struct lfx_opts o = { .no_plugin = true, .acl = "role fleet\ntopic readwrite,encrypted fleet/#\n" };
	lfx_setup(&o);
}

/* ---- what the adversary holds ---- */

struct blob {
	char name[96];
	uint8_t *p;
	size_t n;
};
static struct blob blobs[512];
static size_t n_blobs;

static void add_blob(const char *name, const uint8_t *p, size_t n)
{
	if (n < 32)
		return;
	ck_assert_uint_lt(n_blobs, sizeof(blobs) / sizeof(blobs[0]));
	struct blob *b = &blobs[n_blobs++];
	snprintf(b->name, sizeof(b->name), "%s", name);
	b->p = malloc(n);
	ck_assert_ptr_nonnull(b->p);
	memcpy(b->p, p, n);
	b->n = n;
}

/* A file, and every base64 word in it decoded (key files are text). */
static void add_file(const char *path)
{
	size_t n = 0;
	char *t = test_file_read(path, &n);
	if (!t)
		return;
	add_blob(path, (const uint8_t *)t, n);
	for (char *w = strtok(t, " \t\r\n"); w; w = strtok(NULL, " \t\r\n")) {
		uint8_t dec[4096];
		size_t got = 0;
		if (strlen(w) >= 43 && veil__b64_decode(w, strlen(w), dec, sizeof(dec), &got) == VEIL_OK)
			add_blob("base64 word", dec, got);
	}
	free(t);
}

static void add_dir(const char *dir)
{
	DIR *d = opendir(dir);
	ck_assert_ptr_nonnull(d);
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		char p[600];
		struct stat st;
		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
			add_dir(p);
		else if (S_ISREG(st.st_mode))
			add_file(p);
	}
	closedir(d);
}

/* ---- the search ---- */

/* How a candidate came: a window as it is, a window unsealed, a bundle. */
enum path { P_WINDOW, P_UNSEAL, P_BUNDLE, NPATHS };

/* One envelope per key id of interest: epochs 0 and 1 (must stay shut),
 * epoch 2 and the planted bundle's key (the controls). */
enum { T_EPOCH0, T_EPOCH1, T_EPOCH2, T_PLANTED, NTARGETS };
struct target {
	uint16_t kcv;
	char topic[128];
	uint8_t env[512];
	size_t len;
	size_t opened[NPATHS]; /* by how many candidates, per path */
};

struct seen {
	uint8_t w[32];
	UT_hash_handle hh;
};

struct search {
	struct target t[NTARGETS];
	size_t windows, unsealed, bundles_opened, candidates;
	struct seen *seen;
	uint8_t (*rx)[VEIL__X25519_BYTES]; /* every receive key of the capture */
	size_t n_rx;
};

static void try_key(struct search *s, const uint8_t k[32], enum path how)
{
	s->candidates++;
	uint16_t kcv = veil_key_check(k);
	for (int i = 0; i < NTARGETS; i++) {
		if (kcv != s->t[i].kcv)
			continue;
		struct veil_envelope_view v;
		uint8_t pt[512];
		size_t n;
		ck_assert_int_eq(veil_envelope_parse(s->t[i].env, s->t[i].len, &v), VEIL_OK);
		if (veil_envelope_open(&v, s->t[i].topic, k, pt, sizeof(pt), &n) == VEIL_OK)
			s->t[i].opened[how]++;
	}
}

/* The adversary's own reading of PROTOCOL.md section 12: the bundle's key
 * from a receive secret, its grants as candidates. */
static bool open_bundle(struct search *s, const uint8_t *buf, size_t len, const uint8_t sk[32])
{
	struct veil__bundle_view v;
	if (veil__bundle_parse(buf, len, &v) != VEIL_OK)
		return false;
	uint8_t shared[32], k[32];
	if (crypto_scalarmult(shared, sk, v.eph_pk) != 0)
		return false;
	crypto_generichash_state st;
	crypto_generichash_init(&st, NULL, 0, 32);
	crypto_generichash_update(&st, (const uint8_t *)"veil-bundle-key-v1", 18);
	crypto_generichash_update(&st, shared, 32);
	crypto_generichash_update(&st, v.eph_pk, 32);
	crypto_generichash_update(&st, v.receive_pk, 32);
	crypto_generichash_final(&st, k, 32);
	uint8_t *pt = malloc(v.ciphertext_len);
	ck_assert_ptr_nonnull(pt);
	unsigned long long n = 0;
	bool ok = crypto_aead_xchacha20poly1305_ietf_decrypt(pt, &n, NULL, v.ciphertext, v.ciphertext_len, buf,
	                                                       (size_t)(v.ciphertext - buf), v.xnonce, k) == 0;
	struct veil__grants *g = NULL;
	if (ok && veil__grants_parse(pt, (size_t)n, &g) == VEIL_OK) {
		s->bundles_opened++;
		for (size_t i = 0; i < g->n; i++)
			try_key(s, g->g[i].key, P_BUNDLE);
		veil__grants_free(&g);
	}
	sodium_memzero(pt, v.ciphertext_len);
	free(pt);
	return ok;
}

/* w as an X25519 secret: does it own a receive key of the capture? */
static void try_receive_secret(struct search *s, const uint8_t w[32], const struct lfx_cap_msg *const *bundles,
                               size_t n_bundles)
{
	uint8_t pk[32];
	if (crypto_scalarmult_base(pk, w) != 0)
		return;
	for (size_t i = 0; i < s->n_rx; i++) {
		if (sodium_memcmp(pk, s->rx[i], 32) != 0)
			continue;
		for (size_t b = 0; b < n_bundles; b++)
			open_bundle(s, bundles[b]->payload, bundles[b]->len, w);
	}
}

/* Every window of every blob: as a topic key; unsealed (the XChaCha20
 * stream of a sealed row, counter 1, no tag needed) with each unsealing
 * key; as a receive secret (once per distinct window). */
static void search_all(struct search *s, const uint8_t (*unseal)[32], size_t n_unseal,
                       const struct lfx_cap_msg *const *bundles, size_t n_bundles)
{
	for (size_t b = 0; b < n_blobs; b++) {
		const uint8_t *p = blobs[b].p;
		for (size_t o = 0; o + 32 <= blobs[b].n; o++) {
			s->windows++;
			try_key(s, p + o, P_WINDOW);
			for (size_t u = 0; u < n_unseal && o + 24 + 32 <= blobs[b].n; u++) {
				uint8_t k[32];
				crypto_stream_xchacha20_xor_ic(k, p + o + 24, 32, p + o, 1, unseal[u]);
				s->unsealed++;
				try_key(s, k, P_UNSEAL);
			}
			struct seen *e = NULL;
			HASH_FIND(hh, s->seen, p + o, 32, e);
			if (e)
				continue;
			e = malloc(sizeof(*e));
			ck_assert_ptr_nonnull(e);
			memcpy(e->w, p + o, 32);
			HASH_ADD(hh, s->seen, w, 32, e);
			try_receive_secret(s, p + o, bundles, n_bundles);
		}
	}
}

static void search_free(struct search *s)
{
	struct seen *e, *tmp;
	HASH_ITER(hh, s->seen, e, tmp) {
		HASH_DEL(s->seen, e);
		free(e);
	}
	free(s->rx);
}

/* A bundle (from a throwaway keyd) to receive key rx granting key, and an
 * envelope under key as target t. */
static void plant(struct lfx_cap_msg *m, const uint8_t rx[32], const uint8_t key[32], struct target *t)
{
	struct veil_identity *kid = NULL;
	ck_assert_int_eq(veil_identity_generate(&kid), VEIL_OK);
	uint8_t cred[VEIL_CREDENTIAL_MAX], cid[VEIL_CREDENTIAL_ID_BYTES] = { 1 }, sid[VEIL_SENDER_ID_BYTES] = { 2 };
	uint8_t nonce[VEIL__DEVMSG_NONCE_BYTES] = { 3 };
	size_t cl = test_credential_make(lfx.auth[0], kid, "veil-keyd", "veil-keyd", 86400, cred);
	struct veil__grant g = { .scope = "planted/#", .key_id = 0xFFFFFFF0U, .send_from = 1, .send_until = 2,
		                 .accept_until = 3 };
	memcpy(g.key, key, 32);
	struct veil__bundle_params bp = { .keyd = kid, .credential = cred, .credential_len = cl,
		                          .recipient_cred_id = cid, .recipient_sender_id = sid,
		                          .recipient_client_id = "planted", .receive_pk = rx, .echo_nonce = nonce,
		                          .version = 1, .grants = &g, .n_grants = 1 };
	m->len = veil__bundle_len(&bp);
	m->payload = malloc(m->len);
	ck_assert_ptr_nonnull(m->payload);
	ck_assert_int_eq(veil__bundle_build(&bp, m->payload, m->len, &m->len), VEIL_OK);
	veil_identity_free(&kid);
	struct veil_seal_params sp = { .key = key, .key_id = g.key_id, .seq = 1 };
	snprintf(t->topic, sizeof(t->topic), "planted/t");
	ck_assert_int_eq(veil_envelope_seal(&sp, t->topic, (const uint8_t *)"control", 7, t->env, sizeof(t->env),
	                                    &t->len), VEIL_OK);
	t->kcv = veil_key_check(key);
}

/* ---- the scenario ---- */

static void wait_file_lacks(const char *path, const struct lfx_keyset *gone)
{
	bool ok = VEIL_WAIT_UNTIL(({
		struct lfx_keyset now = { 0 };
		lfx_keys_file(path, &now, NULL);
		bool any = false;
		for (size_t i = 0; i < gone->n; i++)
			any = any || lfx_keyset_find(&now, gone->k[i].key_id);
		!any;
	}), 15000);
	ck_assert_msg(ok, "%s still holds an expired epoch", path);
}

START_TEST(nothing_opens_past_epochs)
{
	struct lfx_keyd k;
	lfx_keyd_new(&k, "keyd", "token_window 2\nrekey_grace 2\nscope fleet/# period 4 lead 4 grace 4 depth 0\n");
	lfx_keyd_start(&k, NULL);
	const char *filters[] = { "#", "$veil/#" };
	struct lfx_cap *cap = lfx_cap_start("recorder", NULL, filters, 2);
	struct lfx_dev_opts o = { .roles = "fleet" };
	struct lfx_dev *snd = lfx_dev_new("sender", &o), *rcv = lfx_dev_new("receiver", &o);
	ck_assert_int_eq(lfx_dev_connect(snd), VEIL_OK);
	ck_assert_int_eq(lfx_dev_connect(rcv), VEIL_OK);
	ck_assert_int_eq(lfx_dev_sub(rcv, "fleet/#"), VEIL_OK);
	/* Traffic in three epochs: keyd grants each next epoch as the current
	 * one starts (lead = period, depth 0), so each bundle the sender
	 * applies marks a new epoch: three messages after each, checked at the
	 * receiver with the key id they came under. */
	uint32_t ids[8];
	size_t n_ids = 0;
	int sent = 0;
	for (size_t bundles_seen = 1; n_ids < 3 && bundles_seen < 8; bundles_seen++) {
		ck_assert_msg(lfx_dev_wait_applied(snd, bundles_seen, 3 * PERIOD * 1000), "no bundle %zu", bundles_seen);
		for (int i = 0; i < 3; i++) {
			char pt[32];
			snprintf(pt, sizeof(pt), "m-%d", sent++);
			ck_assert_int_eq(lfx_dev_pub(snd, "fleet/t", pt), VEIL_OK);
			ck_assert(lfx_dev_wait_msg(rcv, pt, 10000));
			uint32_t kid = lfx_dev_msg(rcv, lfx_dev_n_msgs(rcv) - 1).key_id;
			if (!n_ids || ids[n_ids - 1] != kid)
				ids[n_ids++] = kid;
		}
	}
	ck_assert_uint_eq(n_ids, 3);
	/* The first two epochs pass their accept-until: keyd purges them and
	 * both devices rewrite their keys files without them. */
	struct lfx_keyset past = { 0 }, ever;
	lfx_dev_ever(rcv, &ever);
	for (int i = 0; i < 2; i++) {
		const struct lfx_key *e = lfx_keyset_find(&ever, ids[i]);
		ck_assert_ptr_nonnull(e);
		past.k[past.n++] = *e;
	}
	lfx_keyd_wait(&k, "epoch | purge | deleted=", 2, 3 * PERIOD * 1000);
	char keys[400];
	snprintf(keys, sizeof(keys), "%s/keys", lfx_dev_state(rcv));
	wait_file_lacks(keys, &past);
	snprintf(keys, sizeof(keys), "%s/keys", lfx_dev_state(snd));
	wait_file_lacks(keys, &past);
	/* What the adversary takes: every file of the test dir while keyd
	 * runs: its database with the -wal and -shm (-journal: none in WAL
	 * mode) and storage key, both identities, both state_dirs, configs. */
	char wal[400];
	snprintf(wal, sizeof(wal), "%s-wal", k.db);
	ck_assert_msg(access(wal, F_OK) == 0, "keyd runs without a WAL?");
	add_dir(lfx.dir);
	/* The capture: envelopes of each epoch as targets, bundles, receive keys. */
	struct search s;
	memset(&s, 0, sizeof(s));
	const struct lfx_cap_msg **bundles = calloc(lfx_cap_n(cap) + 1, sizeof(*bundles));
	ck_assert_ptr_nonnull(bundles);
	s.rx = calloc(lfx_cap_n(cap) + 1, VEIL__X25519_BYTES);
	ck_assert_ptr_nonnull(s.rx);
	size_t n_bundles = 0;
	for (size_t i = 0; i < lfx_cap_n(cap); i++) {
		const struct lfx_cap_msg *m = lfx_cap_get(cap, i);
		add_blob("captured", m->payload, m->len);
		struct veil__bundle_view bv;
		struct veil__devmsg dm;
		struct veil_envelope_view ev;
		if (!strncmp(m->topic, VEIL__TOPIC_BUNDLE_PREFIX, strlen(VEIL__TOPIC_BUNDLE_PREFIX)) &&
		    veil__bundle_parse(m->payload, m->len, &bv) == VEIL_OK) {
			bundles[n_bundles++] = m;
			memcpy(s.rx[s.n_rx++], bv.receive_pk, VEIL__X25519_BYTES);
		} else if (!strncmp(m->topic, VEIL__TOPIC_REQ_PREFIX, strlen(VEIL__TOPIC_REQ_PREFIX)) &&
		           veil__devmsg_parse(m->payload, m->len, &dm) == VEIL_OK) {
			memcpy(s.rx[s.n_rx++], dm.receive_pk, VEIL__X25519_BYTES);
		} else if (!strncmp(m->topic, "fleet/", 6) && veil_envelope_parse(m->payload, m->len, &ev) == VEIL_OK) {
			for (int e = 0; e < 3; e++) {
				if (ev.h.key_id != ids[e] || s.t[e].len)
					continue;
				s.t[e].kcv = ev.h.kcv;
				snprintf(s.t[e].topic, sizeof(s.t[e].topic), "%s", m->topic);
				ck_assert_uint_le(m->len, sizeof(s.t[e].env));
				memcpy(s.t[e].env, m->payload, m->len);
				s.t[e].len = m->len;
			}
		}
	}
	for (int e = 0; e < 3; e++)
		ck_assert_msg(s.t[e].len, "no envelope of epoch %d recorded", e);
	ck_assert_uint_gt(n_bundles, 2);
	/* Stop everything; the broker writes its persistence file. (The
	 * recorder's messages stay until the end: bundles[] points into them.) */
	lfx_dev_free(snd);
	lfx_dev_free(rcv);
	lfx_keyd_stop(&k);
	ck_assert_int_eq(test_broker_stop(&lfx.broker), 0);
	char pers[400];
	snprintf(pers, sizeof(pers), "%s/mosquitto.db", lfx.broker.dir);
	ck_assert_msg(access(pers, F_OK) == 0, "no persistence file");
	add_file(pers);
	/* A control for the bundle search: a bundle to a receive key whose
	 * secret is planted among the data, granting a key that seals one
	 * envelope. */
	uint8_t psk[32], ppk[32], pkey[32];
	randombytes_buf(psk, sizeof(psk));
	ck_assert_int_eq(crypto_scalarmult_base(ppk, psk), 0);
	randombytes_buf(pkey, sizeof(pkey));
	add_blob("planted", psk, sizeof(psk));
	memcpy(s.rx[s.n_rx++], ppk, 32);
	struct lfx_cap_msg planted = { .topic = "planted" };
	plant(&planted, ppk, pkey, &s.t[T_PLANTED]);
	bundles[n_bundles++] = &planted;
	/* Unsealing keys: the storage key and every identity-derived key (a
	 * window of a decoded word as Ed25519 seed, as X25519 secret). */
	uint8_t (*unseal)[32] = calloc(4 * n_blobs + 1, 32);
	ck_assert_ptr_nonnull(unseal);
	size_t n_unseal = 0;
	for (size_t b = 0; b < n_blobs; b++) {
		if (strcmp(blobs[b].name, "base64 word") != 0 || blobs[b].n != 32)
			continue;
		memcpy(unseal[n_unseal++], blobs[b].p, 32);
		uint8_t pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
		crypto_sign_seed_keypair(pk, sk, blobs[b].p);
		ck_assert_int_eq(crypto_sign_ed25519_sk_to_curve25519(unseal[n_unseal++], sk), 0);
		sodium_memzero(sk, sizeof(sk));
	}
	ck_assert_uint_ge(n_unseal, 6); /* storage key, two identities (x2), keyd's */
	for (size_t u = 0; u < n_unseal; u++)
		try_receive_secret(&s, unseal[u], bundles, n_bundles);
	search_all(&s, (const uint8_t(*)[32])unseal, n_unseal, bundles, n_bundles);
	printf("FIGURE forward_search windows=%zu unsealed=%zu candidates=%zu bundles=%zu bundles_opened=%zu\n",
	       s.windows, s.unsealed, s.candidates, n_bundles, s.bundles_opened);
	for (int e = T_EPOCH0; e <= T_EPOCH1; e++)
		for (int w = 0; w < NPATHS; w++)
			ck_assert_msg(s.t[e].opened[w] == 0, "an envelope of epoch %d opened with %zu candidate(s) of path %d",
			              e, s.t[e].opened[w], w);
	/* The controls: the search finds what is there. */
	ck_assert_msg(s.t[T_EPOCH2].opened[P_WINDOW] > 0, "epoch 2's key, in clear in a state_dir, not found");
	ck_assert_msg(s.t[T_EPOCH2].opened[P_UNSEAL] > 0, "epoch 2's key, sealed in keyd's store, not found");
	ck_assert_msg(s.t[T_PLANTED].opened[P_BUNDLE] > 0, "the planted bundle was not opened");
	free(unseal);
	free(bundles);
	lfx_cap_free(cap);
	free(planted.payload);
	search_free(&s);
	for (size_t b = 0; b < n_blobs; b++)
		free(blobs[b].p);
	n_blobs = 0;
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("lifecycle_forward");
	TCase *tc = veil_tcase("forward", 120);
	tcase_add_checked_fixture(tc, setup, lfx_teardown);
	tcase_add_test(tc, nothing_opens_past_epochs);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return veil_check_run(suite());
}
