/*
 * No rule differs between the front ends of the client session core
 * (client-shim/session.c), part one: starting, publishing, and the
 * sender's sequence across a restart. The same table of cases runs through
 * libveil's veil_client_* and veil_async_* and through libveil_preload.so
 * under a small Paho app (MQTTClient and MQTTAsync), against a real
 * Mosquitto; every case expects the same outcome from all four
 * (tests/support/frontend_fixture.h: the front ends, and how the preload's
 * output maps onto libveil's veil_err, log lines and counters):
 *
 *   start    the same veil_err and the same text naming the file: state
 *            dir and state files (missing, foreign, group-writable,
 *            corrupt, locked), identity and credential, every error the
 *            keyring parser and reader report, with the same file:line;
 *   publish  sealed, signed, sent in clear under a plaintext policy (same
 *            line) or refused without policy (same line), as a plain
 *            observer sees the wire, with the same counters;
 *   restart  a sender restarted on its state dir continues above its
 *            persisted sequence mark; libveil and preloaded receivers
 *            accept every message.
 *
 * Part two, what a receiver does with what arrives: check_frontends_open.c.
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

/* Replace @P (path), @A (the authority), @K and @L (two topic keys), @S (16
 * bytes: a bad key length) in tmpl. */
static void expand(char *out, size_t cap, const char *tmpl, const char *path)
{
	uint8_t apk[VEIL_PK_BYTES], k[VEIL_KEY_BYTES] = { 1 }, short_key[16] = { 2 };
	veil_identity_public(ffx_env.authority, apk);
	char a64[64], k64[64], l64[64], s64[64];
	test_b64(a64, sizeof(a64), apk, sizeof(apk));
	test_b64(k64, sizeof(k64), ffx_env.k_sensors, VEIL_KEY_BYTES);
	test_b64(l64, sizeof(l64), k, sizeof(k));
	test_b64(s64, sizeof(s64), short_key, sizeof(short_key));
	size_t o = 0;
	for (const char *p = tmpl; *p; p++) {
		const char *sub = NULL;
		if (*p == '@' && p[1]) {
			const char *const subs[] = { path, a64, k64, l64, s64 };
			const char *at = strchr("PAKLS", p[1]);
			sub = at && p[1] ? subs[at - "PAKLS"] : NULL;
		}
		if (sub) {
			size_t n = strlen(sub);
			ck_assert_uint_lt(o + n, cap);
			memcpy(out + o, sub, n);
			o += n;
			p++;
		} else {
			ck_assert_uint_lt(o + 1, cap);
			out[o++] = *p;
		}
	}
	out[o] = '\0';
	sodium_memzero(k64, sizeof(k64));
}

/* ====================================================================
 * Start: refused (or not) with the same veil_err and the same text.
 * ==================================================================== */

struct start_ctx {
	const struct start_case *c;
	char dir[400];              /* this case's files */
	char state[512];            /* its state dir */
	char conf[512];
	char needle[1024];          /* what the refusal must name */
	struct ffx_lv *holder;
	pid_t holder_pid;
};

enum kr_kind { KR_TEXT, KR_LONG, KR_NUL, KR_BIG, KR_PERM, KR_MISSING, KR_DIR, KR_AUTH17 };

struct start_case {
	const char *name;
	int err;                                   /* expected veil_err; VEIL_OK: starts */
	void (*prepare)(struct start_ctx *s);      /* files, config, needle */
	void (*between)(struct start_ctx *s);      /* after each front end */
	/* p_state_file: a file in the state dir */
	const char *file;                          /* its name */
	const char *content;                       /* NULL: made with the core API (valid) */
	unsigned mode;
	bool foreign;                              /* owned by nobody */
	const char *says;                          /* the refusal: "<path>" + this */
	/* p_keyring */
	enum kr_kind kr;                           /* how the file is made */
	const char *kr_text;                       /* its text (expand) */
	const char *kr_needle;                     /* what the refusal says (expand, @P = path) */
};

/* <case dir>/client.conf: identity key, credential cred, keyring (NULL:
 * fe-sync's and the shared keyring), the state dir when set, extra lines. */
static void st_conf(struct start_ctx *s, const char *key, const char *cred, const char *keyring, const char *extra)
{
	char body[2048], dkey[512], dcred[512];
	ffx_pathf(dkey, sizeof(dkey), "%s/fe-sync.key", ffx_env.dir);
	ffx_pathf(dcred, sizeof(dcred), "%s/fe-sync.cred", ffx_env.dir);
	ffx_pathf(body, sizeof(body), "identity %s\ncredential %s\nkeyring %s\n%s%s%s%s", key ? key : dkey,
	          cred ? cred : dcred, keyring ? keyring : ffx_env.keyring,
	          s->state[0] ? "state_dir " : "", s->state, s->state[0] ? "\n" : "", extra ? extra : "");
	ffx_pathf(s->conf, sizeof(s->conf), "%s/client.conf", s->dir);
	ck_assert_int_eq(test_write_file(s->conf, body, 0600), 0);
}

