/*
 * The admin API, broker side (docs/OPERATIONS.md): Mosquitto's CONTROL event
 * for $CONTROL/veil/v1 (as dynsec's $CONTROL/dynamic-security/v1), the
 * commands, and their responses on $CONTROL/veil/v1/response. The parser
 * is control_parse.c, the listings control_list.c; who may publish and read those topics is decided by
 * veil_topics.c before any command reaches this file, and checked here once
 * more (without a rules file the plugin's ACL defers, and Mosquitto's own
 * acl_file could let anyone write there).
 *
 * Changes go to the runtime files in the state dir (auth_config.c), written
 * atomically and loaded exactly as an operator's edit of them is; the
 * sweep that kicks revoked or deleted clients runs at the next TICK, and so
 * do kickClient's kicks: never from inside a broker callback.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>
#include <sodium.h>

#include "veil/error.h"
#include "../core/bundle.h" /* veil__role_valid */
#include "auth_private.h"
#include "control.h"
#include "metrics.h"
#include "options.h"
#include "passwd.h"
#include "plugin_private.h"
#include "revoke.h"
#include "veil_topics.h"

struct kick {
	char *client_id;
	char by[80];                 /* the admin, for the audit line */
};

struct vp_control {
	char *admin_role;
	struct kick *kicks;          /* kickClient: done at the next TICK */
	size_t n_kicks, cap_kicks;
};

#define OFF(f) offsetof(struct vp_control, f)
static const struct vp_opt opt_defs[] = {
	/* the credential role that may use the admin API */
	{ "admin_role", VP_OPT_STRING, OFF(admin_role), 0, 0, 0 },
};
#define N_OPTS (sizeof(opt_defs) / sizeof(opt_defs[0]))

bool vp_control__option_known(const char *key)
{
	return vp_options__known(opt_defs, N_OPTS, key);
}

int vp_control__new(struct vp_ctx *ctx, struct mosquitto_opt *opts, int count, struct vp_control **out)
{
	struct vp_control *c = calloc(1, sizeof(*c));
	if (!c)
		return VEIL_ERR_NOMEM;
	int rc = vp_options__parse(opt_defs, N_OPTS, c, "control", opts, count);
	if (rc == VEIL_OK && !c->admin_role && !(c->admin_role = strdup(VP_ADMIN_ROLE_DEFAULT)))
		rc = VEIL_ERR_NOMEM;
	if (rc == VEIL_OK && !veil__role_valid(c->admin_role))
		rc = vp_options__refuse("control", "admin_role", c->admin_role, "not-a-role-name");
	if (rc != VEIL_OK) {
		vp_control__free(&c);
		return rc;
	}
	ctx->admin_role = c->admin_role;
	*out = c;
	return VEIL_OK;
}

void vp_control__free(struct vp_control **cp)
{
	if (!cp || !*cp)
		return;
	struct vp_control *c = *cp;
	for (size_t i = 0; i < c->n_kicks; i++)
		free(c->kicks[i].client_id);
	free(c->kicks);
	vp_options__free(opt_defs, N_OPTS, c);
	free(c);
	*cp = NULL;
}

/* ---- one command ---- */

struct run {
	struct vp_ctx *ctx;
	struct vp_auth *a;
	const struct vp_cmd *cmd;
	const char *admin;           /* cleaned, for audit lines */
	cJSON *data;                 /* the response's "data" */
	const char *error, *reason;
	char why[320];               /* error sentences that name a file */
	char target[160];            /* " target=..." for the audit line */
};

