/*
 * No rule differs between the front ends of the client session core
 * (client-shim/session.c), part two: what a receiver does with what
 * arrives. A plain Paho client plays the compromised broker and publishes
 * envelopes crafted with the core API to four receivers at once: libveil's
 * veil_client_* and veil_async_*, and libveil_preload.so under a small
 * Paho app (MQTTClient and MQTTAsync) (tests/support/frontend_fixture.h:
 * the front ends, and how the preload's output maps onto libveil's). Each
 * payload must be delivered or dropped the same way everywhere, with the
 * same error name, the same line and the same counters: every open error of
 * docs/PROTOCOL.md section 8 (the credential errors of signed envelopes
 * included), plaintext under a plaintext policy (delivered, flagged), a
 * replay refused after the receiver restarted on its state dir, and the
 * save policy of the receive windows (every 64 accepted messages).
 *
 * Part one (start, publish, sender restart): check_frontends.c.
 */
#define _GNU_SOURCE
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "veil/veil.h"
#include "check_run.h"
#include "files.h"
#include "frontend_fixture.h"
#include "material.h"
#include "proc.h"
#include "timing.h"

struct rx_ctx {
	struct cfx_plain eve;               /* the plain publisher */
	struct veil_identity *tx;           /* fe-tx: signs crafted envelopes */
	uint8_t tx_sender[VEIL_SENDER_ID_BYTES];
	uint8_t cred[VEIL_CREDENTIAL_MAX];  /* fe-tx's credential */
	size_t cred_len;
	uint8_t kept[1024];                 /* an envelope kept across a restart */
	size_t kept_len;
};

static void rx_ctx_init(struct rx_ctx *x)
{
	memset(x, 0, sizeof(*x));
	x->tx = ffx_device_load("fe-tx");
	uint8_t pk[VEIL_PK_BYTES];
	veil_identity_public(x->tx, pk);
	veil_sender_id(pk, x->tx_sender);
	char p[512];
	ffx_pathf(p, sizeof(p), "%s/fe-tx.cred", ffx_env.dir);
	ck_assert_int_eq(veil_credential_load(p, x->cred, sizeof(x->cred), &x->cred_len, NULL, 0), VEIL_OK);
}

static void rx_ctx_free(struct rx_ctx *x)
{
	veil_identity_free(&x->tx);
}

static uint64_t fresh_seq(void)
{
	static uint64_t last;
	uint64_t s = ffx_now_us();
	last = s > last ? s : last + 1;
	return last;
}

/* An envelope of pt for topic under (key_id, key) from sender, with a
 * fresh sequence; signed by fe-tx with credential cred when cred is set. */
static size_t env(struct rx_ctx *x, uint8_t *out, size_t cap, const char *topic, uint32_t key_id, const uint8_t *key,
                  const uint8_t *sender, const uint8_t *cred, size_t cred_len, const char *pt)
{
	struct veil_seal_params p;
	memset(&p, 0, sizeof(p));
	p.key = key;
	p.key_id = key_id;
	memcpy(p.sender, sender ? sender : x->tx_sender, VEIL_SENDER_ID_BYTES);
	p.seq = fresh_seq();
	p.signer = cred ? x->tx : NULL;
	p.credential = cred;
	p.credential_len = cred_len;
	size_t n = 0;
	ck_assert_int_eq(veil_envelope_seal(&p, topic, (const uint8_t *)pt, strlen(pt), out, cap, &n), VEIL_OK);
	return n;
}

/* A signed envelope on secure/x carrying credential c (any bytes). */
static void pub_signed(struct rx_ctx *x, const uint8_t *c, size_t c_len, const uint8_t *sender, bool bad_sig)
{
	uint8_t e[1024];
	size_t n = env(x, e, sizeof(e), "secure/x", 2, ffx_env.k_secure, sender, c, c_len, "signed payload");
	if (bad_sig)
		e[n - 1] ^= 1;
	cfx_plain_publish(&x->eve, "secure/x", e, n);
}