static void needle_add(struct start_ctx *s, const char *text)
{
	strncat(s->needle, text, sizeof(s->needle) - strlen(s->needle) - 1U);
}

static void st_with_state(struct start_ctx *s)
{
	ffx_pathf(s->state, sizeof(s->state), "%s/state", s->dir);
	st_conf(s, NULL, NULL, NULL, NULL);
	snprintf(s->needle, sizeof(s->needle), "%s", s->state);
}

static void st_state_dir(struct start_ctx *s, mode_t mode, bool foreign)
{
	st_with_state(s);
	ck_assert_int_eq(mkdir(s->state, 0700), 0);
	ck_assert_int_eq(chmod(s->state, mode), 0);
	if (foreign)
		ck_assert_int_eq(chown(s->state, ffx_nobody(), (gid_t)-1), 0);
}

static void p_state_missing(struct start_ctx *s)
{
	st_with_state(s);
}

static void b_state_created(struct start_ctx *s)
{
	struct stat st;
	ck_assert_int_eq(stat(s->state, &st), 0);
	ck_assert_msg(S_ISDIR(st.st_mode) && (st.st_mode & 0777) == 0700 && st.st_uid == geteuid(),
	              "state dir created with mode %03o", (unsigned)(st.st_mode & 0777));
	ck_assert_int_eq(test_rmtree(s->state), 0);
}

/* A state dir with no seq and no replay file yet: a fresh start. Emptied
 * again after each front end, which may have written them. */
static void p_state_empty(struct start_ctx *s)
{
	st_state_dir(s, 0700, false);
}

static void b_state_emptied(struct start_ctx *s)
{
	ck_assert_int_eq(test_rmtree(s->state), 0);
	ck_assert_int_eq(mkdir(s->state, 0700), 0);
}

static void p_state_parent_missing(struct start_ctx *s)
{
	ffx_pathf(s->state, sizeof(s->state), "%s/no/such/state", s->dir);
	st_conf(s, NULL, NULL, NULL, NULL);
	snprintf(s->needle, sizeof(s->needle), "%s: No such file or directory", s->state);
}

static void p_state_foreign(struct start_ctx *s)
{
	st_state_dir(s, 0700, true);
	ffx_pathf(s->needle, sizeof(s->needle), "%s: owned by uid %u", s->state, (unsigned)ffx_nobody());
}

static void p_state_group_w(struct start_ctx *s)
{
	st_state_dir(s, 0770, false);
	ffx_pathf(s->needle, sizeof(s->needle), "%s: writable by group or others (mode 770)", s->state);
}

static void p_state_other_w(struct start_ctx *s)
{
	st_state_dir(s, 0703, false);
	ffx_pathf(s->needle, sizeof(s->needle), "%s: writable by group or others (mode 703)", s->state);
}

static void p_state_is_file(struct start_ctx *s)
{
	st_with_state(s);
	ck_assert_int_eq(test_write_file(s->state, "", 0600), 0);
	ffx_pathf(s->needle, sizeof(s->needle), "%s: not a directory", s->state);
}

/* A state dir holding file name (NULL: none); mode and owner changed after. */
static void st_file(struct start_ctx *s, const char *name, const char *content, mode_t mode, bool foreign)
{
	st_state_dir(s, 0700, false);
	char p[600];
	ffx_pathf(p, sizeof(p), "%s/%s", s->state, name);
	if (content) {
		ck_assert_int_eq(test_write_file(p, content, 0600), 0);
	} else if (!strcmp(name, "seq")) {
		struct veil_seq *q = NULL;
		uint64_t v;
		ck_assert_int_eq(veil_seq_open(p, ffx_now_us(), &q), VEIL_OK);
		ck_assert_int_eq(veil_seq_next(q, &v), VEIL_OK);
		veil_seq_close(&q);
	} else {
		struct veil_replay *r = NULL;
		uint8_t sender[VEIL_SENDER_ID_BYTES] = { 7 };
		ck_assert_int_eq(veil_replay_new(VEIL_REPLAY_DEFAULT_PER_KEY, &r), VEIL_OK);
		ck_assert_int_eq(veil_replay_accept(r, 1, sender, 5), VEIL_OK);
		ck_assert_int_eq(veil_replay_save(r, p), VEIL_OK);
		veil_replay_free(&r);
	}
	ck_assert_int_eq(chmod(p, mode), 0);
	if (foreign)
		ck_assert_int_eq(chown(p, ffx_nobody(), (gid_t)-1), 0);
	snprintf(s->needle, sizeof(s->needle), "%s", p);
}

