/*
 * Authentication events (broker-facing): BASIC_AUTH (MQTT 3.1.1 token in the
 * password, legacy password file, anonymous), EXT_AUTH_START (MQTT 5
 * Authentication Method "veil-v1", single step), the SIGHUP re-check, and
 * the TICK that polls the files, notices revoked, deleted and expired
 * clients, and kicks them. Kicks happen only here in TICK, never inside
 * another callback. Rules and rate limit: docs/AUTH.md.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>
#include <sodium.h>

#include "veil/error.h"
#include "plugin_private.h"
#include "auth_private.h"
#include "bridge.h"
#include "../core/credcache.h"
#include "login_quota.h"
#include "nonce_cache.h"
#include "passwd.h"
#include "proxy.h"
#include "ratelimit.h"
#include "revoke.h"

/* One login attempt: who, from where, and printable copies for the audit line. */
struct attempt {
	struct vp_ctx *ctx;
	struct vp_auth *a;
	struct mosquitto *client;
	const char *cid;
	const char *addr;
	char cid_log[80];
	char addr_log[80];
	const char *method;
	bool reauth; /* SIGHUP re-check of a connected client */
	bool bridge; /* the username is a declared bridge's (bridge.h) */
};

static int refuse(struct attempt *at, const char *reason)
{
	vp_log__audit(MOSQ_LOG_NOTICE, "auth", "refuse", "client=%s addr=%s method=%s reason=%s", at->cid_log,
	              at->addr_log, at->method, reason);
	return MOSQ_ERR_AUTH;
}

/* The address key of the back-off, or NULL for a load balancer's address
 * (plugin_opt_proxy_addresses): every client behind it would share it. */
static const char *addr_key(const struct attempt *at, char *key, size_t cap)
{
	if (vp_proxies__has(at->a->proxies, at->addr))
		return NULL;
	snprintf(key, cap, "a:%s", at->addr);
	return key;
}

/* Only password logins are counted and limited: a password is the only
 * guessable secret. Tokens cannot be guessed, so a failed token never
 * delays anyone (docs/AUTH.md, "Rate limit"). */
static void count_failure(struct attempt *at, const char *user)
{
	if (at->reauth)
		return;
	uint64_t now = vp_ratelimit__now_ms();
	char key[VEIL_CLIENT_ID_MAX + 8];
	vp_ratelimit__fail(at->a->rl, addr_key(at, key, sizeof(key)), now);
	snprintf(key, sizeof(key), "u:%s", user);
	vp_ratelimit__fail(at->a->rl, key, now);
}

/* Longest remaining block of the address and the user (0: allowed). */
static uint64_t blocked_ms(struct attempt *at, const char *user)
{
	uint64_t now = vp_ratelimit__now_ms();
	char key[VEIL_CLIENT_ID_MAX + 8];
	uint64_t b = vp_ratelimit__blocked_ms(at->a->rl, addr_key(at, key, sizeof(key)), now);
	snprintf(key, sizeof(key), "u:%s", user);
	uint64_t u = vp_ratelimit__blocked_ms(at->a->rl, key, now);
	return b > u ? b : u;
}

/* One name per condition, as docs/PROTOCOL.md section 4 names it: the
 * core's error names, and malformed-token for any structural error. */
static const char *token_reason(int rc)
{
	switch (rc) {
	case VEIL_ERR_EXPIRED:
	case VEIL_ERR_NOT_YET_VALID:
	case VEIL_ERR_WRONG_AUTHORITY:
	case VEIL_ERR_BAD_SIGNATURE:
	case VEIL_ERR_CLIENT_ID:
	case VEIL_ERR_STALE:
	case VEIL_ERR_WRONG_AUDIENCE:
		return veil_errname(rc);
	case VEIL_ERR_TRUNCATED:
	case VEIL_ERR_TOO_LARGE:
	case VEIL_ERR_VERSION:
	case VEIL_ERR_RESERVED_FLAGS:
	case VEIL_ERR_PARSE: return "malformed-token";
	default: return "invalid-token";
	}
}

static struct vp_client *remember(struct attempt *at, const char *username, enum vp_login login)
{
	struct vp_client *c =
		vp_clients__put(at->ctx->clients, at->client, at->cid, username, vp_acl__client_cache_free);
	if (c) {
		c->login = login;
		c->bridge = at->bridge;
		c->connected_at = time(NULL);
	}
	return c;
}

/* docs/PROTOCOL.md section 4, step 2, the deployment's side: a version 1
 * token at a broker with an audience is its policy (plugin_opt_token_v1);
 * a version 2 token for another deployment says which, for the operator. */
