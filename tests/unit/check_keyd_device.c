/*
 * Tests for client-shim/device.c, the key service's device side: a device
 * driven with device messages and bundles built by the core (as veil-keyd
 * builds them), its receive keys, version and nonce-echo policy, granted
 * epochs persisted and deleted after accept-until, superseded epochs kept for
 * their grace only, revocation statements kept as a union, and readiness (a
 * wait for keys that ends at the deadline, at a cancel, or when keys come;
 * growing timestamps of a request and its acknowledgement).
 */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "veil/veil.h"
#include "../../core/bundle.h"
#include "../../core/internal.h"
#include "../../client-shim/device.h"
#include "check_run.h"
#include "files.h"
#include "timing.h"

/* What the device sent and what it handed to the session. */
struct seen {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	uint8_t msg[8][VEIL__DEVMSG_MAX];
	size_t msg_len[8];
	size_t nmsg;
	uint32_t key_ids[16];
	bool may_send[16];
	size_t nkeys;
	size_t changes;
};

static struct seen S;
static char dir[256];
static struct veil_identity *authority, *device, *keyd, *rogue;
static uint8_t dcred[VEIL_CREDENTIAL_MAX], kcred[VEIL_CREDENTIAL_MAX], rcred[VEIL_CREDENTIAL_MAX];
static size_t dcred_len, kcred_len, rcred_len;
static struct veil_credential dc;
static uint8_t apk[VEIL_PK_BYTES];

static int on_send(void *ctx, const char *topic, const uint8_t *payload, size_t len)
{
	(void)ctx;
	ck_assert_str_eq(topic, "$veil/v1/req/dev-1");
	pthread_mutex_lock(&S.lock);
	if (S.nmsg < 8) {
		memcpy(S.msg[S.nmsg], payload, len);
		S.msg_len[S.nmsg++] = len;
	}
	pthread_cond_broadcast(&S.cond);
	pthread_mutex_unlock(&S.lock);
	return VEIL_OK;
}

static void on_keys(void *ctx, const struct veil__keyring_grant *g, size_t n)
{
	(void)ctx;
	pthread_mutex_lock(&S.lock);
	S.nkeys = n < 16 ? n : 16;
	for (size_t i = 0; i < S.nkeys; i++) {
		S.key_ids[i] = g[i].key_id;
		S.may_send[i] = g[i].may_send;
	}
	S.changes++;
	pthread_cond_broadcast(&S.cond);
	pthread_mutex_unlock(&S.lock);
}

static bool wait_count(const size_t *counter, size_t want, int base_ms)
{
	return veil_cond_wait_count(&S.cond, &S.lock, counter, want, base_ms);
}

static size_t issue(const struct veil_identity *by, const struct veil_identity *who, const char *cid,
                    const char *roles, uint8_t *out)
{
	struct veil_credential c = { 0 };
	veil_identity_public(who, c.device_pk);
	snprintf(c.client_id, sizeof(c.client_id), "%s", cid);
	snprintf(c.roles, sizeof(c.roles), "%s", roles);
	c.issued_at = (uint64_t)time(NULL) - 60;
	c.expires_at = (uint64_t)time(NULL) + 3600;
	size_t n = 0;
	ck_assert_int_eq(veil_credential_issue(by, &c, out, VEIL_CREDENTIAL_MAX, &n), VEIL_OK);
	return n;
}

static void setup(void)
{
	ck_assert_int_eq(veil_init(), VEIL_OK);
	memset(&S, 0, sizeof(S));
	pthread_mutex_init(&S.lock, NULL);
	veil_cond_init(&S.cond);
	ck_assert_int_eq(test_mkdtemp(dir, sizeof(dir)), 0);
	ck_assert_int_eq(veil_identity_generate(&authority), VEIL_OK);
	ck_assert_int_eq(veil_identity_generate(&device), VEIL_OK);
	ck_assert_int_eq(veil_identity_generate(&keyd), VEIL_OK);
	ck_assert_int_eq(veil_identity_generate(&rogue), VEIL_OK);
	dcred_len = issue(authority, device, "dev-1", "sensor", dcred);
	kcred_len = issue(authority, keyd, "veil-keyd", "veil-keyd", kcred);
	rcred_len = issue(authority, rogue, "not-keyd", "sensor", rcred); /* no veil-keyd role */
	ck_assert_int_eq(veil_credential_parse(dcred, dcred_len, &dc), VEIL_OK);
	veil_identity_public(authority, apk);
}