static void p_state_file(struct start_ctx *s)
{
	const struct start_case *c = s->c;
	st_file(s, c->file, c->content, c->mode, c->foreign);
	needle_add(s, c->says);
}

static void p_lock_libveil(struct start_ctx *s)
{
	st_with_state(s);
	int rc;
	s->holder = ffx_lv_new(FFX_SYNC, s->conf, "fe-sync", &rc);
	ck_assert_int_eq(rc, VEIL_OK);
	needle_add(s, " is in use by another Veil client");
}

static void p_lock_preload(struct start_ctx *s)
{
	st_with_state(s);
	char out[512];
	s->holder_pid = ffx_app_spawn(FFX_PSYNC, s->conf, out, sizeof(out), "hold", NULL, NULL);
	bool held = test_file_wait(out, "holding", 15000);
	if (!held)
		test_file_dump("holder", out);
	ck_assert(held);
	needle_add(s, " is in use by another Veil client");
}

static void p_mismatch(struct start_ctx *s)
{
	char key[512], cred[512];
	ffx_pathf(key, sizeof(key), "%s/fe-async.key", ffx_env.dir);
	ffx_pathf(cred, sizeof(cred), "%s/fe-sync.cred", ffx_env.dir);
	st_conf(s, key, NULL, NULL, NULL);
	ffx_pathf(s->needle, sizeof(s->needle),
	          "identity does not match credential: %s was issued for another device key than identity %s", cred, key);
}

static void p_other_client_id(struct start_ctx *s)
{
	st_conf(s, NULL, NULL, NULL, "client_id someone-else\n");
	snprintf(s->needle, sizeof(s->needle), "client id 'someone-else' differs from the credential's client id 'fe-sync'");
}

/* fe-sync's identity with a credential made here (authority NULL: the keyring's). */
static void st_cred(struct start_ctx *s, bool other_authority, int64_t from_s, int64_t to_s, const char *needle)
{
	struct veil_identity *dev = ffx_device_load("fe-sync"), *auth = NULL;
	if (other_authority)
		ck_assert_int_eq(veil_identity_generate(&auth), VEIL_OK);
	uint8_t c[VEIL_CREDENTIAL_MAX];
	size_t n = ffx_cred_issue(auth ? auth : ffx_env.authority, dev, "fe-sync", from_s, to_s, c);
	veil_identity_free(&dev);
	veil_identity_free(&auth);
	char cred[512];
	ffx_pathf(cred, sizeof(cred), "%s/this.cred", s->dir);
	ck_assert_int_eq(veil_credential_save(c, n, cred), VEIL_OK);
	st_conf(s, NULL, cred, NULL, NULL);
	ffx_pathf(s->needle, sizeof(s->needle), "credential %s %s", cred, needle);
}

static void p_expired(struct start_ctx *s)
{
	st_cred(s, false, -7200, -60, "expired at");
}

static void p_not_yet_valid(struct start_ctx *s)
{
	st_cred(s, false, 3600, 7200, "is not valid before");
}

static void p_untrusted(struct start_ctx *s)
{
	st_cred(s, true, -60, 3600, "does not verify against the trusted authorities");
}

static void p_identity_missing(struct start_ctx *s)
{
	char key[512];
	ffx_pathf(key, sizeof(key), "%s/missing.key", s->dir);
	st_conf(s, key, NULL, NULL, NULL);
	ffx_pathf(s->needle, sizeof(s->needle), "identity %s: No such file or directory", key);
}

static void p_identity_perm(struct start_ctx *s)
{
	char key[512], src[512];
	ffx_pathf(src, sizeof(src), "%s/fe-sync.key", ffx_env.dir);
	ffx_pathf(key, sizeof(key), "%s/open.key", s->dir);
	size_t n = 0;
	char *text = test_file_read(src, &n);
	ck_assert_ptr_nonnull(text);
	ffx_write_bytes(key, text, n, 0640);
	sodium_memzero(text, n);
	free(text);
	st_conf(s, key, NULL, NULL, NULL);
	ffx_pathf(s->needle, sizeof(s->needle), "identity %s: holds secrets but is accessible by group or others", key);
}

static void p_cred_missing(struct start_ctx *s)
{
	char cred[512];
	ffx_pathf(cred, sizeof(cred), "%s/missing.cred", s->dir);
	st_conf(s, NULL, cred, NULL, NULL);
	ffx_pathf(s->needle, sizeof(s->needle), "credential %s: No such file or directory", cred);
}