enum rx_kind {
	RX_NO_POLICY, RX_NOT_ENVELOPE, RX_EMPTY, RX_VERSION, RX_TRUNCATED, RX_FLAGS, RX_TOO_LARGE, RX_UNSIGNED,
	RX_WRONG_TOPIC, RX_UNKNOWN_KEY, RX_WRONG_KEY, RX_TAMPERED, RX_MOVED, RX_REPLAY, RX_FULL, RX_CRED_PARSE,
	RX_CRED_TRUNCATED, RX_CRED_TOO_LARGE, RX_CRED_VERSION, RX_CRED_FLAGS, RX_WRONG_AUTHORITY, RX_NOT_YET_VALID,
	RX_EXPIRED, RX_CRED_BAD_SIG, RX_BAD_SIG, RX_WRONG_SENDER, RX_SIGNED, RX_SEALED, RX_PLAINTEXT, RX_RESTART_1,
	RX_RESTART_2
};

static void rx_send(struct rx_ctx *x, enum rx_kind k)
{
	uint8_t e[1024], c[VEIL_CREDENTIAL_MAX], other_key[VEIL_KEY_BYTES];
	size_t n = 0, cl = x->cred_len;
	memcpy(c, x->cred, cl);
	randombytes_buf(other_key, sizeof(other_key));
	struct veil_identity *auth = NULL;
	switch (k) {
	case RX_NO_POLICY:
		cfx_plain_publish(&x->eve, "other/x", "anything", 8);
		return;
	case RX_NOT_ENVELOPE:
		cfx_plain_publish(&x->eve, "sensors/x", "injected plaintext", 18);
		return;
	case RX_EMPTY:
		cfx_plain_publish(&x->eve, "sensors/x", "", 0);
		return;
	case RX_VERSION:
	case RX_FLAGS:
		n = env(x, e, sizeof(e), "sensors/x", 1, ffx_env.k_sensors, NULL, NULL, 0, "x");
		e[k == RX_VERSION ? 0 : 1] = 2;
		break;
	case RX_TRUNCATED:
		n = 20;
		memset(e, 0, n);
		e[0] = 1;
		break;
	case RX_TOO_LARGE: {
		size_t big = VEIL_MAX_PLAINTEXT + VEIL_OVERHEAD + 1U;
		uint8_t *b = calloc(1, big);
		ck_assert_ptr_nonnull(b);
		b[0] = 1;
		cfx_plain_publish(&x->eve, "sensors/x", b, big);
		free(b);
		return;
	}
	case RX_UNSIGNED:
		n = env(x, e, sizeof(e), "secure/x", 2, ffx_env.k_secure, NULL, NULL, 0, "unsigned");
		cfx_plain_publish(&x->eve, "secure/x", e, n);
		return;
	case RX_WRONG_TOPIC:
		n = env(x, e, sizeof(e), "sensors/x", 2, ffx_env.k_secure, NULL, NULL, 0, "x");
		break;
	case RX_UNKNOWN_KEY:
		n = env(x, e, sizeof(e), "sensors/x", 99, other_key, NULL, NULL, 0, "x");
		break;
	case RX_WRONG_KEY:
		n = env(x, e, sizeof(e), "sensors/x", 1, other_key, NULL, NULL, 0, "x");
		break;
	case RX_TAMPERED:
		n = env(x, e, sizeof(e), "sensors/x", 1, ffx_env.k_sensors, NULL, NULL, 0, "tampered");
		e[VEIL_HEADER_BYTES + 1] ^= 1;
		break;
	case RX_MOVED:
		n = env(x, e, sizeof(e), "sensors/y", 1, ffx_env.k_sensors, NULL, NULL, 0, "moved");
		break;
	case RX_REPLAY:
		n = env(x, e, sizeof(e), "sensors/x", 1, ffx_env.k_sensors, NULL, NULL, 0, "once");
		cfx_plain_publish(&x->eve, "sensors/x", e, n);
		break;
	case RX_FULL: {
		uint8_t s[VEIL_SENDER_ID_BYTES];
		randombytes_buf(s, sizeof(s));
		n = env(x, e, sizeof(e), "sensors/x", 1, ffx_env.k_sensors, s, NULL, 0, "new sender");
		break;
	}
	case RX_CRED_PARSE:
		c[VEIL_CREDENTIAL_FIXED] = '/'; /* the client id's first byte */
		pub_signed(x, c, cl, NULL, false);
		return;
	case RX_CRED_TRUNCATED:
		pub_signed(x, c, 40, NULL, false);
		return;
	case RX_CRED_TOO_LARGE: {
		/* C = VEIL_CREDENTIAL_MAX + 1: the real credential padded with
		 * zeros (the sealer refuses to build it), then C and the
		 * signature, which is never reached. */
		uint8_t big[1024];
		n = env(x, e, sizeof(e), "secure/x", 2, ffx_env.k_secure, NULL, c, cl, "signed payload");
		size_t body = n - VEIL_SIG_BYTES - 2U - cl, bc = VEIL_CREDENTIAL_MAX + 1U;
		ck_assert_uint_le(body + bc + 2U + VEIL_SIG_BYTES, sizeof(big));
		memset(big, 0, sizeof(big));
		memcpy(big, e, body + cl);
		big[body + bc] = (uint8_t)(bc >> 8);
		big[body + bc + 1U] = (uint8_t)bc;
		memcpy(big + body + bc + 2U, e + n - VEIL_SIG_BYTES, VEIL_SIG_BYTES);
		cfx_plain_publish(&x->eve, "secure/x", big, body + bc + 2U + VEIL_SIG_BYTES);
		return;
	}
	case RX_CRED_VERSION:
	case RX_CRED_FLAGS:
		c[k == RX_CRED_VERSION ? 0 : 1] = 2;
		pub_signed(x, c, cl, NULL, false);
		return;
	case RX_WRONG_AUTHORITY:
	case RX_NOT_YET_VALID:
	case RX_EXPIRED:
		if (k == RX_WRONG_AUTHORITY)
			ck_assert_int_eq(veil_identity_generate(&auth), VEIL_OK);
		cl = ffx_cred_issue(auth ? auth : ffx_env.authority, x->tx, "fe-tx", k == RX_NOT_YET_VALID ? 3600 : -7200,
		                k == RX_EXPIRED ? -60 : 7200, c);
		veil_identity_free(&auth);
		pub_signed(x, c, cl, NULL, false);
		return;
	case RX_CRED_BAD_SIG:
		c[cl - 1] ^= 1;
		pub_signed(x, c, cl, NULL, false);
		return;
	case RX_BAD_SIG:
	case RX_SIGNED:
		pub_signed(x, c, cl, NULL, k == RX_BAD_SIG);
		return;
	case RX_WRONG_SENDER: {
		uint8_t s[VEIL_SENDER_ID_BYTES];
		randombytes_buf(s, sizeof(s));
		pub_signed(x, c, cl, s, false);
		return;
	}
	case RX_SEALED:
		n = env(x, e, sizeof(e), "sensors/x", 1, ffx_env.k_sensors, NULL, NULL, 0, "sealed payload");
		break;
	case RX_PLAINTEXT:
		cfx_plain_publish(&x->eve, "public/x", "in the clear", 12);
		return;
	case RX_RESTART_1:
		x->kept_len =
			env(x, x->kept, sizeof(x->kept), "sensors/x", 1, ffx_env.k_sensors, NULL, NULL, 0, "before restart");
		cfx_plain_publish(&x->eve, "sensors/x", x->kept, x->kept_len);
		return;
	case RX_RESTART_2:
		cfx_plain_publish(&x->eve, "sensors/x", x->kept, x->kept_len);
		n = env(x, e, sizeof(e), "sensors/x", 1, ffx_env.k_sensors, NULL, NULL, 0, "after restart");
		break;
	}
	cfx_plain_publish(&x->eve, "sensors/x", e, n);
}