static void fail(struct run *r, const char *reason, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void fail(struct run *r, const char *reason, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(r->why, sizeof(r->why), fmt, ap);
	va_end(ap);
	r->error = r->why;
	r->reason = reason;
}

static bool nomem(struct run *r)
{
	fail(r, "internal-error", "out of memory");
	return false;
}

/* A text being built: runtime files hold password hashes, so it is wiped. */
struct text {
	char *s;
	size_t len, cap;
	bool failed;
};

static void text_add(struct text *t, const char *a, const char *b)
{
	size_t n = strlen(a) + strlen(b) + 1;
	if (t->failed)
		return;
	if (t->len + n + 1 > t->cap) {
		size_t nc = (t->cap + n + 1) * 2;
		char *p = malloc(nc);
		if (!p) {
			t->failed = true;
			return;
		}
		if (t->s) {
			memcpy(p, t->s, t->len);
			sodium_memzero(t->s, t->cap);
			free(t->s);
		}
		t->s = p;
		t->cap = nc;
	}
	t->len += (size_t)snprintf(t->s + t->len, t->cap - t->len, "%s%s\n", a, b);
}

static void text_free(struct text *t)
{
	if (t->s) {
		sodium_memzero(t->s, t->cap);
		free(t->s);
	}
	memset(t, 0, sizeof(*t));
}

static const char RT_HEADER[] = "# Written by mosquitto_veil.so for the admin API ($CONTROL/veil/v1); read in "
                                "addition to the operator's file. Edits here count as edits there.";

/* The runtime revocation list, rewritten without skip (cred or client id)
 * and with add. */
struct rev_edit {
	struct text t;
	const uint8_t *skip_cred;
	const char *skip_client;
	bool skipped;
};

static void rev_line(void *arg, const uint8_t *cred, const char *client)
{
	struct rev_edit *e = arg;
	if ((cred && e->skip_cred && !memcmp(cred, e->skip_cred, VEIL_CREDENTIAL_ID_BYTES)) ||
	    (client && e->skip_client && !strcmp(client, e->skip_client))) {
		e->skipped = true;
		return;
	}
	char hex[2 * VEIL_CREDENTIAL_ID_BYTES + 1];
	if (cred) {
		sodium_bin2hex(hex, sizeof(hex), cred, VEIL_CREDENTIAL_ID_BYTES);
		text_add(&e->t, "credential ", hex);
	} else if (client) {
		text_add(&e->t, "client ", client);
	}
}

static bool rev_write(struct run *r, struct rev_edit *e, const uint8_t *add_cred, const char *add_client)
{
	text_add(&e->t, RT_HEADER, "");
	vp_revoke__each(r->a->revoke_rt, rev_line, e);
	char hex[2 * VEIL_CREDENTIAL_ID_BYTES + 1];
	if (add_cred) {
		sodium_bin2hex(hex, sizeof(hex), add_cred, VEIL_CREDENTIAL_ID_BYTES);
		text_add(&e->t, "credential ", hex);
	} else if (add_client) {
		text_add(&e->t, "client ", add_client);
	}
	char err[300] = "";
	int rc = e->t.failed ? VEIL_ERR_NOMEM
	                     : vp_auth__runtime_write(r->a, VP_RUNTIME_REVOCATIONS, e->t.s, e->t.len, err, sizeof(err));
	text_free(&e->t);
	if (rc != VEIL_OK) {
		fail(r, "write-failed", "the runtime revocation file was not changed: %s", err[0] ? err : veil_strerror(rc));
		return false;
	}
	r->a->sweep_now = true; /* kick at the next TICK */
	return true;
}

static bool runtime_ready(struct run *r, enum vp_runtime which)
{
	char err[300] = "";
	int rc = vp_auth__runtime_current(r->a, which, err, sizeof(err));
	if (rc == VEIL_OK)
		return true;
	fail(r, r->a->state_dir ? "write-failed" : "no-state-dir", "%s", err);
	return false;
}

/* Connected clients (not parked, not departed) the plugin logged in. */
struct census {
	const char *client_id;
	const char *username;        /* password logins of this user */
	const uint8_t *cred;
	size_t n;
};

static bool match_one(struct vp_client *c, void *arg)
{
	struct census *k = arg;
	if (!vp_control__online(c))
		return true;
	if ((k->client_id && !strcmp(c->client_id, k->client_id)) ||
	    (k->username && c->login == VP_LOGIN_PASSWORD && c->username && !strcmp(c->username, k->username)) ||
	    (k->cred && c->login == VP_LOGIN_CREDENTIAL &&
	     !memcmp(c->credential_id, k->cred, VEIL_CREDENTIAL_ID_BYTES)))
		k->n++;
	return true;
}

static size_t connected(struct run *r, const char *client_id, const uint8_t *cred)
{
	struct census k = { .client_id = client_id, .cred = cred };
	vp_clients__foreach(r->ctx->clients, match_one, &k);
	return k.n;
}

static size_t connected_user(struct run *r, const char *username)
{
	struct census k = { .username = username };
	vp_clients__foreach(r->ctx->clients, match_one, &k);
	return k.n;
}

static void say_target(struct run *r, const char *what, const char *value)
{
	char v[80];
	snprintf(r->target, sizeof(r->target), " %s=%s", what, vp_log__clean(value, v, sizeof(v)));
}

/* A revocation command's entry, for the audit line. */
static void say_entry(struct run *r)
{
	const struct vp_cmd *c = r->cmd;
	char hex[2 * VEIL_CREDENTIAL_ID_BYTES + 1];
	if (c->has_credential) {
		sodium_bin2hex(hex, sizeof(hex), c->credential_id, VEIL_CREDENTIAL_ID_BYTES);
		say_target(r, "credential", hex);
	} else {
		say_target(r, "target", c->client_id);
	}
}

/* Whether the list l holds the command's entry. */
static bool listed(const struct vp_cmd *c, const struct vp_revoke *l)
{
	return c->has_credential ? vp_revoke__credential(l, c->credential_id) : vp_revoke__client(l, c->client_id);
}

static bool revoke(struct run *r)
{
	const struct vp_cmd *c = r->cmd;
	say_entry(r);
	if (!runtime_ready(r, VP_RUNTIME_REVOCATIONS))
		return false;
	bool already = listed(c, r->a->revoke);
	struct rev_edit e = { 0 };
	if (!already && !rev_write(r, &e, c->has_credential ? c->credential_id : NULL, c->client_id))
		return false;
	size_t n = connected(r, c->client_id, c->has_credential ? c->credential_id : NULL);
	return cJSON_AddBoolToObject(r->data, "alreadyRevoked", already) &&
	       cJSON_AddNumberToObject(r->data, "kicked", (double)n) ? true : nomem(r);
}

static bool remove_revocation(struct run *r)
{
	const struct vp_cmd *c = r->cmd;
	say_entry(r);
	if (!runtime_ready(r, VP_RUNTIME_REVOCATIONS))
		return false;
	bool in_rt = listed(c, r->a->revoke_rt);
	bool in_file = listed(c, r->a->revoke_file);
	if (!in_rt) {
		if (in_file)
			fail(r, "operator-file", "revoked in the operator's revocation file (%s): edit it there",
			     r->a->revocation_file);
		else
			fail(r, "not-found", "not revoked");
		return false;
	}
	struct rev_edit e = { .skip_cred = c->has_credential ? c->credential_id : NULL, .skip_client = c->client_id };
	if (!rev_write(r, &e, NULL, NULL))
		return false;
	return cJSON_AddBoolToObject(r->data, "stillRevoked", in_file) ? true : nomem(r);
}

/* ---- password users ---- */

struct pw_edit {
	struct text t;
	const char *skip;
	bool skipped;
};

static void pw_line(void *arg, const char *user, const char *hash)
{
	struct pw_edit *e = arg;
	if (e->skip && !strcmp(user, e->skip)) {
		e->skipped = true;
		return;
	}
	char line[VEIL_CLIENT_ID_MAX + 2];
	snprintf(line, sizeof(line), "%s:", user);
	text_add(&e->t, line, hash);
}

static bool pw_write(struct run *r, struct pw_edit *e, const char *add_user, const char *add_hash)
{
	text_add(&e->t, RT_HEADER, "");
	vp_passwd__each(r->a->passwd_rt, pw_line, e);
	if (add_user && add_hash) {
		char line[VEIL_CLIENT_ID_MAX + 2];
		snprintf(line, sizeof(line), "%s:", add_user);
		text_add(&e->t, line, add_hash);
	}
	char err[300] = "";
	int rc = e->t.failed ? VEIL_ERR_NOMEM
	                     : vp_auth__runtime_write(r->a, VP_RUNTIME_PASSWD, e->t.s, e->t.len, err, sizeof(err));
	text_free(&e->t);
	if (rc != VEIL_OK) {
		fail(r, "write-failed", "the runtime password file was not changed: %s", err[0] ? err : veil_strerror(rc));
		return false;
	}
	r->a->sweep_now = true; /* a removed user's clients go at the next TICK */
	return true;
}

static uint64_t mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000U + (uint64_t)ts.tv_nsec / 1000U;
}