static void p_cred_corrupt(struct start_ctx *s)
{
	char cred[512];
	ffx_pathf(cred, sizeof(cred), "%s/corrupt.cred", s->dir);
	ck_assert_int_eq(test_write_file(cred, "veil-credential-v1 AAAA\n", 0644), 0);
	st_conf(s, NULL, cred, NULL, NULL);
	ffx_pathf(s->needle, sizeof(s->needle), "credential %s", cred);
}

static void p_keyring(struct start_ctx *s)
{
	const struct start_case *c = s->c;
	char kr[512], text[4096];
	ffx_pathf(kr, sizeof(kr), "%s/keyring", s->dir);
	expand(text, sizeof(text), c->kr_text ? c->kr_text : "authority @A\nkey sensors/# 1 @K send\n", kr);
	size_t n = strlen(text);
	switch (c->kr) {
	case KR_TEXT:
	case KR_PERM:
		ffx_write_bytes(kr, text, n, c->kr == KR_PERM ? 0640 : 0600);
		break;
	case KR_LONG:
	case KR_BIG: {
		size_t big = c->kr == KR_LONG ? 1100U : (4U << 20) + 16U;
		char *b = malloc(n + big + 2);
		ck_assert_ptr_nonnull(b);
		memcpy(b, text, n);
		memset(b + n, 'x', big);
		memcpy(b + n, "policy ", 7); /* a directive: a comment's length does not matter */
		b[n + big] = '\n';
		ffx_write_bytes(kr, b, n + big + 1, 0600);
		free(b);
		break;
	}
	case KR_NUL:
		text[n] = '\0';
		ffx_write_bytes(kr, text, n + 1, 0600); /* the NUL after the text */
		break;
	case KR_MISSING:
		break;
	case KR_DIR:
		ck_assert_int_eq(mkdir(kr, 0700), 0);
		break;
	case KR_AUTH17: {
		char lines[4096] = "";
		for (size_t i = 0; i < 17; i++)
			memcpy(lines + i * 13, "authority @A\n", 14);
		expand(text, sizeof(text), lines, kr);
		ffx_write_bytes(kr, text, strlen(text), 0600);
		break;
	}
	}
	sodium_memzero(text, sizeof(text));
	st_conf(s, NULL, NULL, kr, NULL);
	expand(s->needle, sizeof(s->needle), c->kr_needle, kr);
}

#define ST(n, e, p) { .name = (n), .err = (e), .prepare = (p) }
#define SF(n, f, c, m, fo, s)                                                                                \
	{ .name = (n), .err = VEIL_ERR_STATE, .prepare = p_state_file, .file = (f), .content = (c), .mode = (m), \
	  .foreign = (fo), .says = (s) }
#define KR(n, kind, e, text, needle)                                                                          \
	{ .name = (n), .err = (e), .prepare = p_keyring, .kr = (kind), .kr_text = (text), .kr_needle = (needle) }