static void teardown(void)
{
	veil_identity_free(&authority);
	veil_identity_free(&device);
	veil_identity_free(&keyd);
	veil_identity_free(&rogue);
	test_rmtree(dir);
	pthread_cond_destroy(&S.cond);
	pthread_mutex_destroy(&S.lock);
}

static struct veil__device *device_up(bool persist)
{
	const uint8_t(*auths)[VEIL_PK_BYTES] = (const uint8_t(*)[VEIL_PK_BYTES])apk;
	struct veil__device_opts o = {
		.client_id = "dev-1",
		.identity = device,
		.credential = dcred,
		.credential_len = dcred_len,
		.authorities = auths,
		.n_authorities = 1,
		.state_dir = persist ? dir : NULL,
		.keys_changed = on_keys,
	};
	struct veil__device *d = NULL;
	char err[512] = "";
	ck_assert_msg(veil__device_new(&o, &d, err, sizeof(err)) == VEIL_OK, "%s", err);
	veil__device_set_send(d, on_send, NULL);
	return d;
}

/* The latest device message the device sent, parsed. */
static struct veil__devmsg last_msg(void)
{
	struct veil__devmsg m;
	pthread_mutex_lock(&S.lock);
	ck_assert_uint_gt(S.nmsg, 0);
	ck_assert_int_eq(veil__devmsg_parse(S.msg[S.nmsg - 1], S.msg_len[S.nmsg - 1], &m), VEIL_OK);
	pthread_mutex_unlock(&S.lock);
	return m;
}

static struct veil__grant grant(const char *scope, uint32_t id, uint64_t from, uint64_t until, uint64_t accept,
                                uint8_t flags, uint32_t grace)
{
	struct veil__grant g = { .key_id = id, .epoch = id & 0xff, .send_from = from, .send_until = until,
		                 .accept_until = accept, .flags = flags, .grace_s = grace };
	snprintf(g.scope, sizeof(g.scope), "%s", scope);
	memset(g.key, (int)(id & 0xff), sizeof(g.key));
	return g;
}

/* A bundle answering m (its receive key, its nonce), signed by signer. */
static size_t bundle(const struct veil__devmsg *m, const struct veil_identity *signer, const uint8_t *scred,
                     size_t scred_len, uint64_t version, const struct veil__grant *g, size_t n, uint8_t *out,
                     size_t cap)
{
	uint8_t sid[VEIL_SENDER_ID_BYTES];
	veil_sender_id(dc.device_pk, sid);
	struct veil__bundle_params p = {
		.keyd = signer,
		.credential = scred,
		.credential_len = scred_len,
		.recipient_cred_id = dc.id,
		.recipient_sender_id = sid,
		.recipient_client_id = "dev-1",
		.receive_pk = m->receive_pk,
		.echo_nonce = m->nonce,
		.version = version,
		.grants = g,
		.n_grants = n,
	};
	size_t len = 0;
	ck_assert_int_eq(veil__bundle_build(&p, out, cap, &len), VEIL_OK);
	return len;
}