/* Receive windows of client_id full (VEIL_REPLAY_DEFAULT_PER_KEY senders
 * under key 1), as a long-running receiver's file would be. */
static void prefill_full(const char *state_dir, const char *client_id)
{
	ck_assert_int_eq(mkdir(state_dir, 0700), 0);
	struct veil_replay *r = NULL;
	ck_assert_int_eq(veil_replay_new(VEIL_REPLAY_DEFAULT_PER_KEY, &r), VEIL_OK);
	for (unsigned i = 0; i < VEIL_REPLAY_DEFAULT_PER_KEY; i++) {
		uint8_t s[VEIL_SENDER_ID_BYTES];
		randombytes_buf(s, sizeof(s));
		ck_assert_int_eq(veil_replay_accept(r, 1, s, 1), VEIL_OK);
	}
	char p[600];
	ffx_pathf(p, sizeof(p), "%s/replay-%s", state_dir, client_id);
	ck_assert_int_eq(veil_replay_save(r, p), VEIL_OK);
	veil_replay_free(&r);
}

/* One payload's verdict: delivered (err VEIL_OK, pt, in clear or not) or dropped. */
struct rx_exp {
	int err;
	const char *pt;
	bool clear;
};

struct rx_case {
	const char *name;
	const char *topic;                   /* the receivers subscribe to it; the attacker publishes there */
	enum rx_kind kind;
	struct rx_exp exp[2];                /* in order; exp[1].pt NULL and err 0: one payload */
	void (*prepare)(const char *state_dir, const char *client_id);
};