static const struct start_case start_cases[] = {
	{ .name = "state dir missing: created 0700", .err = VEIL_OK, .prepare = p_state_missing,
	  .between = b_state_created },
	{ .name = "state dir without seq and replay files: a fresh start", .err = VEIL_OK, .prepare = p_state_empty,
	  .between = b_state_emptied },
	ST("state dir under a missing dir", VEIL_ERR_STATE, p_state_parent_missing),
	ST("state dir owned by nobody", VEIL_ERR_STATE, p_state_foreign),
	ST("state dir writable by group", VEIL_ERR_STATE, p_state_group_w),
	ST("state dir writable by others", VEIL_ERR_STATE, p_state_other_w),
	ST("state dir is a file", VEIL_ERR_STATE, p_state_is_file),
	SF("seq file corrupt", "seq", "not a sequence mark\n", 0600, false, ""),
	SF("seq file owned by nobody", "seq", NULL, 0600, true, ": owned by uid"),
	SF("seq file group-writable", "seq", NULL, 0620, false, ": writable by group or others"),
	SF("replay file corrupt", "replay-fe-sync", "not replay windows\n", 0600, false, ": not a replay state file"),
	SF("replay file owned by nobody", "replay-fe-sync", NULL, 0600, true, ": owned by uid"),
	SF("replay file group-writable", "replay-fe-sync", NULL, 0660, false, ": writable by group or others"),
	ST("state dir locked by a running libveil client", VEIL_ERR_STATE, p_lock_libveil),
	ST("state dir locked by a running preloaded app", VEIL_ERR_STATE, p_lock_preload),
	ST("identity does not match credential", VEIL_ERR_AUTH, p_mismatch),
	ST("credential for another client id", VEIL_ERR_CLIENT_ID, p_other_client_id),
	ST("credential expired", VEIL_ERR_EXPIRED, p_expired),
	ST("credential not yet valid", VEIL_ERR_NOT_YET_VALID, p_not_yet_valid),
	ST("credential from an untrusted authority", VEIL_ERR_WRONG_AUTHORITY, p_untrusted),
	ST("identity file missing", VEIL_ERR_IO, p_identity_missing),
	ST("identity file group-readable", VEIL_ERR_PERM, p_identity_perm),
	ST("credential file missing", VEIL_ERR_IO, p_cred_missing),
	ST("credential file corrupt", VEIL_ERR_PARSE, p_cred_corrupt),
	KR("keyring: unknown directive", KR_TEXT, VEIL_ERR_PARSE, "authority @A\nfoo bar\n", "@P:2: unknown directive 'foo'"),
	KR("keyring: unknown directive (a pasted key, not echoed)", KR_TEXT, VEIL_ERR_PARSE, "@K\n",
	   "@P:1: unknown directive (authority, key, policy)"),
	KR("keyring: too many fields", KR_TEXT, VEIL_ERR_PARSE, "key sensors/# 1 @K send x y\n", "@P:1: too many fields"),
	KR("keyring: authority without its key", KR_TEXT, VEIL_ERR_PARSE, "authority\n",
	   "@P:1: expected 'authority <base64 public key>'"),
	KR("keyring: authority key length", KR_TEXT, VEIL_ERR_PARSE, "authority @S\n",
	   "@P:1: authority key is not 32 bytes of base64"),
	KR("keyring: 17 authorities", KR_AUTH17, VEIL_ERR_PARSE, NULL, "@P:17: more than 16 authorities"),
	KR("keyring: key line fields", KR_TEXT, VEIL_ERR_PARSE, "key sensors/# 1\n",
	   "@P:1: expected 'key <topic-filter> <key-id> <base64 key> [send]'"),
	KR("keyring: bad filter in a key line", KR_TEXT, VEIL_ERR_PARSE, "key sensors/#/x 1 @K\n",
	   "@P:1: invalid topic filter in a key line"),
	KR("keyring: key id not a number", KR_TEXT, VEIL_ERR_PARSE, "key sensors/# one @K\n",
	   "@P:1: key id is not a number"),
	KR("keyring: key id in the key service's range", KR_TEXT, VEIL_ERR_PARSE, "key sensors/# 2147483648 @K\n",
	   "@P:1: key id 2147483648 is in the key service's range (2147483648 and above)"),
	KR("keyring: duplicate key id", KR_TEXT, VEIL_ERR_PARSE, "key sensors/# 1 @K\nkey secure/# 1 @L\n",
	   "@P:2: key id 1 already defined at line 1"),
	KR("keyring: bad key length", KR_TEXT, VEIL_ERR_PARSE, "key sensors/# 1 @S\n", "@P:1: key is not 32 bytes of base64"),
	KR("keyring: two send keys", KR_TEXT, VEIL_ERR_PARSE, "key sensors/# 1 @K send\nkey sensors/# 2 @L send\n",
	   "@P:2: filter 'sensors/#' already has a send key (line 1)"),
	KR("keyring: policy without filter", KR_TEXT, VEIL_ERR_PARSE, "policy\n",
	   "@P:1: expected 'policy <topic-filter> [signed] [plaintext]'"),
	KR("keyring: bad filter in a policy", KR_TEXT, VEIL_ERR_PARSE, "policy sensors/#/x\n",
	   "@P:1: invalid topic filter 'sensors/#/x'"),
	KR("keyring: unknown policy word", KR_TEXT, VEIL_ERR_PARSE, "key sensors/# 1 @K\npolicy sensors/# secret\n",
	   "@P:2: unknown policy word 'secret'"),
	KR("keyring: second policy", KR_TEXT, VEIL_ERR_PARSE,
	   "key sensors/# 1 @K\npolicy sensors/#\npolicy sensors/# signed\n", "@P:3: second policy for filter 'sensors/#'"),
	KR("keyring: filter without key and without plaintext", KR_TEXT, VEIL_ERR_PARSE,
	   "key sensors/# 1 @K\npolicy secure/#\n", "@P:2: filter 'secure/#' has no key and does not allow plaintext"),
	KR("keyring: line too long", KR_LONG, VEIL_ERR_PARSE, NULL, "@P:3: line longer than 1023 bytes"),
	KR("keyring: NUL byte", KR_NUL, VEIL_ERR_PARSE, NULL, "@P: contains a NUL byte"),
	KR("keyring: too large", KR_BIG, VEIL_ERR_TOO_LARGE, NULL, "@P: larger than 4194304 bytes"),
	KR("keyring: group-readable (insecure permissions)", KR_PERM, VEIL_ERR_PERM, NULL,
	   "@P: holds secrets but is accessible by group or others (mode 640)"),
	KR("keyring: missing", KR_MISSING, VEIL_ERR_IO, NULL, "@P: No such file or directory"),
	KR("keyring: a directory", KR_DIR, VEIL_ERR_IO, NULL, "@P: not a regular file"),
};
#define N_START (int)(sizeof(start_cases) / sizeof(start_cases[0]))