START_TEST(test_request_bundle_ack)
{
	struct veil__device *d = device_up(true);
	const char *topics[2];
	ck_assert_uint_eq(veil__device_topics(d, topics), 2);
	ck_assert_str_eq(topics[0], "$veil/v1/bundle/dev-1");
	ck_assert_str_eq(topics[1], "$veil/v1/revocation");
	ck_assert(veil__device_topic(d, "$veil/v1/bundle/dev-1"));
	ck_assert(!veil__device_topic(d, "$veil/v1/bundle/dev-2"));
	ck_assert(!veil__device_has_bundle(d));
	veil__device_connected(d);
	ck_assert(wait_count(&S.nmsg, 1, 2000));
	struct veil__devmsg req = last_msg();
	ck_assert_uint_eq(req.kind, VEIL__KIND_REQUEST);
	ck_assert_uint_eq(req.version, 0);
	uint64_t now = (uint64_t)time(NULL);
	struct veil__grant g[2] = { grant("factory/dev-1/#", 0x80000001U, now - 10, now + 100, now + 400,
		                          VEIL__GRANT_MAY_SEND, 5),
		                    grant("factory/#", 0x80000002U, now - 10, now + 100, now + 400, 0, 5) };
	static uint8_t b[8192];
	size_t bl = bundle(&req, keyd, kcred, kcred_len, 1000, g, 2, b, sizeof(b));
	/* A signer without the veil-keyd role, or a tampered bundle: refused,
	 * nothing changes. */
	static uint8_t bad[8192];
	size_t badl = bundle(&req, rogue, rcred, rcred_len, 1000, g, 2, bad, sizeof(bad));
	ck_assert_int_eq(veil__device_message(d, "$veil/v1/bundle/dev-1", bad, badl), VEIL_ERR_WRONG_ROLE);
	memcpy(bad, b, bl);
	bad[bl / 2] ^= 1;
	ck_assert_int_ne(veil__device_message(d, "$veil/v1/bundle/dev-1", bad, bl), VEIL_OK);
	ck_assert_uint_eq(S.changes, 0);
	/* The real one applies: keys handed over, acknowledged with a new receive key. */
	ck_assert_int_eq(veil__device_message(d, "$veil/v1/bundle/dev-1", b, bl), VEIL_OK);
	ck_assert(veil__device_has_bundle(d));
	ck_assert_uint_eq(S.changes, 1);
	ck_assert_uint_eq(S.nkeys, 2);
	ck_assert(S.may_send[0] && !S.may_send[1]);
	ck_assert(wait_count(&S.nmsg, 2, 2000));
	struct veil__devmsg ack = last_msg();
	ck_assert_uint_eq(ack.kind, VEIL__KIND_ACK);
	ck_assert_uint_eq(ack.version, 1000);
	ck_assert_mem_ne(ack.receive_pk, req.receive_pk, 32);
	/* The same bundle again: not newer, the keys held stay. */
	ck_assert_int_eq(veil__device_message(d, "$veil/v1/bundle/dev-1", b, bl), VEIL_ERR_WRONG_RECEIVE_KEY);
	/* Nor does a bad bundle addressed to the new receive key take them away,
	 * or its version count: one from a signer without the role, one
	 * tampered, one with no grant at all from that rogue. */
	badl = bundle(&ack, rogue, rcred, rcred_len, 3000, g, 1, bad, sizeof(bad));
	ck_assert_int_eq(veil__device_message(d, "$veil/v1/bundle/dev-1", bad, badl), VEIL_ERR_WRONG_ROLE);
	badl = bundle(&ack, rogue, rcred, rcred_len, 3000, NULL, 0, bad, sizeof(bad));
	ck_assert_int_eq(veil__device_message(d, "$veil/v1/bundle/dev-1", bad, badl), VEIL_ERR_WRONG_ROLE);
	badl = bundle(&ack, keyd, kcred, kcred_len, 3000, g, 1, bad, sizeof(bad));
	bad[badl - 20] ^= 1;
	ck_assert_int_ne(veil__device_message(d, "$veil/v1/bundle/dev-1", bad, badl), VEIL_OK);
	ck_assert_uint_eq(S.changes, 1);
	ck_assert_uint_eq(S.nkeys, 2);
	char keys[300];
	snprintf(keys, sizeof(keys), "%s/keys", dir);
	uint8_t k01[32];
	memset(k01, 0x01, sizeof(k01));
	ck_assert(test_file_has_n(keys, k01, sizeof(k01)));
	struct stat st;
	ck_assert_int_eq(stat(keys, &st), 0);
	ck_assert_uint_eq(st.st_mode & 07777, 0600); /* the keys file: owner only */
	/* A newer bundle sealed to the acknowledgement's receive key applies. */
	bl = bundle(&ack, keyd, kcred, kcred_len, 2000, g, 1, b, sizeof(b));
	ck_assert_int_eq(veil__device_message(d, "$veil/v1/bundle/dev-1", b, bl), VEIL_OK);
	ck_assert_uint_eq(S.nkeys, 1);
	veil__device_free(&d);
	ck_assert_ptr_null(d);

	/* Restart: the version and keys come back from the state dir, handed
	 * over at once, and the first request says which version is held. */
	memset(&S.changes, 0, sizeof(S.changes));
	d = device_up(true);
	ck_assert(veil__device_has_bundle(d));
	size_t before = S.nmsg;
	veil__device_connected(d);
	ck_assert(wait_count(&S.nmsg, before + 1, 2000));
	ck_assert_uint_eq(last_msg().version, 2000);
	veil__device_free(&d);
}
END_TEST

/* A device with no persisted version only takes a bundle that answers its
 * own latest request: a retained old bundle cannot roll it back. */