#define DROP(e) { { e, NULL, false }, { 0, NULL, false } }
static const struct rx_case rx_cases[] = {
	{ "no-policy", "other/x", RX_NO_POLICY, DROP(VEIL_ERR_NO_POLICY), NULL },
	{ "not-envelope", "sensors/x", RX_NOT_ENVELOPE, DROP(VEIL_ERR_PLAINTEXT), NULL },
	{ "empty-payload", "sensors/x", RX_EMPTY, DROP(VEIL_ERR_EMPTY), NULL },
	{ "unknown-version", "sensors/x", RX_VERSION, DROP(VEIL_ERR_VERSION), NULL },
	{ "truncated", "sensors/x", RX_TRUNCATED, DROP(VEIL_ERR_TRUNCATED), NULL },
	{ "reserved-flags", "sensors/x", RX_FLAGS, DROP(VEIL_ERR_RESERVED_FLAGS), NULL },
	{ "unsigned", "secure/x", RX_UNSIGNED, DROP(VEIL_ERR_UNSIGNED), NULL },
	{ "wrong-topic", "sensors/x", RX_WRONG_TOPIC, DROP(VEIL_ERR_WRONG_TOPIC), NULL },
	{ "unknown-key", "sensors/x", RX_UNKNOWN_KEY, DROP(VEIL_ERR_UNKNOWN_KEY), NULL },
	{ "wrong-key", "sensors/x", RX_WRONG_KEY, DROP(VEIL_ERR_WRONG_KEY), NULL },
	{ "decrypt-failed (tampered)", "sensors/x", RX_TAMPERED, DROP(VEIL_ERR_DECRYPT), NULL },
	{ "decrypt-failed (moved to another topic)", "sensors/x", RX_MOVED, DROP(VEIL_ERR_DECRYPT), NULL },
	{ "replay", "sensors/x", RX_REPLAY, { { VEIL_OK, "once", false }, { VEIL_ERR_REPLAY, NULL, false } }, NULL },
	{ "replay-state-full", "sensors/x", RX_FULL, DROP(VEIL_ERR_REPLAY_FULL), prefill_full },
	{ "credential: parse", "secure/x", RX_CRED_PARSE, DROP(VEIL_ERR_PARSE), NULL },
	{ "credential: truncated", "secure/x", RX_CRED_TRUNCATED, DROP(VEIL_ERR_TRUNCATED), NULL },
	{ "credential: too-large", "secure/x", RX_CRED_TOO_LARGE, DROP(VEIL_ERR_TOO_LARGE), NULL },
	{ "credential: unknown-version", "secure/x", RX_CRED_VERSION, DROP(VEIL_ERR_VERSION), NULL },
	{ "credential: reserved-flags", "secure/x", RX_CRED_FLAGS, DROP(VEIL_ERR_RESERVED_FLAGS), NULL },
	{ "credential: wrong-authority", "secure/x", RX_WRONG_AUTHORITY, DROP(VEIL_ERR_WRONG_AUTHORITY), NULL },
	{ "credential: not yet valid", "secure/x", RX_NOT_YET_VALID, DROP(VEIL_ERR_NOT_YET_VALID), NULL },
	{ "credential: expired-credential", "secure/x", RX_EXPIRED, DROP(VEIL_ERR_EXPIRED), NULL },
	{ "credential: bad-signature", "secure/x", RX_CRED_BAD_SIG, DROP(VEIL_ERR_BAD_SIGNATURE), NULL },
	{ "bad-signature (envelope)", "secure/x", RX_BAD_SIG, DROP(VEIL_ERR_BAD_SIGNATURE), NULL },
	{ "wrong-sender", "secure/x", RX_WRONG_SENDER, DROP(VEIL_ERR_SENDER), NULL },
	{ "signed, delivered", "secure/x", RX_SIGNED, { { VEIL_OK, "signed payload", false }, { 0, NULL, false } }, NULL },
	{ "sealed, delivered", "sensors/x", RX_SEALED, { { VEIL_OK, "sealed payload", false }, { 0, NULL, false } }, NULL },
	{ "plaintext policy: delivered in clear", "public/x", RX_PLAINTEXT,
	  { { VEIL_OK, "in the clear", true }, { 0, NULL, false } }, NULL },
};
#define N_RX (int)(sizeof(rx_cases) / sizeof(rx_cases[0]))
static const struct rx_case rx_too_large = { "too-large", "sensors/x", RX_TOO_LARGE, DROP(VEIL_ERR_TOO_LARGE), NULL };
static const struct rx_case rx_restart[2] = {
	{ "receiver restart: before", "sensors/x", RX_RESTART_1, { { VEIL_OK, "before restart", false }, { 0, NULL, false } },
	  NULL },
	{ "receiver restart: after", "sensors/x", RX_RESTART_2,
	  { { VEIL_ERR_REPLAY, NULL, false }, { VEIL_OK, "after restart", false } }, NULL },
};