static void start_one(enum ffx_fe fe, struct start_ctx *s, struct ffx_outcome *o)
{
	memset(o, 0, sizeof(*o));
	if (fe == FFX_SYNC || fe == FFX_ASYNC) {
		int rc;
		struct ffx_lv *l = ffx_lv_new(fe, s->conf, "fe-sync", &rc);
		ffx_lv_finish(l, o);
		return;
	}
	ffx_app_run(fe, s->conf, "start", NULL, NULL, s->c->err == VEIL_OK ? 0 : 2, o);
	o->rc = o->text[0] ? ffx_trailing_err(o->text) : VEIL_OK;
}

START_TEST(start_case)
{
	const struct start_case *c = &start_cases[_i];
	struct start_ctx s;
	memset(&s, 0, sizeof(s));
	s.c = c;
	ffx_pathf(s.dir, sizeof(s.dir), "%s/start-%d", ffx_env.dir, _i);
	ck_assert_int_eq(mkdir(s.dir, 0700), 0);
	c->prepare(&s);
	static struct ffx_outcome o[FFX_N];
	for (int fe = 0; fe < FFX_N; fe++) {
		start_one((enum ffx_fe)fe, &s, &o[fe]);
		if (c->between)
			c->between(&s);
	}
	if (s.holder) {
		static struct ffx_outcome scratch;
		ffx_lv_finish(s.holder, &scratch);
	}
	if (s.holder_pid > 0)
		test_stop(s.holder_pid);
	for (int fe = 0; fe < FFX_N; fe++) {
		ck_assert_msg(o[fe].rc == c->err, "%s: %s gave %s, want %s (%s)", c->name, ffx_name[fe],
		              veil_errname(o[fe].rc), veil_errname(c->err), o[fe].text);
		ck_assert_msg(!strcmp(o[fe].text, o[0].text), "%s: %s said\n  %s\nbut %s said\n  %s", c->name,
		              ffx_name[fe], o[fe].text, ffx_name[0], o[0].text);
	}
	if (c->err != VEIL_OK) {
		ck_assert_msg(strstr(o[0].text, s.needle), "%s: the refusal does not say '%s': %s", c->name, s.needle,
		              o[0].text);
		ck_assert_msg(ffx_trailing_err(o[0].text) == c->err, "%s: the text does not end in (%s): %s", c->name,
		              veil_errname(c->err), o[0].text);
	}
}
END_TEST


/* ====================================================================
 * Publish: the same wire, the same line, the same counters.
 * ==================================================================== */

enum wire { W_ENVELOPE, W_SIGNED, W_CLEAR, W_NONE };
struct pub_case {
	const char *name;
	const char *topic;
	int err;
	enum wire wire;
};
static const struct pub_case pub_cases[] = {
	{ "sealed", "sensors/p", VEIL_OK, W_ENVELOPE },
	{ "signed (policy)", "secure/p", VEIL_OK, W_SIGNED },
	{ "plaintext policy: sent in clear", "public/p", VEIL_OK, W_CLEAR },
	{ "no policy: refused", "other/p", VEIL_ERR_NO_POLICY, W_NONE },
};
#define N_PUB (int)(sizeof(pub_cases) / sizeof(pub_cases[0]))

/* Publish pt on topic from front end fe (device ffx_id[fe] with its state
 * dir <dir>/<stem>-<id>); the outcome with its counters. */
static void publish_one(enum ffx_fe fe, const char *stem, const char *topic, const char *pt, struct ffx_outcome *o)
{
	char conf[512], state[512];
	ffx_pathf(state, sizeof(state), "%s/%s-%s", ffx_env.dir, stem, ffx_id[fe]);
	ffx_conf(conf, sizeof(conf), state, ffx_id[fe]);
	if (fe == FFX_SYNC || fe == FFX_ASYNC) {
		int rc;
		struct ffx_lv *l = ffx_lv_new(fe, conf, ffx_id[fe], &rc);
		ck_assert_int_eq(rc, VEIL_OK);
		ffx_lv_connect(l, NULL);
		rc = ffx_lv_publish(l, topic, pt);
		ffx_lv_finish(l, o);
		o->rc = rc;
		return;
	}
	ffx_app_run(fe, conf, "pub", topic, pt, 0, o);
	/* Paho's -1 for a refused publish; the session core's line names why. */
	if (o->rc != 0) {
		char line[1024] = "";
		const char *r = strstr(o->log.s, " REFUSED");
		if (r)
			snprintf(line, sizeof(line), "%.*s", (int)strcspn(r, "\n"), r);
		o->rc = ffx_trailing_err(line);
	}
}