static bool credential_client_named(struct vp_client *c, void *arg)
{
	struct census *k = arg;
	if (!c->departed && c->login == VP_LOGIN_CREDENTIAL && c->client_id && !strcmp(c->client_id, k->client_id))
		k->n++;
	return true;
}

static bool add_user(struct run *r)
{
	const struct vp_cmd *c = r->cmd;
	say_target(r, "user", c->username);
	if (!runtime_ready(r, VP_RUNTIME_PASSWD))
		return false;
	if (vp_passwd__hash(r->a->passwd, c->username)) {
		fail(r, "exists", "user exists (in the %s password file)",
		     vp_passwd__hash(r->a->passwd_file, c->username) ? "operator's" : "runtime");
		return false;
	}
	/* A user name is a client id no credential may use (docs/AUTH.md,
	 * "Client ids"): it must not lock out a device that has it. */
	struct census k = { .client_id = c->username };
	vp_clients__foreach(r->ctx->clients, credential_client_named, &k);
	if (k.n) {
		fail(r, "exists", "a device with a credential uses this client id: it could no longer log in");
		return false;
	}
	char hash[VP_PASSWD_HASH_MAX];
	uint64_t t0 = mono_us();
	int rc = vp_passwd__make_hash(c->password, c->password_len, hash);
	r->a->hashes_total++;
	r->a->hash_us_total += mono_us() - t0;
	sodium_memzero(c->password, c->password_len); /* the only copy left is the hash */
	if (rc != VEIL_OK) {
		sodium_memzero(hash, sizeof(hash));
		return nomem(r);
	}
	struct pw_edit e = { 0 };
	bool ok = pw_write(r, &e, c->username, hash);
	sodium_memzero(hash, sizeof(hash));
	return ok;
}