/* Four receivers of topic, each its own device and state dir
 * <dir>/rx-<tag>-<id>, subscribed when this returns; then eve connected. */
struct rx_set {
	char state[FFX_N][512], out[FFX_N][512];
	struct ffx_lv *l[2];
	pid_t pid[FFX_N];
};

static void rx_up(struct rx_set *r, struct rx_ctx *x, const char *tag, const char *topic,
                  void (*prepare)(const char *state_dir, const char *client_id))
{
	char conf[FFX_N][512];
	memset(r, 0, sizeof(*r));
	for (int fe = 0; fe < FFX_N; fe++) {
		ffx_pathf(r->state[fe], sizeof(r->state[fe]), "%s/rx-%s-%s", ffx_env.dir, tag, ffx_id[fe]);
		ffx_conf(conf[fe], sizeof(conf[fe]), r->state[fe], ffx_id[fe]);
		if (prepare)
			prepare(r->state[fe], ffx_id[fe]);
	}
	for (int fe = 0; fe < 2; fe++) {
		int rc;
		r->l[fe] = ffx_lv_new((enum ffx_fe)fe, conf[fe], ffx_id[fe], &rc);
		ck_assert_int_eq(rc, VEIL_OK);
		ffx_lv_connect(r->l[fe], topic);
	}
	for (int fe = FFX_PSYNC; fe < FFX_N; fe++) {
		r->pid[fe] = ffx_app_spawn((enum ffx_fe)fe, conf[fe], r->out[fe], sizeof(r->out[fe]), "sub", topic, NULL);
		bool up = test_file_wait(r->out[fe], "subscribed\n", 15000);
		if (!up)
			test_file_dump(ffx_name[fe], r->out[fe]);
		ck_assert_msg(up, "%s never subscribed", ffx_name[fe]);
	}
	cfx_plain_connect(&ffx_env, &x->eve, "eve", NULL);
}