START_TEST(publish_case)
{
	const struct pub_case *c = &pub_cases[_i];
	struct cfx_plain obs;
	cfx_plain_connect(&ffx_env, &obs, "observer", "#");
	static struct ffx_outcome o[FFX_N];
	char pt[FFX_N][64], stem[32];
	snprintf(stem, sizeof(stem), "pub%d", _i);
	for (int fe = 0; fe < FFX_N; fe++) {
		snprintf(pt[fe], sizeof(pt[fe]), "%s-%08x", ffx_id[fe], randombytes_random());
		publish_one((enum ffx_fe)fe, stem, c->topic, pt[fe], &o[fe]);
		ck_assert_msg(o[fe].rc == c->err, "%s: %s gave %s, not %s", c->name, ffx_name[fe], veil_errname(o[fe].rc),
		              veil_errname(c->err));
	}
	/* Everything the publishers sent was routed before this marker. */
	char mark[32];
	snprintf(mark, sizeof(mark), "wire-end-%08x", randombytes_random());
	cfx_plain_publish(&obs, "ping", mark, strlen(mark));
	ck_assert(VEIL_WAIT_UNTIL(cfx_plain_saw(&obs, mark, strlen(mark)), 5000));
	pthread_mutex_lock(&obs.lock);
	size_t on_topic = 0;
	for (size_t i = 0; i < obs.n; i++) {
		if (strcmp(obs.topic[i], c->topic) != 0)
			continue;
		const uint8_t *p = obs.payload[i];
		size_t len = obs.len[i];
		int fe = (int)on_topic++;
		ck_assert_int_lt(fe, FFX_N);
		bool clear = len == strlen(pt[fe]) && !memcmp(p, pt[fe], len);
		ck_assert_msg(c->wire == W_CLEAR ? clear : !clear, "%s: %s's payload on the wire", c->name, ffx_name[fe]);
		if (c->wire != W_CLEAR)
			ck_assert_msg(len > VEIL_OVERHEAD && p[0] == 1 && p[1] == (c->wire == W_SIGNED),
			              "%s: %s sent no %s envelope", c->name, ffx_name[fe],
			              c->wire == W_SIGNED ? "signed" : "unsigned");
	}
	pthread_mutex_unlock(&obs.lock);
	ck_assert_msg(on_topic == (c->wire == W_NONE ? 0U : (size_t)FFX_N), "%s: %zu messages on %s", c->name, on_topic,
	              c->topic);
	cfx_plain_close(&obs);
	struct ffx_counts n;
	memset(&n, 0, sizeof(n));
	n.published = c->err == VEIL_OK;
	n.sealed = c->wire == W_ENVELOPE || c->wire == W_SIGNED;
	n.publish_refused = c->err != VEIL_OK;
	char a[2048], b[2048];
	ffx_counts_str(&n, a, sizeof(a));
	ffx_counts_str(&o[0].n, b, sizeof(b));
	ck_assert_msg(!strcmp(a, b), "%s: counters %s, not %s", c->name, b, a);
	ck_assert_msg((c->wire == W_CLEAR || c->wire == W_NONE) == (o[0].log.n > 0), "%s: said %s", c->name, o[0].log.s);
	ffx_same_everywhere(c->name, o);
}
END_TEST


/* ====================================================================
 * The sequence across a sender restart.
 * ==================================================================== */

/* The mark persisted in a seq file (read from a copy: reading reserves). */
static uint64_t seq_mark(const char *path)
{
	char copy[600];
	ffx_pathf(copy, sizeof(copy), "%s.copy", path);
	size_t n = 0;
	char *t = test_file_read(path, &n);
	ck_assert_ptr_nonnull(t);
	ffx_write_bytes(copy, t, n, 0600);
	free(t);
	struct veil_seq *s = NULL;
	uint64_t v = 0;
	ck_assert_int_eq(veil_seq_open(copy, 0, &s), VEIL_OK);
	ck_assert_int_eq(veil_seq_next(s, &v), VEIL_OK);
	veil_seq_close(&s);
	unlink(copy);
	return v;
}

/* Each front end sends, is restarted on its state dir and sends again. Its
 * state dir starts with a mark an hour ahead of the clock (as after a burst
 * of messages, or a clock set back): both messages must be above the mark
 * persisted before them, so receivers (libveil and the preload) accept both. */