START_TEST(test_nonce_echo_without_version)
{
	struct veil__device *d = device_up(false);
	veil__device_connected(d);
	ck_assert(wait_count(&S.nmsg, 1, 2000));
	struct veil__devmsg first = last_msg();
	veil__device_want_bundle(d); /* rate limited: no second request at once */
	veil__device_disconnected(d);
	veil__device_connected(d);
	ck_assert(wait_count(&S.nmsg, 2, 2000));
	uint64_t now = (uint64_t)time(NULL);
	struct veil__grant g = grant("a/#", 0x80000005U, now - 1, now + 10, now + 20, VEIL__GRANT_MAY_SEND, 1);
	static uint8_t b[4096];
	/* Sealed to the first request's (still held) receive key, but echoing
	 * an old nonce: refused. */
	size_t bl = bundle(&first, keyd, kcred, kcred_len, 5, &g, 1, b, sizeof(b));
	ck_assert_int_eq(veil__device_message(d, "$veil/v1/bundle/dev-1", b, bl), VEIL_ERR_NO_NONCE_ECHO);
	struct veil__devmsg latest = last_msg();
	bl = bundle(&latest, keyd, kcred, kcred_len, 5, &g, 1, b, sizeof(b));
	ck_assert_int_eq(veil__device_message(d, "$veil/v1/bundle/dev-1", b, bl), VEIL_OK);
	veil__device_free(&d);
}
END_TEST

/* Forward secrecy by epochs: an epoch past accept-until is handed over no
 * more and its key is gone from the state file; a superseded epoch stays for
 * receiving during its grace (monotonic), then goes. */
START_TEST(test_expiry_and_supersede)
{
	struct veil__device *d = device_up(true);
	veil__device_connected(d);
	ck_assert(wait_count(&S.nmsg, 1, 2000));
	uint64_t now = (uint64_t)time(NULL);
	struct veil__grant g[2] = { grant("s/#", 0x80000011U, now - 10, now + 1, now + 2, VEIL__GRANT_MAY_SEND, 1),
		                    grant("t/#", 0x80000012U, now - 10, now + 100, now + 200, VEIL__GRANT_MAY_SEND, 1) };
	static uint8_t b[4096];
	struct veil__devmsg m = last_msg();
	size_t bl = bundle(&m, keyd, kcred, kcred_len, 10, g, 2, b, sizeof(b));
	ck_assert_int_eq(veil__device_message(d, "$veil/v1/bundle/dev-1", b, bl), VEIL_OK);
	ck_assert_uint_eq(S.nkeys, 2); /* in use at once */
	/* Acknowledged once the keys file holding it is written (the keeper
	 * writes it behind the apply): the acknowledgement is the event. */
	ck_assert(wait_count(&S.nmsg, 2, 2000));
	struct veil__devmsg ack = last_msg();
	ck_assert_uint_eq(ack.kind, VEIL__KIND_ACK);
	ck_assert_uint_eq(ack.version, 10);
	char keys[300];
	snprintf(keys, sizeof(keys), "%s/keys", dir);
	uint8_t k11[32];
	memset(k11, 0x11, sizeof(k11));
	ck_assert(test_file_has_n(keys, k11, sizeof(k11)));
	/* accept-until (2 s from now) passes: the keeper drops the epoch. */
	ck_assert(wait_count(&S.changes, 2, 5000));
	ck_assert_uint_eq(S.nkeys, 1);
	ck_assert_uint_eq(S.key_ids[0], 0x80000012U);
	ck_assert(!test_file_has_n(keys, k11, sizeof(k11)));
	/* Gone for good: a message under it is refused, not held. */
	ck_assert(veil__device_gone(d, 0x80000011U));
	ck_assert(!veil__device_gone(d, 0x80000012U));
	/* A rekey supersedes 0x80000012 with a 2 s grace. */
	ck_assert(wait_count(&S.nmsg, 2, 2000));
	m = last_msg();
	struct veil__grant r = grant("t/#", 0x80000013U, now - 1, now + 100, now + 200,
	                             VEIL__GRANT_MAY_SEND | VEIL__GRANT_SUPERSEDES, 2);
	bl = bundle(&m, keyd, kcred, kcred_len, 20, &r, 1, b, sizeof(b));
	size_t changes = S.changes;
	ck_assert_int_eq(veil__device_message(d, "$veil/v1/bundle/dev-1", b, bl), VEIL_OK);
	ck_assert_uint_eq(S.changes, changes + 1);
	ck_assert_uint_eq(S.nkeys, 2);
	ck_assert_uint_eq(S.key_ids[0], 0x80000013U);
	ck_assert_uint_eq(S.key_ids[1], 0x80000012U);
	ck_assert(S.may_send[0] && !S.may_send[1]); /* the old one: receive only */
	ck_assert(!veil__device_gone(d, 0x80000012U)); /* in its grace */
	/* On disk the superseded key is gone at once, grace or not: only the
	 * memory keeps it for receiving. The acknowledgement of version 20
	 * leaves once the file is written. */
	ck_assert(wait_count(&S.nmsg, 3, 2000));
	uint8_t k12[32], k13[32];
	memset(k12, 0x12, sizeof(k12));
	memset(k13, 0x13, sizeof(k13));
	ck_assert(test_file_has_n(keys, k13, sizeof(k13)));
	ck_assert(!test_file_has_n(keys, k12, sizeof(k12)));
	ck_assert(wait_count(&S.changes, changes + 2, 5000));
	ck_assert_uint_eq(S.nkeys, 1);
	ck_assert_uint_eq(S.key_ids[0], 0x80000013U);
	ck_assert(veil__device_gone(d, 0x80000012U));
	ck_assert(!veil__device_gone(d, 0x80000013U));
	ck_assert(!veil__device_gone(d, 0x80000099U)); /* never seen: may yet come */
	/* A bundle signed by another keyd (a new or restored store may hand
	 * key ids out again): the dropped ids are forgotten. */
	ck_assert(wait_count(&S.nmsg, 3, 2000)); /* the acknowledgement of version 20 */
	m = last_msg();
	struct veil_identity *keyd2 = NULL;
	ck_assert_int_eq(veil_identity_generate(&keyd2), VEIL_OK);
	static uint8_t k2cred[VEIL_CREDENTIAL_MAX];
	size_t k2len = issue(authority, keyd2, "veil-keyd-2", "veil-keyd", k2cred);
	struct veil__grant r2 = grant("t/#", 0x80000014U, now - 1, now + 100, now + 200, VEIL__GRANT_MAY_SEND, 1);
	bl = bundle(&m, keyd2, k2cred, k2len, 30, &r2, 1, b, sizeof(b));
	ck_assert_int_eq(veil__device_message(d, "$veil/v1/bundle/dev-1", b, bl), VEIL_OK);
	ck_assert(!veil__device_gone(d, 0x80000011U));
	ck_assert(!veil__device_gone(d, 0x80000012U));
	veil_identity_free(&keyd2);
	veil__device_free(&d);
}
END_TEST