/* The end marker (routed in order behind what eve sent before), then every
 * receiver's outcome once it has seen it. */
static void rx_down(struct rx_set *r, struct rx_ctx *x, struct ffx_outcome o[FFX_N])
{
	cfx_plain_publish(&x->eve, FFX_END_TOPIC, "end", 3);
	cfx_plain_close(&x->eve);
	for (int fe = 0; fe < 2; fe++) {
		ffx_lv_wait_end(r->l[fe], ffx_name[fe]);
		ffx_lv_finish(r->l[fe], &o[fe]);
	}
	for (int fe = FFX_PSYNC; fe < FFX_N; fe++) {
		int rc = test_wait_exit(r->pid[fe], 15000);
		if (rc != 0)
			test_file_dump(ffx_name[fe], r->out[fe]);
		ck_assert_msg(rc == 0, "%s exited %d", ffx_name[fe], rc);
		memset(&o[fe], 0, sizeof(o[fe]));
		ffx_preload_outcome(r->out[fe], &o[fe]);
	}
}

/* The case through the four receivers at once; compared with c->exp and
 * with each other. prepare: run c->prepare on the state dirs first. */
static void run_rx(const struct rx_case *c, struct rx_ctx *x, const char *tag, bool prepare)
{
	struct rx_set r;
	rx_up(&r, x, tag, c->topic, prepare ? c->prepare : NULL);
	rx_send(x, c->kind);
	static struct ffx_outcome o[FFX_N];
	rx_down(&r, x, o);
	/* What every front end must have seen: the verdicts, and each drop's line. */
	struct ffx_text want, lines;
	struct ffx_counts n;
	memset(&want, 0, sizeof(want));
	memset(&lines, 0, sizeof(lines));
	memset(&n, 0, sizeof(n));
	for (size_t i = 0; i < 2 && (i == 0 || c->exp[i].err || c->exp[i].pt); i++) {
		const struct rx_exp *e = &c->exp[i];
		n.received++;
		if (e->err == VEIL_OK) {
			ffx_text_add(&want, "got %s %s%s\n", c->topic, e->pt, e->clear ? " [clear]" : "");
			n.delivered++;
		} else {
			ffx_text_add(&want, "drop %s %s\n", c->topic, veil_errname(e->err));
			ffx_text_add(&lines, "message on '%s' DROPPED: %s (%s)\n", c->topic, veil_strerror(e->err),
			         veil_errname(e->err));
			n.refused++;
			n.by_err[-e->err]++;
		}
	}
	ffx_text_add(&want, "got %s end [clear]\n", FFX_END_TOPIC);
	n.received++;
	n.delivered++;
	char a[2048], b[2048];
	ffx_counts_str(&n, a, sizeof(a));
	for (int fe = 0; fe < FFX_N; fe++) {
		ck_assert_msg(!strcmp(o[fe].ev.s, want.s), "%s: %s saw\n%s\nnot\n%s", c->name, ffx_name[fe], o[fe].ev.s,
		              want.s);
		ffx_counts_str(&o[fe].n, b, sizeof(b));
		ck_assert_msg(!strcmp(a, b), "%s: counters of %s: %s, not %s", c->name, ffx_name[fe], b, a);
		/* Each drop's line, in order, among the session's lines. */
		const char *at = o[fe].log.s;
		for (char *ln = lines.s, *nl; *ln; ln = nl + 1) {
			nl = strchr(ln, '\n');
			const char *hit = strstr(at, ln);
			ck_assert_msg(hit && (size_t)(nl - ln) > 0, "%s: %s did not say %.*s", c->name, ffx_name[fe],
			              (int)(nl - ln), ln);
			at = hit + (nl - ln);
		}
	}
	ffx_same_everywhere(c->name, o);
}

START_TEST(receive_case)
{
	struct rx_ctx x;
	rx_ctx_init(&x);
	char tag[32];
	snprintf(tag, sizeof(tag), "case%d", _i);
	run_rx(&rx_cases[_i], &x, tag, true);
	rx_ctx_free(&x);
}
END_TEST