START_TEST(sender_restart)
{
	char conf[2][512], state[512], out[512];
	for (int i = 0; i < 2; i++) {
		ffx_pathf(state, sizeof(state), "%s/restart-%s", ffx_env.dir, i ? "fe-prx" : "fe-rx");
		ffx_conf(conf[i], sizeof(conf[i]), state, i ? "fe-prx" : "fe-rx");
	}
	int rc;
	struct ffx_lv *rx = ffx_lv_new(FFX_SYNC, conf[0], "fe-rx", &rc);
	ck_assert_int_eq(rc, VEIL_OK);
	ffx_lv_connect(rx, "sensors/seq");
	pid_t prx = ffx_app_spawn(FFX_PSYNC, conf[1], out, sizeof(out), "sub", "sensors/seq", NULL);
	ck_assert(test_file_wait(out, "subscribed\n", 15000));
	uint64_t mark_before[FFX_N], mark_between[FFX_N];
	struct ffx_text want;
	memset(&want, 0, sizeof(want));
	for (int fe = 0; fe < FFX_N; fe++) {
		char seq[600], pt[64];
		ffx_pathf(state, sizeof(state), "%s/seq-%s", ffx_env.dir, ffx_id[fe]);
		ffx_pathf(seq, sizeof(seq), "%s/seq", state);
		ck_assert_int_eq(mkdir(state, 0700), 0);
		struct veil_seq *s = NULL;
		uint64_t v;
		ck_assert_int_eq(veil_seq_open(seq, ffx_now_us() + 3600U * 1000000U, &s), VEIL_OK);
		ck_assert_int_eq(veil_seq_next(s, &v), VEIL_OK);
		veil_seq_close(&s);
		for (int run = 0; run < 2; run++) {
			(run ? mark_between : mark_before)[fe] = seq_mark(seq);
			static struct ffx_outcome o;
			snprintf(pt, sizeof(pt), "%s-%s", run ? "second" : "first", ffx_id[fe]);
			publish_one((enum ffx_fe)fe, "seq", "sensors/seq", pt, &o);
			ck_assert_msg(o.rc == VEIL_OK, "%s: publish %s", ffx_name[fe], veil_errname(o.rc));
			ffx_text_add(&want, "got sensors/seq %s\n", pt);
		}
	}
	struct cfx_plain eve;
	cfx_plain_connect(&ffx_env, &eve, "eve", NULL);
	cfx_plain_publish(&eve, FFX_END_TOPIC, "end", 3);
	cfx_plain_close(&eve);
	ffx_text_add(&want, "got %s end [clear]\n", FFX_END_TOPIC);
	ffx_lv_wait_end(rx, "libveil receiver");
	static struct ffx_outcome o[2];
	ffx_lv_finish(rx, &o[0]);
	rc = test_wait_exit(prx, 15000);
	if (rc != 0)
		test_file_dump("preload receiver", out);
	ck_assert_int_eq(rc, 0);
	ffx_preload_outcome(out, &o[1]);
	for (int i = 0; i < 2; i++)
		ck_assert_msg(!strcmp(o[i].ev.s, want.s), "%s receiver saw\n%s\nnot\n%s", i ? "preload" : "libveil",
		              o[i].ev.s, want.s);
	ck_assert_uint_eq(o[0].nseq, 2U * FFX_N);
	for (int fe = 0; fe < FFX_N; fe++) {
		uint64_t first = o[0].seq[2 * fe], second = o[0].seq[2 * fe + 1];
		ck_assert_msg(first >= mark_before[fe] && second >= mark_between[fe] && second > first,
		              "%s: sequence %llu then %llu, marks %llu then %llu", ffx_name[fe], (unsigned long long)first,
		              (unsigned long long)second, (unsigned long long)mark_before[fe],
		              (unsigned long long)mark_between[fe]);
	}
}
END_TEST

int main(int argc, char **argv)
{
	int rc = ffx_main(argc, argv);
	if (rc >= 0)
		return rc;
	Suite *s = suite_create("frontends");
	/* Each test runs the four front ends one after another; a preloaded
	 * app starts in well under a second. */
	TCase *tc = veil_tcase("start", 6);
	tcase_add_unchecked_fixture(tc, ffx_material, ffx_teardown);
	tcase_add_loop_test(tc, start_case, 0, N_START);
	suite_add_tcase(s, tc);
	tc = veil_tcase("publish", 8);
	tcase_add_unchecked_fixture(tc, ffx_material, ffx_teardown);
	tcase_add_loop_test(tc, publish_case, 0, N_PUB);
	suite_add_tcase(s, tc);
	/* Eight publishers in turn, two receivers. */
	tc = veil_tcase("sender-restart", 15);
	tcase_add_unchecked_fixture(tc, ffx_material, ffx_teardown);
	tcase_add_test(tc, sender_restart);
	suite_add_tcase(s, tc);
	return veil_check_run(s);
}