/* Write-behind of the keys file: a bundle is in use at once, but its version
 * is acknowledged only once the file holding it is written; a write that
 * fails (a non-empty directory where the file goes: rename refuses, even
 * for root) is tried again, and then acknowledged. A restart from the state
 * directory holds the acknowledged version. */
START_TEST(test_keys_write_behind)
{
	struct veil__device *d = device_up(true);
	veil__device_connected(d);
	ck_assert(wait_count(&S.nmsg, 1, 2000));
	char keys[300], blocker[320];
	snprintf(keys, sizeof(keys), "%s/keys", dir);
	snprintf(blocker, sizeof(blocker), "%s/x", keys);
	ck_assert_int_eq(mkdir(keys, 0700), 0);
	ck_assert_int_eq(test_write_file(blocker, "x", 0600), 0);
	uint64_t now = (uint64_t)time(NULL);
	struct veil__grant g = grant("t/#", 0x80000021U, now - 10, now + 100, now + 200, VEIL__GRANT_MAY_SEND, 1);
	static uint8_t b[4096];
	struct veil__devmsg m = last_msg();
	size_t bl = bundle(&m, keyd, kcred, kcred_len, 30, &g, 1, b, sizeof(b));
	ck_assert_int_eq(veil__device_message(d, "$veil/v1/bundle/dev-1", b, bl), VEIL_OK);
	ck_assert_uint_eq(S.nkeys, 1); /* in use although not on disk */
	ck_assert_uint_eq(S.key_ids[0], 0x80000021U);
	/* Not acknowledged while it cannot be written (a retry a second). */
	ck_assert(!wait_count(&S.nmsg, 2, 1500));
	ck_assert_int_eq(remove(blocker), 0);
	ck_assert_int_eq(rmdir(keys), 0);
	ck_assert(wait_count(&S.nmsg, 2, 4000));
	struct veil__devmsg ack = last_msg();
	ck_assert_uint_eq(ack.kind, VEIL__KIND_ACK);
	ck_assert_uint_eq(ack.version, 30);
	uint8_t k21[32];
	memset(k21, 0x21, sizeof(k21));
	ck_assert(test_file_has_n(keys, k21, sizeof(k21)));
	veil__device_free(&d);
	/* Restarted: the version written is held (its requests carry it). */
	d = device_up(true);
	veil__device_connected(d);
	ck_assert(wait_count(&S.nmsg, 3, 2000));
	m = last_msg();
	ck_assert_uint_eq(m.kind, VEIL__KIND_REQUEST);
	ck_assert_uint_eq(m.version, 30);
	veil__device_free(&d);
}
END_TEST