static int refuse_audience(struct attempt *at, unsigned version, const char *audience)
{
	char aud[80];
	vp_log__audit(MOSQ_LOG_NOTICE, "auth", "refuse", "client=%s addr=%s method=%s reason=%s token=v%u audience=%s",
	              at->cid_log, at->addr_log, at->method, version == 1 ? "token-v1-refused" : "wrong-audience",
	              version, audience[0] ? vp_log__clean(audience, aud, sizeof(aud)) : "-");
	return MOSQ_ERR_AUTH;
}

/* Over its share of the replay cache: the credential, for the operator
 * (a device that logs in far too often is broken or stolen). */
static int refuse_quota(struct attempt *at, const struct veil_token *t)
{
	char hex[2 * VEIL_CREDENTIAL_ID_BYTES + 1];
	sodium_bin2hex(hex, sizeof(hex), t->cred.id, VEIL_CREDENTIAL_ID_BYTES);
	vp_log__audit(MOSQ_LOG_WARNING, "auth", "login-quota", "client=%s credential=%s quota=%u seconds=%u",
	              at->cid_log, hex, vp_login_quota__quota(at->a->quota), 2U * (2U * at->a->token_window + 1U));
	return refuse(at, "login-quota");
}

static int credential_login(struct attempt *at, const uint8_t *tok, size_t len)
{
	struct vp_auth *a = at->a;
	if (a->n_authorities == 0)
		return refuse(at, "no-authority-configured");
	unsigned version = 0;
	char audience[VEIL_AUDIENCE_MAX + 1];
	if (veil_token_audience(tok, len, &version, audience) != VEIL_OK)
		return refuse(at, "malformed-token");
	if (version == 1 && a->refuse_v1)
		return refuse_audience(at, version, audience);
	uint64_t now = (uint64_t)time(NULL);
	struct veil_token t;
	int rc = veil__token_verify_cached(a->credcache, tok, len, at->cid, a->audience,
	                                   (const uint8_t(*)[VEIL_PK_BYTES])a->authorities, a->n_authorities, now,
	                                   a->token_window, &t, NULL);
	if (rc == VEIL_ERR_WRONG_AUDIENCE)
		return refuse_audience(at, version, audience);
	if (rc != VEIL_OK) {
		return refuse(at, token_reason(rc));
	}
	/* Without the nonce journal the replay cache starts empty: a token
	 * minted before this start could have been used already. */
	if (!a->nonces_persisted && t.timestamp < (uint64_t)a->started_at)
		return refuse(at, "token-before-start");
	if (vp_revoke__credential(a->revoke, t.cred.id))
		return refuse(at, "revoked-credential");
	if (vp_revoke__client(a->revoke, at->cid))
		return refuse(at, "revoked-client");
	/* This credential's share of the replay cache (login_quota.h): a
	 * device cannot fill the cache and lock every credential out. */
	if (!vp_login_quota__room(a->quota, t.cred.id, now))
		return refuse_quota(at, &t);
	/* Remember the nonce until the token can no longer be fresh. */
	switch (vp_nonce_cache__add(a->nonces, t.nonce, t.timestamp + a->token_window + 1, now)) {
	case VP_NONCE_FRESH:
		if (!vp_login_quota__count(a->quota, t.cred.id, now))
			return refuse_quota(at, &t);
		break;
	case VP_NONCE_REPLAY:
		return refuse(at, "replayed-token");
	case VP_NONCE_FULL:
		vp_log__audit(MOSQ_LOG_WARNING, "auth", "replay-cache-full", "capacity=%u", a->replay_cache_size);
		return refuse(at, "replay-cache-full");
	}
	struct vp_client *c = remember(at, at->cid, VP_LOGIN_CREDENTIAL);
	if (!c)
		return MOSQ_ERR_NOMEM;
	c->has_identity = true;
	memcpy(c->device_pk, t.cred.device_pk, VEIL_PK_BYTES);
	veil_sender_id(t.cred.device_pk, c->sender_id);
	memcpy(c->credential_id, t.cred.id, VEIL_CREDENTIAL_ID_BYTES);
	memcpy(c->authority_id, t.cred.authority_id, VEIL_AUTHORITY_ID_BYTES);
	c->credential_expires = t.cred.expires_at;
	snprintf(c->roles, sizeof(c->roles), "%s", t.cred.roles);
	char hex[2 * VEIL_CREDENTIAL_ID_BYTES + 1], roles[80];
	sodium_bin2hex(hex, sizeof(hex), t.cred.id, VEIL_CREDENTIAL_ID_BYTES);
	vp_log__audit(MOSQ_LOG_NOTICE, "auth", "accept",
	              "client=%s addr=%s method=%s roles=%s credential=%s expires=%llu token=v%u", at->cid_log,
	              at->addr_log, at->method, t.cred.roles[0] ? vp_log__clean(t.cred.roles, roles, sizeof(roles)) : "-",
	              hex, (unsigned long long)t.cred.expires_at, version);
	if (version == 1) {
		/* One line per version 1 login (the metrics count them): a warning
		 * while the deployment has a name, since these are the devices left
		 * to configure; without one every login is version 1. */
		a->token_v1_logins++;
		vp_log__audit(a->audience ? MOSQ_LOG_WARNING : MOSQ_LOG_INFO, "auth", "token-v1",
		              "client=%s addr=%s logins=%llu (a token bound to no deployment: configure the device's "
		              "audience)",
		              at->cid_log, at->addr_log, (unsigned long long)a->token_v1_logins);
	}
	sodium_memzero(&t, sizeof(t));
	return MOSQ_ERR_SUCCESS;
}