START_TEST(receive_too_large)
{
	struct rx_ctx x;
	rx_ctx_init(&x);
	run_rx(&rx_too_large, &x, "too-large", true);
	rx_ctx_free(&x);
}
END_TEST

/* Accepted, receivers restarted on their state dirs, the same envelope
 * again: a replay in every front end; a new one is still delivered. */
START_TEST(receiver_restart)
{
	struct rx_ctx x;
	rx_ctx_init(&x);
	run_rx(&rx_restart[0], &x, "restart", true);
	run_rx(&rx_restart[1], &x, "restart", false);
	rx_ctx_free(&x);
}
END_TEST


#define SAVE_SECONDS 5U /* VEIL__SAVE_SECONDS, client-shim/session.h */

/* Every front end's replay file loads and holds the one sender's window
 * (key id 1). */
static void replay_files_hold_one_window(char replay[FFX_N][600])
{
	for (int fe = 0; fe < FFX_N; fe++) {
		struct veil_replay *w = NULL;
		ck_assert_int_eq(veil_replay_new(VEIL_REPLAY_DEFAULT_PER_KEY, &w), VEIL_OK);
		ck_assert_int_eq(veil_replay_load(w, replay[fe]), VEIL_OK);
		ck_assert_uint_eq(veil_replay_count(w, 1), 1);
		veil_replay_free(&w);
	}
}

/* Receive windows are saved every VEIL__SAVE_EVERY (64) accepted messages
 * while the receiver runs, in every front end: not after 63 (unless 5 s
 * passed, the other rule), after 64 a file holding the sender's window. */
START_TEST(save_every_64)
{
	struct rx_ctx x;
	rx_ctx_init(&x);
	uint64_t t0 = veil_test_now_ms();
	struct rx_set r;
	rx_up(&r, &x, "save", "sensors/x", NULL);
	char replay[FFX_N][600];
	for (int fe = 0; fe < FFX_N; fe++)
		ffx_pathf(replay[fe], sizeof(replay[fe]), "%s/replay-%s", r.state[fe], ffx_id[fe]);
	for (int i = 1; i <= 64; i++) {
		uint8_t e[256];
		char pt[32];
		snprintf(pt, sizeof(pt), "m%02d", i);
		size_t n = env(&x, e, sizeof(e), "sensors/x", 1, ffx_env.k_sensors, NULL, NULL, 0, pt);
		cfx_plain_publish(&x.eve, "sensors/x", e, n);
		if (i < 63)
			continue;
		for (int fe = 0; fe < FFX_N; fe++) {
			/* The 64th open asks the session's writer thread for the save
			 * (no fsync on the delivering thread): it follows the delivery. */
			char want[64];
			snprintf(want, sizeof(want), "got sensors/x %s", pt);
			bool got = fe < FFX_PSYNC ? ffx_lv_wait_text(r.l[fe], want) : test_file_wait(r.out[fe], want, 10000);
			ck_assert_msg(got, "%s never delivered %s", ffx_name[fe], pt);
			if (i == 64)
				ck_assert_msg(VEIL_WAIT_UNTIL(access(replay[fe], F_OK) == 0, 5000), "%s: no %s after 64 messages",
				              ffx_name[fe], replay[fe]);
			else if (veil_test_now_ms() - t0 < 1000U * SAVE_SECONDS)
				ck_assert_msg(access(replay[fe], F_OK) != 0, "%s: %s saved after 63 messages", ffx_name[fe],
				              replay[fe]);
		}
	}
	replay_files_hold_one_window(replay);
	static struct ffx_outcome o[FFX_N];
	rx_down(&r, &x, o);
	ffx_same_everywhere("save every 64", o);
	ck_assert_uint_eq(o[0].n.delivered, 65);
	rx_ctx_free(&x);
}
END_TEST

/* The other rule: the first accepted message once SAVE_SECONDS passed since
 * the last save (here: the start) saves the windows, though far fewer than
 * 64 came; before that, nothing is written. */