/* Revocation statements: the union of every valid statement, kept until
 * each entry's keep-until, across restarts; a statement by a signer without
 * the role, or tampered, adds nothing. */
START_TEST(test_revocation_union)
{
	struct veil__device *d = device_up(true);
	const struct veil__revoked *rv = veil__device_revoked(d);
	uint64_t now = (uint64_t)time(NULL);
	struct veil__rev_entry e1 = { VEIL__REV_CREDENTIAL, { 1 }, now + 3600 };
	struct veil__rev_entry e2 = { VEIL__REV_SENDER, { 2 }, now + 3600 };
	static uint8_t s[4096];
	size_t sl = 0;
	struct veil__revstmt_params p = { keyd, kcred, kcred_len, 100, now, &e1, 1 };
	ck_assert_int_eq(veil__revstmt_build(&p, s, sizeof(s), &sl), VEIL_OK);
	ck_assert_int_eq(veil__device_message(d, "$veil/v1/revocation", s, sl), VEIL_OK);
	uint8_t id1[16] = { 1 }, id2[8] = { 2 };
	ck_assert(rv->credential(rv->ctx, id1));
	ck_assert(!rv->sender(rv->ctx, id2));
	/* A later statement with a smaller version and only e2 still adds e2
	 * and keeps e1. */
	p = (struct veil__revstmt_params){ keyd, kcred, kcred_len, 1, now, &e2, 1 };
	ck_assert_int_eq(veil__revstmt_build(&p, s, sizeof(s), &sl), VEIL_OK);
	ck_assert_int_eq(veil__device_message(d, "$veil/v1/revocation", s, sl), VEIL_OK);
	ck_assert(rv->credential(rv->ctx, id1));
	ck_assert(rv->sender(rv->ctx, id2));
	/* Not from a key service: refused. */
	struct veil__rev_entry e3 = { VEIL__REV_CREDENTIAL, { 3 }, now + 3600 };
	p = (struct veil__revstmt_params){ rogue, rcred, rcred_len, 200, now, &e3, 1 };
	ck_assert_int_eq(veil__revstmt_build(&p, s, sizeof(s), &sl), VEIL_OK);
	ck_assert_int_eq(veil__device_message(d, "$veil/v1/revocation", s, sl), VEIL_ERR_WRONG_ROLE);
	uint8_t id3[16] = { 3 };
	ck_assert(!rv->credential(rv->ctx, id3));
	veil__device_free(&d);
	d = device_up(true);
	rv = veil__device_revoked(d);
	ck_assert(rv->credential(rv->ctx, id1));
	ck_assert(rv->sender(rv->ctx, id2));
	veil__device_free(&d);
}
END_TEST

/* A wait for keys with a cancel flag, on another thread. */
struct waiter {
	struct veil__device *d;
	bool cancel;
	bool ready;
};

static void *wait_main(void *arg)
{
	struct waiter *w = arg;
	struct timespec until = veil__mono_after(600000); /* far beyond the test's limit */
	w->ready = veil__device_wait_ready(w->d, &until, &w->cancel);
	return NULL;
}