static bool remove_user(struct run *r)
{
	const struct vp_cmd *c = r->cmd;
	say_target(r, "user", c->username);
	if (!runtime_ready(r, VP_RUNTIME_PASSWD))
		return false;
	if (!vp_passwd__hash(r->a->passwd_rt, c->username)) {
		if (vp_passwd__hash(r->a->passwd_file, c->username))
			fail(r, "operator-file", "the user is in the operator's password file (%s): edit it there",
			     r->a->password_file);
		else
			fail(r, "not-found", "no such user");
		return false;
	}
	struct pw_edit e = { .skip = c->username };
	if (!pw_write(r, &e, NULL, NULL))
		return false;
	return cJSON_AddNumberToObject(r->data, "kicked", (double)connected_user(r, c->username)) ? true : nomem(r);
}

/* ---- listings (control_list.c), kicks, reload, counters ---- */

static void listed_ok(struct run *r, bool ok)
{
	if (!ok)
		nomem(r);
}


static bool kick(struct run *r, struct vp_control *ctl)
{
	const char *id = r->cmd->client_id;
	say_target(r, "target", id);
	if (!connected(r, id, NULL)) {
		fail(r, "not-found", "client not connected (or not logged in by this plugin)");
		return false;
	}
	if (ctl->n_kicks == ctl->cap_kicks) {
		size_t nc = ctl->cap_kicks ? ctl->cap_kicks * 2 : 8;
		struct kick *p = realloc(ctl->kicks, nc * sizeof(*p));
		if (!p)
			return nomem(r);
		ctl->kicks = p;
		ctl->cap_kicks = nc;
	}
	struct kick *k = &ctl->kicks[ctl->n_kicks];
	if (!(k->client_id = strdup(id)))
		return nomem(r);
	snprintf(k->by, sizeof(k->by), "%s", r->admin);
	ctl->n_kicks++;
	return true;
}