START_TEST(save_after_5s)
{
	struct rx_ctx x;
	rx_ctx_init(&x);
	struct rx_set r;
	uint64_t before = veil_test_now_ms();
	rx_up(&r, &x, "save5", "sensors/x", NULL);
	uint64_t t0 = veil_test_now_ms(); /* every front end started between the two */
	bool early = true; /* the first message came within 5 s of every start */
	char replay[FFX_N][600];
	for (int fe = 0; fe < FFX_N; fe++)
		ffx_pathf(replay[fe], sizeof(replay[fe]), "%s/replay-%s", r.state[fe], ffx_id[fe]);
	for (int i = 1; i <= 2; i++) {
		if (i == 2) {
			/* The rule is about time: SAVE_SECONDS must pass. No timer
			 * saves meanwhile: only an accepted message does. */
			ck_assert(VEIL_WAIT_UNTIL(veil_test_now_ms() - t0 > 1000U * SAVE_SECONDS + 200U,
			                          1000U * SAVE_SECONDS + 5000U));
			for (int fe = 0; fe < FFX_N && early; fe++)
				ck_assert_msg(access(replay[fe], F_OK) != 0, "%s: %s saved with no message to save for",
				              ffx_name[fe], replay[fe]);
		}
		uint8_t e[256];
		char pt[32];
		snprintf(pt, sizeof(pt), "t%d", i);
		size_t n = env(&x, e, sizeof(e), "sensors/x", 1, ffx_env.k_sensors, NULL, NULL, 0, pt);
		cfx_plain_publish(&x.eve, "sensors/x", e, n);
		for (int fe = 0; fe < FFX_N; fe++) {
			char want[64];
			snprintf(want, sizeof(want), "got sensors/x %s", pt);
			bool got = fe < FFX_PSYNC ? ffx_lv_wait_text(r.l[fe], want) : test_file_wait(r.out[fe], want, 10000);
			ck_assert_msg(got, "%s never delivered %s", ffx_name[fe], pt);
			if (i == 2)
				ck_assert_msg(VEIL_WAIT_UNTIL(access(replay[fe], F_OK) == 0, 5000), "%s: no %s %u s after the start",
				              ffx_name[fe], replay[fe], SAVE_SECONDS);
			else if (veil_test_now_ms() - before < 1000U * SAVE_SECONDS)
				ck_assert_msg(access(replay[fe], F_OK) != 0, "%s: %s saved after one message", ffx_name[fe],
				              replay[fe]);
			else { /* a start slower than the rule's 5 s: the first message may save */
				early = false;
				fprintf(stderr, "save_after_5s: %s: the checks before the second message skipped (slow start)\n",
				        ffx_name[fe]);
			}
		}
	}
	replay_files_hold_one_window(replay);
	static struct ffx_outcome o[FFX_N];
	rx_down(&r, &x, o);
	ffx_same_everywhere("save after 5 s", o);
	rx_ctx_free(&x);
}
END_TEST

int main(int argc, char **argv)
{
	int rc = ffx_main(argc, argv);
	if (rc >= 0)
		return rc;
	Suite *s = suite_create("frontends-open");
	/* Four receivers at once. Each test starts four receiving front ends (two of them preloaded
	 * Paho programs) and waits up to 10 s (scaled) for a delivery: 8 s for
	 * the whole test timed out under load (save_every_64, 64 messages). */
	TCase *tc = veil_tcase("receive", 30);
	tcase_add_unchecked_fixture(tc, ffx_material, ffx_teardown);
	tcase_add_loop_test(tc, receive_case, 0, N_RX);
	tcase_add_test(tc, receiver_restart);
	tcase_add_test(tc, save_every_64);
	tcase_add_test(tc, save_after_5s);
	suite_add_tcase(s, tc);
	/* 16 MiB to each of four receivers. */
	tc = veil_tcase("receive-too-large", 20);
	tcase_add_unchecked_fixture(tc, ffx_material, ffx_teardown);
	tcase_add_test(tc, receive_too_large);
	suite_add_tcase(s, tc);
	return veil_check_run(s);
}