START_TEST(test_ready_wait_and_cancel)
{
	struct veil__device *d = device_up(true);
	ck_assert(!veil__device_ready(d));
	struct timespec soon = veil__mono_after(20);
	ck_assert(!veil__device_wait_ready(d, &soon, NULL));
	/* A cancel ends a long wait at once (veil_async_free, a lost connection). */
	struct waiter w = { d, false, true };
	pthread_t t;
	ck_assert_int_eq(pthread_create(&t, NULL, wait_main, &w), 0);
	__atomic_store_n(&w.cancel, true, __ATOMIC_RELEASE);
	veil__device_wake(d);
	ck_assert_int_eq(pthread_join(t, NULL), 0);
	ck_assert(!w.ready);
	/* A bundle with an epoch to send with now: a waiter sees it. */
	w = (struct waiter){ d, false, false };
	ck_assert_int_eq(pthread_create(&t, NULL, wait_main, &w), 0);
	veil__device_connected(d);
	ck_assert(wait_count(&S.nmsg, 1, 2000));
	struct veil__devmsg req = last_msg();
	uint64_t now = (uint64_t)time(NULL);
	struct veil__grant g[1] = { grant("factory/dev-1/#", 0x80000001U, now - 10, now + 100, now + 400,
		                          VEIL__GRANT_MAY_SEND, 5) };
	static uint8_t b[8192];
	size_t bl = bundle(&req, keyd, kcred, kcred_len, 1000, g, 1, b, sizeof(b));
	ck_assert_int_eq(veil__device_message(d, "$veil/v1/bundle/dev-1", b, bl), VEIL_OK);
	ck_assert_int_eq(pthread_join(t, NULL), 0);
	ck_assert(w.ready && veil__device_ready(d));
	/* Held messages wait the scope's grace (accept-until after send-until). */
	ck_assert_uint_eq(veil__device_hold_seconds(d), 300);
	/* The acknowledgement is never older than the request, and never ahead
	 * of the clock (keyd takes the same second; section 11, step 9). */
	ck_assert(wait_count(&S.nmsg, 2, 2000));
	ck_assert_uint_ge(last_msg().timestamp, req.timestamp);
	ck_assert_uint_le(last_msg().timestamp, (uint64_t)time(NULL));
	ck_assert(memcmp(last_msg().nonce, req.nonce, sizeof(req.nonce)) != 0);
	veil__device_free(&d);
	/* Restarted with the kept epoch, valid now: ready before any bundle. */
	d = device_up(true);
	ck_assert(veil__device_ready(d));
	veil__device_free(&d);
}
END_TEST

/* A stolen key service key could send a bundle with a huge version; once
 * the operator's new keyd revokes that credential, the device forgets the
 * version and takes the new keyd's bundle that answers its latest request
 * (issue 13's compromise drill found the device refusing it as outdated). */
START_TEST(test_revoked_signer_version_forgotten)
{
	struct veil__device *d = device_up(true);
	veil__device_connected(d);
	ck_assert(wait_count(&S.nmsg, 1, 2000));
	struct veil__devmsg req = last_msg();
	uint64_t now = (uint64_t)time(NULL);
	struct veil__grant g[1] = { grant("factory/dev-1/#", 0x80000001U, now - 10, now + 100, now + 400,
		                          VEIL__GRANT_MAY_SEND, 5) };
	static uint8_t b[8192];
	size_t bl = bundle(&req, keyd, kcred, kcred_len, UINT64_MAX / 2, g, 1, b, sizeof(b));
	ck_assert_int_eq(veil__device_message(d, "$veil/v1/bundle/dev-1", b, bl), VEIL_OK);
	ck_assert(wait_count(&S.nmsg, 2, 2000)); /* its acknowledgement */
	ck_assert_uint_eq(last_msg().kind, VEIL__KIND_ACK);
	/* The new keyd (another identity, role veil-keyd) revokes the old one. */
	struct veil_identity *keyd2 = NULL;
	ck_assert_int_eq(veil_identity_generate(&keyd2), VEIL_OK);
	static uint8_t k2cred[VEIL_CREDENTIAL_MAX];
	size_t k2len = issue(authority, keyd2, "veil-keyd-2", "veil-keyd", k2cred);
	struct veil_credential kc;
	ck_assert_int_eq(veil_credential_parse(kcred, kcred_len, &kc), VEIL_OK);
	struct veil__rev_entry e = { VEIL__REV_CREDENTIAL, { 0 }, now + 3600 };
	memcpy(e.id, kc.id, VEIL_CREDENTIAL_ID_BYTES);
	static uint8_t st[4096];
	size_t sl = 0;
	struct veil__revstmt_params p = { keyd2, k2cred, k2len, 1, now, &e, 1 };
	ck_assert_int_eq(veil__revstmt_build(&p, st, sizeof(st), &sl), VEIL_OK);
	size_t asked = S.nmsg;
	ck_assert_int_eq(veil__device_message(d, "$veil/v1/revocation", st, sl), VEIL_OK);
	/* It asks anew; the new keyd's answer, version 10, is applied. */
	ck_assert(wait_count(&S.nmsg, asked + 1, 5000));
	struct veil__devmsg req2 = last_msg();
	ck_assert_uint_eq(req2.kind, VEIL__KIND_REQUEST);
	bl = bundle(&req2, keyd2, k2cred, k2len, 10, g, 1, b, sizeof(b));
	ck_assert_int_eq(veil__device_message(d, "$veil/v1/bundle/dev-1", b, bl), VEIL_OK);
	veil__device_free(&d);
	/* Restarted: version 10 from keyd2 is what it holds, not the old one. */
	d = device_up(true);
	veil__device_connected(d);
	asked = S.nmsg;
	ck_assert(wait_count(&S.nmsg, asked + 1, 2000));
	ck_assert_uint_eq(last_msg().version, 10);
	veil__device_free(&d);
	veil_identity_free(&keyd2);
}
END_TEST