/*
 * Who may use which client id (docs/AUTH.md, "Client ids"). A credential
 * can be issued for any client id, so the ids of password and anonymous
 * logins come from namespaces no credential login may use:
 * - password logins (decided here or deferred to Mosquitto): the username
 *   itself, or a broker-assigned id (plugin_opt_auto_id_prefix, Mosquitto's
 *   auto_id_prefix, default "auto-");
 * - anonymous logins: broker-assigned ids only;
 * - credential logins: neither a broker-assigned id nor a username of the
 *   password file.
 * A low-privilege user can then never connect as a device: kick it, take
 * over its persistent session (and its queue), or gain its %c rights.
 */
static bool auto_id(const struct vp_auth *a, const char *cid)
{
	size_t n = strlen(a->auto_id_prefix);
	return cid && n && !strncmp(cid, a->auto_id_prefix, n) && cid[n] != '\0';
}

static bool client_id_allowed(const struct vp_auth *a, const char *cid, const char *user)
{
	return auto_id(a, cid) || (user && cid && !strcmp(cid, user));
}

static bool client_id_reserved(const struct vp_auth *a, const char *cid)
{
	return auto_id(a, cid) || vp_passwd__hash(a->passwd, cid) != NULL;
}

static int password_accept(struct attempt *at, const char *user, bool cached)
{
	/* A reload's re-check keeps the entry as it is (parked or online). */
	if (!at->reauth && !remember(at, user, VP_LOGIN_PASSWORD))
		return MOSQ_ERR_NOMEM;
	char u[80];
	vp_log__audit(MOSQ_LOG_NOTICE, "auth", "accept", "client=%s addr=%s method=%s user=%s cached=%s",
	              at->cid_log, at->addr_log, at->method, vp_log__clean(user, u, sizeof(u)), cached ? "yes" : "no");
	return MOSQ_ERR_SUCCESS;
}

static int password_login(struct attempt *at, const char *user, const char *password)
{
	struct vp_auth *a = at->a;
	at->method = at->bridge ? "bridge" : "password";
	if (vp_revoke__client(a->revoke, at->cid))
		return refuse(at, "revoked-client");
	const char *stored = vp_passwd__hash(a->passwd, user);
	uint64_t now = (uint64_t)time(NULL);
	/* A bridge is the plugin's own file's user: never Mosquitto's. */
	if (!stored && a->defer_unknown && !at->bridge) {
		vp_log__audit(MOSQ_LOG_INFO, "auth", "defer", "client=%s addr=%s method=password reason=unknown-user",
		              at->cid_log, at->addr_log);
		return MOSQ_ERR_PLUGIN_DEFER;
	}
	/* A recent success with the same password and the same file entry: the
	 * legitimate owner is not locked out by someone else's failures. */
	if (stored && password && vp_pwcache__hit(a->pwcache, user, password, stored, now))
		return password_accept(at, user, true);
	if (!at->reauth) {
		uint64_t b = blocked_ms(at, user);
		if (b > 0) {
			vp_log__audit(MOSQ_LOG_NOTICE, "auth", "refuse",
			              "client=%s addr=%s method=password reason=rate-limited retry_ms=%llu", at->cid_log,
			              at->addr_log, (unsigned long long)b);
			return MOSQ_ERR_AUTH;
		}
	}
	if (!password || !*password) {
		count_failure(at, user);
		return refuse(at, stored ? "no-password" : "unknown-user");
	}
	/* An unknown user costs what a wrong password costs (one Argon2id run
	 * against a real entry's parameters, from the same budget), so timing
	 * does not tell which usernames exist. */
	const char *against = stored ? stored : vp_passwd__decoy(a->passwd);
	char key[VEIL_CLIENT_ID_MAX + 8];
	snprintf(key, sizeof(key), "u:%s", user);
	bool suspect = vp_ratelimit__failures(a->rl, key, vp_ratelimit__now_ms()) > 0;
	if (!at->reauth && !vp_auth__hash_budget(a, suspect))
		return refuse(at, "busy");
	bool ok = against && vp_auth__hash_verify(a, against, password, suspect);
	if (!stored) {
		count_failure(at, user);
		return refuse(at, "unknown-user");
	}
	if (!ok) {
		count_failure(at, user);
		return refuse(at, "bad-password");
	}
	vp_ratelimit__success(a->rl, key);
	if (a->password_cache_ttl)
		vp_pwcache__put(a->pwcache, user, password, stored, now + a->password_cache_ttl);
	return password_accept(at, user, false);
}