static bool reload(struct run *r)
{
	int ra = vp_auth__load_files(r->a, true, NULL);
	int rb = vp_acl__reload(r->ctx);
	r->a->sweep_now = true;
	bool ok = ra == VEIL_OK && rb == VEIL_OK;
	/* The line SIGHUP's reload writes (plugin.c), counted alike. */
	vp_log__audit(MOSQ_LOG_NOTICE, "plugin", "reload", "result=%s auth=%s acl=%s trigger=control by=%s",
	              ok ? "ok" : "failed", ra == VEIL_OK ? "ok" : "kept-old", rb == VEIL_OK ? "ok" : "kept-old",
	              r->admin);
	if (!cJSON_AddStringToObject(r->data, "auth", ra == VEIL_OK ? "ok" : "kept-old") ||
	    !cJSON_AddStringToObject(r->data, "acl", rb == VEIL_OK ? "ok" : "kept-old"))
		return nomem(r);
	if (!ok)
		fail(r, "reload-failed", "a file did not load: the old state of %s is kept (the broker's log says why)",
		     ra != VEIL_OK ? "the authentication files" : "the rules file");
	return ok;
}

static bool counters(struct run *r)
{
	vp_metrics__refresh(r->ctx->metrics, r->ctx);
	cJSON *m = vp_metrics__json(r->ctx->metrics);
	if (!m)
		return nomem(r);
	cJSON_AddItemToObject(r->data, "counters", m);
	return true;
}

static void run_command(struct vp_ctx *ctx, const struct vp_cmd *cmd, const char *admin, cJSON *responses)
{
	struct run r = { .ctx = ctx, .a = ctx->auth, .cmd = cmd, .admin = admin };
	if (cmd->error) {
		r.error = cmd->error;
		r.reason = cmd->reason;
	} else if ((r.data = cJSON_CreateObject())) {
		switch (cmd->kind) {
		case VP_CMD_LIST_CLIENTS: listed_ok(&r, vp_control__list_clients(ctx, cmd, r.data)); break;
		case VP_CMD_KICK_CLIENT: kick(&r, ctx->control); break;
		case VP_CMD_REVOKE_CLIENT:
		case VP_CMD_REVOKE_CREDENTIAL: revoke(&r); break;
		case VP_CMD_REMOVE_REVOCATION: remove_revocation(&r); break;
		case VP_CMD_LIST_REVOCATIONS: listed_ok(&r, vp_control__list_revocations(ctx, cmd, r.data)); break;
		case VP_CMD_LIST_PASSWORD_USERS: listed_ok(&r, vp_control__list_users(ctx, cmd, r.data)); break;
		case VP_CMD_ADD_PASSWORD_USER: add_user(&r); break;
		case VP_CMD_REMOVE_PASSWORD_USER: remove_user(&r); break;
		case VP_CMD_RELOAD: reload(&r); break;
		case VP_CMD_GET_COUNTERS: counters(&r); break;
		case VP_CMD_UNKNOWN: fail(&r, "unknown-command", "unknown command"); break;
		}
	} else {
		nomem(&r);
	}
	char given[80];
	const char *name = cmd->kind == VP_CMD_UNKNOWN ? "unknown" : cmd->name;
	if (r.error)
		vp_log__audit(MOSQ_LOG_NOTICE, "control", "command", "client=%s command=%s result=error reason=%s%s%s%s",
		              admin, name, r.reason, r.target, cmd->kind == VP_CMD_UNKNOWN && cmd->given ? " given=" : "",
		              cmd->kind == VP_CMD_UNKNOWN && cmd->given ? vp_log__clean(cmd->given, given, sizeof(given))
		                                                        : "");
	else
		vp_log__audit(MOSQ_LOG_NOTICE, "control", "command", "client=%s command=%s result=ok%s", admin, name,
		              r.target);
	/* The reply names the command as it was sent (dynsec does). */
	const char *reply_name = cmd->kind == VP_CMD_UNKNOWN ? (cmd->given ? cmd->given : "Unknown command") : cmd->name;
	cJSON *resp = vp_control__reply_add(responses, reply_name, cmd->correlation, r.error, r.reason);
	if (resp && !r.error && r.data) {
		cJSON_AddItemToObject(resp, "data", r.data);
		r.data = NULL;
	}
	cJSON_Delete(r.data);
}