/* A send held on the keeper thread until released (the front end's Paho
 * call blocking), for the detach test. */
static bool send_entered, send_release, detached;

static int on_send_held(void *ctx, const char *topic, const uint8_t *payload, size_t len)
{
	(void)ctx;
	(void)topic;
	(void)payload;
	(void)len;
	pthread_mutex_lock(&S.lock);
	send_entered = true;
	S.nmsg++;
	pthread_cond_broadcast(&S.cond);
	struct veil_deadline until = veil_deadline_in(10000);
	while (!send_release && veil_cond_wait_until(&S.cond, &S.lock, &until))
		;
	pthread_mutex_unlock(&S.lock);
	return VEIL_OK;
}

static void *detach_main(void *arg)
{
	veil__device_set_send(arg, NULL, NULL);
	pthread_mutex_lock(&S.lock);
	detached = true;
	pthread_cond_broadcast(&S.cond);
	pthread_mutex_unlock(&S.lock);
	return NULL;
}

/* A front end detaches before it destroys its Paho handle: the detach
 * waits for a send under way on the keeper, and nothing is sent after it
 * (the CLI crashed when the keeper published on a destroyed handle). */
START_TEST(test_detach_waits_for_send)
{
	send_entered = send_release = detached = false;
	struct veil__device *d = device_up(false);
	veil__device_set_send(d, on_send_held, NULL);
	veil__device_connected(d);
	pthread_mutex_lock(&S.lock);
	struct veil_deadline until = veil_deadline_in(5000);
	while (!send_entered && veil_cond_wait_until(&S.cond, &S.lock, &until))
		;
	ck_assert(send_entered);
	pthread_mutex_unlock(&S.lock);
	pthread_t t;
	ck_assert_int_eq(pthread_create(&t, NULL, detach_main, d), 0);
	/* The send is still under way: the detach must not have returned. A
	 * wrong answer shows up within this window or not at all, so the
	 * window is short and fixed: it bounds a negative, it waits for no event. */
	pthread_mutex_lock(&S.lock);
	struct veil_deadline window = veil_deadline_in(300);
	while (!detached && veil_cond_wait_until(&S.cond, &S.lock, &window))
		;
	ck_assert_msg(!detached, "the detach returned while a send was under way");
	send_release = true;
	pthread_cond_broadcast(&S.cond);
	pthread_mutex_unlock(&S.lock);
	ck_assert_int_eq(pthread_join(t, NULL), 0);
	ck_assert(detached);
	/* Detached: a new request is not sent. */
	size_t before = S.nmsg;
	veil__device_want_bundle(d);
	veil__device_free(&d);
	ck_assert_uint_eq(S.nmsg, before);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("device");
	TCase *tc = veil_tcase("device", 10);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_request_bundle_ack);
	tcase_add_test(tc, test_nonce_echo_without_version);
	tcase_add_test(tc, test_expiry_and_supersede);
	tcase_add_test(tc, test_keys_write_behind);
	tcase_add_test(tc, test_revocation_union);
	tcase_add_test(tc, test_ready_wait_and_cancel);
	tcase_add_test(tc, test_detach_waits_for_send);
	tcase_add_test(tc, test_revoked_signer_version_forgotten);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return veil_check_run(suite());
}