static bool authority_trusted(const struct vp_auth *a, const uint8_t id[VEIL_AUTHORITY_ID_BYTES])
{
	for (size_t i = 0; i < a->n_authorities; i++) {
		if (sodium_memcmp(a->authority_ids[i], id, VEIL_AUTHORITY_ID_BYTES) == 0)
			return true;
	}
	return false;
}

/* Why a remembered client may no longer stay; NULL when it may. */
static const char *why_unauthorised(struct vp_auth *a, const struct vp_client *c, time_t now)
{
	if (c->auth_after_connect)
		return "auth-after-connect";
	if (c->client_id && vp_revoke__client(a->revoke, c->client_id))
		return "revoked-client";
	switch (c->login) {
	case VP_LOGIN_CREDENTIAL:
		if (vp_revoke__credential(a->revoke, c->credential_id))
			return "revoked-credential";
		if (!authority_trusted(a, c->authority_id))
			return "authority-removed";
		if (c->credential_expires <= (uint64_t)now)
			return "expired-credential";
		return NULL;
	case VP_LOGIN_PASSWORD:
		if ((a->password_file || a->rt_password_file) && !vp_passwd__hash(a->passwd, c->username))
			return "user-deleted";
		return NULL;
	case VP_LOGIN_ANONYMOUS:
		return a->allow_anonymous ? NULL : "anonymous";
	case VP_LOGIN_NONE:
	default:
		return NULL;
	}
}

/*
 * A new login on at->client. Mosquitto reuses the memory of freed clients,
 * and an expired MQTT 5 session or a sent Will frees one without a plugin
 * event: whatever the registry still holds for this pointer belongs to a
 * client that is gone, and must not lend its identity to this one (whoever
 * decides this login: the plugin, or Mosquitto after a DEFER). A live entry
 * would mean a connection vanished without its DISCONNECT event; it is
 * dropped too (fail closed).
 */
static void forget_stale(struct attempt *at)
{
	char prev[80];
	const char *state = vp_clients__forget_stale(at->ctx->clients, at->client, prev, sizeof(prev),
	                                             vp_acl__client_cache_free);
	if (!state && vp_clients__get(at->ctx->clients, at->client)) {
		state = "online";
		vp_clients__remove(at->ctx->clients, at->client, vp_acl__client_cache_free);
		snprintf(prev, sizeof(prev), "?");
	}
	if (state) {
		char p[80];
		vp_log__audit(MOSQ_LOG_INFO, "auth", "forget", "client=%s addr=%s previous=%s state=%s reason=reused-client-pointer",
		              at->cid_log, at->addr_log, vp_log__clean(prev, p, sizeof(p)), state);
	}
}

static void attempt_init(struct attempt *at, struct vp_ctx *ctx, struct mosquitto *client, const char *method)
{
	memset(at, 0, sizeof(*at));
	at->ctx = ctx;
	at->a = ctx->auth;
	at->client = client;
	at->cid = mosquitto_client_id(client);
	at->addr = mosquitto_client_address(client);
	if (!at->addr)
		at->addr = "-";
	vp_log__clean(at->cid, at->cid_log, sizeof(at->cid_log));
	vp_log__clean(at->addr, at->addr_log, sizeof(at->addr_log));
	at->method = method;
}