/* ---- the event ---- */

static void publish(cJSON *reply)
{
	char *s = cJSON_PrintUnformatted(reply);
	if (!s) {
		vp_log__audit(MOSQ_LOG_ERR, "control", "response-lost", "reason=out-of-memory");
		return;
	}
	size_t n = strlen(s);
	/* QoS 1: a response is what the admin waits for. */
	if (n > 268435455U ||
	    mosquitto_broker_publish_copy(NULL, VP_CONTROL_RESPONSE_TOPIC, (int)n, s, 1, false, NULL) != MOSQ_ERR_SUCCESS)
		vp_log__audit(MOSQ_LOG_ERR, "control", "response-lost", "bytes=%zu", n);
	cJSON_free(s);
}

int vp_control__event(struct vp_ctx *ctx, struct mosquitto_evt_control *ed)
{
	if (!ctx || !ctx->control || !ed || !ed->client)
		return MOSQ_ERR_SUCCESS;
	const char *cid = mosquitto_client_id(ed->client);
	char admin[80];
	vp_log__clean(cid, admin, sizeof(admin));
	struct vp_client *me = vp_clients__get(ctx->clients, ed->client);
	if (me && (!me->client_id || !cid || strcmp(me->client_id, cid) != 0))
		me = NULL;
	bool is_admin = me && me->has_identity && !me->kick_pending && vp_vtopic__has_role(me->roles, ctx->admin_role);
	cJSON *responses = NULL;
	cJSON *reply = vp_control__reply_new(&responses);
	if (!reply) {
		vp_log__audit(MOSQ_LOG_ERR, "control", "response-lost", "client=%s reason=out-of-memory", admin);
		return MOSQ_ERR_SUCCESS;
	}
	struct vp_control_req req;
	int rc = is_admin ? vp_control__parse(ed->payload, ed->payloadlen, &req) : VEIL_OK;
	if (!is_admin) {
		vp_log__audit(MOSQ_LOG_NOTICE, "control", "command", "client=%s command=- result=error reason=not-admin",
		              admin);
		vp_control__reply_add(responses, "Unknown command", NULL,
		                      "not authorised: commands come from credentials with the admin role", "not-admin");
	} else if (rc != VEIL_OK || req.error) {
		const char *reason = rc != VEIL_OK ? "internal-error" : req.reason;
		vp_log__audit(MOSQ_LOG_NOTICE, "control", "command", "client=%s command=- result=error reason=%s bytes=%u",
		              admin, reason, (unsigned)ed->payloadlen);
		vp_control__reply_add(responses, "Unknown command", NULL, rc != VEIL_OK ? "out of memory" : req.error,
		                      reason);
	} else {
		for (size_t i = 0; i < req.n; i++)
			run_command(ctx, &req.cmds[i], admin, responses);
	}
	if (is_admin)
		vp_control__req_free(&req);
	/* The request may hold a password. Mosquitto frees this copy right after
	 * the event (control__process, then db__msg_store_free): wipe it first. */
	if (ed->payload && ed->payloadlen)
		sodium_memzero((void *)(uintptr_t)ed->payload, ed->payloadlen);
	publish(reply);
	cJSON_Delete(reply);
	return MOSQ_ERR_SUCCESS;
}

void vp_control__tick(struct vp_ctx *ctx, time_t now)
{
	(void)now;
	struct vp_control *c = ctx ? ctx->control : NULL;
	if (!c || c->n_kicks == 0)
		return;
	/* Taken first: a kick runs the DISCONNECT event, which may log. */
	struct kick *k = c->kicks;
	size_t n = c->n_kicks;
	c->kicks = NULL;
	c->n_kicks = c->cap_kicks = 0;
	for (size_t i = 0; i < n; i++) {
		char id[80];
		vp_log__audit(MOSQ_LOG_NOTICE, "control", "kick", "client=%s by=%s reason=admin-kick",
		              vp_log__clean(k[i].client_id, id, sizeof(id)), k[i].by);
		mosquitto_kick_client_by_clientid(k[i].client_id, false);
		free(k[i].client_id);
	}
	free(k);
}