/*
 * Is this BASIC_AUTH the broker's re-check of known clients after a reload?
 * Mosquitto 2.0 runs, per loop iteration: TICK, network (new CONNECTs),
 * then a pending reload (RELOAD event, then BASIC_AUTH for every client in
 * its id table, offline persistent sessions included). A flag set by RELOAD
 * and cleared by the next TICK therefore covers exactly the re-checks, never
 * a new connection that might reuse a freed client pointer. Without TICK
 * (per_listener_settings true) only a one-second bound remains.
 */
static bool reauth_window(const struct vp_auth *a, time_t now)
{
	return a->reauth_pending && (a->ticks > 0 || now <= a->reauth_until);
}

int vp_auth__basic(struct vp_ctx *ctx, struct mosquitto_evt_basic_auth *ed)
{
	if (!ctx || !ctx->auth || !ed || !ed->client)
		return MOSQ_ERR_AUTH;
	struct attempt at;
	attempt_init(&at, ctx, ed->client, "basic");
	time_t now = time(NULL);
	/* Mosquitto re-runs BASIC_AUTH for every connected client right after a
	 * reload. Credential clients (MQTT 5 enhanced auth) have no password to
	 * show again: re-check what we remembered instead of dropping them. */
	struct vp_client *known = vp_clients__get(ctx->clients, ed->client);
	if (known && known->login != VP_LOGIN_NONE && reauth_window(at.a, now) && known->client_id && at.cid &&
	    !strcmp(known->client_id, at.cid)) {
		at.reauth = true;
		if (known->login == VP_LOGIN_CREDENTIAL || known->login == VP_LOGIN_ANONYMOUS) {
			at.method = known->login == VP_LOGIN_CREDENTIAL ? "credential" : "anonymous";
			const char *why = why_unauthorised(at.a, known, now);
			if (why) {
				vp_log__audit(MOSQ_LOG_NOTICE, "auth", "kick", "client=%s addr=%s reason=%s when=reload",
				              at.cid_log, at.addr_log, why);
				return MOSQ_ERR_AUTH;
			}
			return MOSQ_ERR_SUCCESS;
		}
	}
	if (!at.reauth)
		forget_stale(&at);
	if (!veil_username_valid(at.cid))
		return refuse(&at, "invalid-client-id");
	if (!ed->username) {
		at.method = "anonymous";
		if (ed->password)
			return refuse(&at, "password-without-username");
		if (vp_revoke__client(at.a->revoke, at.cid))
			return refuse(&at, "revoked-client");
		if (!at.a->allow_anonymous)
			return refuse(&at, "anonymous");
		if (!client_id_allowed(at.a, at.cid, NULL))
			return refuse(&at, "client-id-not-allowed");
		if (!remember(&at, NULL, VP_LOGIN_ANONYMOUS))
			return MOSQ_ERR_NOMEM;
		vp_log__audit(MOSQ_LOG_NOTICE, "auth", "accept", "client=%s addr=%s method=anonymous", at.cid_log,
		              at.addr_log);
		return MOSQ_ERR_SUCCESS;
	}
	if (!veil_username_valid(ed->username))
		return refuse(&at, "invalid-username");
	if (ed->password && !strncmp(ed->password, VEIL_PASSWORD_PREFIX, strlen(VEIL_PASSWORD_PREFIX))) {
		at.method = "credential";
		if (!at.cid || strcmp(ed->username, at.cid) != 0)
			return refuse(&at, "username-mismatch");
		if (client_id_reserved(at.a, at.cid))
			return refuse(&at, "client-id-reserved");
		uint8_t tok[VEIL_TOKEN_MAX];
		size_t len = 0;
		if (veil_password_to_token(ed->password, tok, sizeof(tok), &len) != VEIL_OK) {
			return refuse(&at, "malformed-token");
		}
		int rc = credential_login(&at, tok, len);
		sodium_memzero(tok, sizeof(tok));
		return rc;
	}
	/* A bridge is its declared name and nothing else: not a broker-assigned
	 * id, which another password client could take over. */
	at.bridge = vp_bridge__declared(at.a, ed->username);
	if (at.bridge ? !at.cid || strcmp(at.cid, ed->username) != 0 : !client_id_allowed(at.a, at.cid, ed->username)) {
		at.method = at.bridge ? "bridge" : "password";
		return refuse(&at, "client-id-not-allowed");
	}
	return password_login(&at, ed->username, ed->password);
}

int vp_auth__ext_start(struct vp_ctx *ctx, struct mosquitto_evt_extended_auth *ed)
{
	if (!ctx || !ctx->auth || !ed || !ed->client)
		return MOSQ_ERR_AUTH;
	bool ours = ed->auth_method && !strcmp(ed->auth_method, VEIL_AUTH_METHOD);
	struct attempt at;
	attempt_init(&at, ctx, ed->client, "credential");
	/* Mosquitto calls EXT_AUTH_START for a new CONNECT and for an MQTT 5
	 * re-authentication (AUTH reason 0x19) of a connected client. Veil
	 * offers no re-authentication: a client already logged in is refused
	 * (Mosquitto then disconnects it; its client id stays intact). Only a
	 * connected client's entry means that: a parked one on this pointer is
	 * an offline session Mosquitto freed when it expired, and this is a new
	 * CONNECT that got its memory (forget_stale below). */
	struct vp_client *live = vp_clients__get(ctx->clients, ed->client);
	if (ours && live && !live->parked) {
		live->auth_after_connect = true;
		return refuse(&at, "reauthentication-not-supported");
	}
	forget_stale(&at);
	if (!ours)
		return MOSQ_ERR_PLUGIN_DEFER; /* another plugin's method */
	if (!ctx->auth->enhanced_auth) {
		/* Token logins then use the password form (username = client id). */
		vp_log__audit(MOSQ_LOG_INFO, "auth", "defer", "client=%s addr=%s method=credential reason=enhanced-auth-disabled",
		              at.cid_log, at.addr_log);
		return MOSQ_ERR_PLUGIN_DEFER;
	}
	if (!veil_username_valid(at.cid))
		return refuse(&at, "invalid-client-id");
	if (client_id_reserved(at.a, at.cid))
		return refuse(&at, "client-id-reserved");
	const char *user = mosquitto_client_username(ed->client);
	if (user && strcmp(user, at.cid) != 0)
		return refuse(&at, "username-mismatch");
	if (!ed->data_in || ed->data_in_len == 0) {
		return refuse(&at, "malformed-token");
	}
	int rc = credential_login(&at, ed->data_in, ed->data_in_len);
	if (rc == MOSQ_ERR_SUCCESS) {
		struct vp_client *c = vp_clients__get(ctx->clients, ed->client);
		if (c)
			c->enhanced = true;
	}
	if (rc == MOSQ_ERR_SUCCESS && !user) {
		/* The username becomes the client id: ACL %u, and a reload would
		 * otherwise treat this client as anonymous and drop it. */
		rc = mosquitto_set_username(ed->client, at.cid);
		if (rc != MOSQ_ERR_SUCCESS) {
			vp_clients__remove(ctx->clients, ed->client, vp_acl__client_cache_free);
			return refuse(&at, "internal-error");
		}
	}
	return rc;
}

/*
 * An AUTH packet from a client (auth_method is NULL here on 2.0.11). Veil's
 * login is one step and never asks to continue, so for a client logged in
 * with veil-v1 this can only be an AUTH sent after CONNECT. Mosquitto
 * 2.0.11 (handle__auth) first marks such a client "authenticating", then
 * for every answer but two frees its client id while the session is still
 * registered under it: the next CONNECT with that id touches freed memory.
 * SUCCESS would re-run the whole CONNECT on the live session. Only
 * AUTH_CONTINUE leaves the session intact (the broker answers AUTH 0x18 and
 * the client can do nothing else), so that is the answer; the client is
 * kicked at the next tick. A client this plugin did not log in belongs to
 * another plugin's method.
 */
int vp_auth__ext_continue(struct vp_ctx *ctx, struct mosquitto_evt_extended_auth *ed)
{
	if (!ctx || !ctx->auth || !ed || !ed->client)
		return MOSQ_ERR_PLUGIN_DEFER;
	struct vp_client *c = vp_clients__get(ctx->clients, ed->client);
	if (!c || c->login == VP_LOGIN_NONE)
		return MOSQ_ERR_PLUGIN_DEFER;
	struct attempt at;
	attempt_init(&at, ctx, ed->client, "credential");
	if (!c->auth_after_connect)
		(void)refuse(&at, "auth-after-connect");
	c->auth_after_connect = true;
	return MOSQ_ERR_AUTH_CONTINUE;
}

/* ---- reload, tick, kicks ---- */

struct sweep {
	struct vp_auth *a;
	time_t now;
	char **ids;
	size_t n, cap;
};

static bool sweep_one(struct vp_client *c, void *arg)
{
	struct sweep *s = arg;
	/* Kick once: retrying by client id could later hit a new, legitimate
	 * connection that took the id over. */
	if (c->kick_pending || !c->client_id)
		return true;
	const char *why = why_unauthorised(s->a, c, s->now);
	if (!why)
		return true;
	if (s->n == s->cap) {
		size_t nc = s->cap ? s->cap * 2 : 16;
		char **p = realloc(s->ids, nc * sizeof(*p));
		if (!p)
			return false; /* the rest next tick */
		s->ids = p;
		s->cap = nc;
	}
	/* An offline persistent session is only marked: the registry then hides
	 * it, so the ACL stops queueing for it, and its id cannot log in again.
	 * So is a departed client: its id may already belong to a new connection,
	 * and the mark keeps its Will from being judged with what was revoked. */
	if (!c->parked && !c->departed) {
		s->ids[s->n] = strdup(c->client_id);
		if (!s->ids[s->n])
			return false;
		s->n++;
	}
	c->kick_pending = true;
	/* state says which connection this is about: an operator must not read
	 * the mark of a departed connection as a kick of the device that has
	 * since logged in again under the same id with a new credential. */
	char id[80];
	vp_log__audit(MOSQ_LOG_NOTICE, "auth", "kick", "client=%s reason=%s state=%s",
	              vp_log__clean(c->client_id, id, sizeof(id)), why,
	              c->departed ? "departed" : c->parked ? "parked" : "online");
	return true;
}

/* Mark clients that must go and kick those marked. Ids are collected first:
 * a kick may run the DISCONNECT callback, which edits the registry. */
static void sweep_and_kick(struct vp_ctx *ctx, time_t now)
{
	struct sweep s = { ctx->auth, now, NULL, 0, 0 };
	vp_clients__foreach(ctx->clients, sweep_one, &s);
	for (size_t i = 0; i < s.n; i++) {
		mosquitto_kick_client_by_clientid(s.ids[i], false);
		free(s.ids[i]);
	}
	free(s.ids);
}

int vp_auth__reload(struct vp_ctx *ctx)
{
	if (!ctx || !ctx->auth)
		return VEIL_ERR_INVAL;
	struct vp_auth *a = ctx->auth;
	int rc = vp_auth__load_files(a, true, NULL);
	a->last_poll_ms = vp_ratelimit__now_ms();
	/* The broker re-runs BASIC_AUTH for connected clients right after this
	 * event, in the same loop iteration. */
	a->reauth_pending = true; /* until the next TICK */
	a->reauth_until = time(NULL) + 1;
	vp_log__audit(MOSQ_LOG_NOTICE, "auth", "reload", "result=%s authorities=%zu users=%zu revoked=%zu",
	              rc == VEIL_OK ? "ok" : "kept-old", a->n_authorities, vp_passwd__count(a->passwd),
	              vp_revoke__count(a->revoke));
	return rc;
}

bool vp_auth__client_id_revoked(const struct vp_ctx *ctx, const char *client_id)
{
	return ctx && ctx->auth && client_id && vp_revoke__client(ctx->auth->revoke, client_id);
}

void vp_auth__tick(struct vp_ctx *ctx, time_t now)
{
	if (!ctx || !ctx->auth)
		return;
	struct vp_auth *a = ctx->auth;
	a->reauth_pending = false; /* the reload's re-checks are over */
	a->ticks++;
	bool changed = false;
	/* Milliseconds, not seconds: polling at second boundaries of time()
	 * could stretch the interval towards two seconds. */
	uint64_t now_ms = vp_ratelimit__now_ms();
	if (a->poll_interval && now_ms - a->last_poll_ms >= (uint64_t)a->poll_interval * 1000U) {
		a->last_poll_ms = now_ms;
		vp_auth__load_files(a, false, &changed);
	}
	/* sweep_now: the admin API revoked or removed someone (control.c). */
	if (changed || a->sweep_now || now != a->last_sweep) {
		a->last_sweep = now;
		a->sweep_now = false;
		sweep_and_kick(ctx, now);
		vp_nonce_cache__sync(a->nonces, (uint64_t)now);
		if (now - a->quota_pruned_at >= 2 * (time_t)a->token_window + 1) {
			a->quota_pruned_at = now;
			vp_login_quota__prune(a->quota, (uint64_t)now);
		}
		unsigned e = vp_nonce_cache__write_errors(a->nonces);
		if (e)
			vp_log__audit(MOSQ_LOG_ERR, "auth", "state-write-failed",
			              "file=token-nonces errors=%u (a restart could accept these tokens again)", e);
	}
}

/* plugin_opt_state_dir: created (0700) if missing; holds the token nonce
 * journal, so a token works once even across a broker restart. */
static int open_state(struct vp_auth *a)
{
	if (mkdir(a->state_dir, 0700) != 0 && errno != EEXIST) {
		char p[80];
		vp_log__audit(MOSQ_LOG_ERR, "auth", "init-failed", "state_dir=%s error=\"%s\" action=refuse-start",
		              vp_log__clean(a->state_dir, p, sizeof(p)), strerror(errno));
		return VEIL_ERR_IO;
	}
	size_t n = strlen(a->state_dir) + sizeof("/token-nonces");
	char *path = malloc(n);
	if (!path)
		return VEIL_ERR_NOMEM;
	snprintf(path, n, "%s/token-nonces", a->state_dir);
	char err[300] = "";
	int rc = vp_nonce_cache__persist(a->nonces, path, (uint64_t)time(NULL), err, sizeof(err));
	free(path);
	if (rc != VEIL_OK) {
		for (char *p = err; *p; p++)
			*p = (*p == '|' || *p == '\n') ? '?' : *p;
		vp_log__audit(MOSQ_LOG_ERR, "auth", "init-failed", "error=\"%s\" action=refuse-start", err);
		return rc;
	}
	a->nonces_persisted = true;
	return VEIL_OK;
}

int vp_auth__new(struct vp_ctx *ctx, struct mosquitto_opt *opts, int count, struct vp_auth **out)
{
	(void)ctx;
	if (!out)
		return VEIL_ERR_INVAL;
	struct vp_auth *a = calloc(1, sizeof(*a));
	if (!a)
		return VEIL_ERR_NOMEM;
	int rc = vp_auth__options(a, opts, count);
	if (rc == VEIL_OK)
		rc = vp_ratelimit__new(a->ratelimit_entries, a->backoff_base_ms, a->backoff_max_ms, &a->rl);
	if (rc == VEIL_OK)
		rc = vp_nonce_cache__new(a->replay_cache_size, &a->nonces);
	/* One credential may hold 1/256 of the cache (1,024 nonces of the
	 * default 262,144; at least 8): over two token windows, far more logins
	 * than any device makes, far fewer than would lock the others out. */
	if (rc == VEIL_OK)
		rc = vp_login_quota__new(a->replay_cache_size / 256 > 8 ? a->replay_cache_size / 256 : 8,
		                         2U * a->token_window + 1U, 2U * (size_t)a->replay_cache_size, &a->quota);
	if (rc == VEIL_OK)
		rc = vp_pwcache__new(4096, &a->pwcache);
	if (rc == VEIL_OK)
		rc = veil__credcache_new(4096, &a->credcache);
	if (rc == VEIL_OK)
		rc = vp_auth__load_files(a, true, NULL);
	a->started_at = time(NULL);
	if (rc == VEIL_OK && a->state_dir)
		rc = open_state(a);
	if (rc != VEIL_OK) {
		vp_auth__release(a);
		free(a);
		return rc;
	}
	if (!a->authority_file && !a->password_file && !a->allow_anonymous)
		vp_log__audit(MOSQ_LOG_WARNING, "auth", "init", "warning=no-login-possible (set plugin_opt_authority_file)");
	for (size_t i = 0; a->bridge_users && a->bridge_users[i]; i++) {
		char u[80];
		if (!vp_passwd__hash(a->passwd, a->bridge_users[i]))
			vp_log__audit(MOSQ_LOG_WARNING, "auth", "init", "warning=bridge-user-not-in-password-file user=%s",
			              vp_log__clean(a->bridge_users[i], u, sizeof(u)));
	}
	if (a->authority_file && !a->audience)
		vp_log__audit(MOSQ_LOG_WARNING, "auth", "init",
		              "warning=no-audience (tokens are bound to no deployment: set plugin_opt_audience)");
	a->last_poll_ms = vp_ratelimit__now_ms();
	a->started = true;
	char aud[80];
	vp_log__audit(MOSQ_LOG_NOTICE, "auth", "init",
	              "authorities=%zu users=%zu revoked=%zu token_window=%u anonymous=%s defer_unknown=%s audience=%s "
	              "token_v1=%s",
	              a->n_authorities, vp_passwd__count(a->passwd), vp_revoke__count(a->revoke), a->token_window,
	              a->allow_anonymous ? "true" : "false", a->defer_unknown ? "true" : "false",
	              a->audience ? vp_log__clean(a->audience, aud, sizeof(aud)) : "-", a->refuse_v1 ? "refuse" : "allow");
	*out = a;
	return VEIL_OK;
}

void vp_auth__free(struct vp_auth **ap)
{
	if (!ap || !*ap)
		return;
	vp_auth__release(*ap);
	free(*ap);
	*ap = NULL;
}
