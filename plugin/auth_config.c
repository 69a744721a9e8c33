/*
 * Authentication options and files: the module's plugin_opt_* table
 * (parsed by options.c, the plugin's one option parser); loading of the
 * authority keys, password file and revocation list, and their reload when
 * they change; the admin API's runtime password and revocation files in the
 * state dir, read in addition to the operator's (merged views), and their
 * atomic rewrite. A broken file never replaces a good one: the old state stays
 * and the problem is logged as file:line. No broker calls except logging,
 * so unit tests can link this file; errors are veil_err (plugin_private.h).
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>

#include "veil/error.h"
#include "plugin_private.h"
#include "auth_private.h"
#include "../core/credcache.h"
#include "../core/names.h" /* the one rule for names */
#include "../core/util.h" /* the one atomic file writer */
#include "login_quota.h"
#include "nonce_cache.h"
#include "options.h"
#include "passwd.h"
#include "proxy.h"
#include "ratelimit.h"
#include "revoke.h"

#define OFF(f) offsetof(struct vp_auth, f)
static const struct vp_opt opt_defs[] = {
	{ "authority_file", VP_OPT_STRING, OFF(authority_file), 0, 0, 0 },
	{ "password_file", VP_OPT_STRING, OFF(password_file), 0, 0, 0 },
	{ "revocation_file", VP_OPT_STRING, OFF(revocation_file), 0, 0, 0 },
	{ "auto_id_prefix", VP_OPT_STRING, OFF(auto_id_prefix), 0, 0, 0 },
	{ "state_dir", VP_OPT_STRING, OFF(state_dir), 0, 0, 0 },
	{ "audience", VP_OPT_STRING, OFF(audience), 0, 0, 0 },
	{ "token_v1", VP_OPT_STRING, OFF(token_v1), 0, 0, 0 },
	{ "bridge_user", VP_OPT_LIST, OFF(bridge_users), 0, 0, 0 },
	{ "proxy_addresses", VP_OPT_LIST, OFF(proxy_addresses), 0, 0, 0 },
	{ "allow_anonymous", VP_OPT_BOOL, OFF(allow_anonymous), 0, 1, 0 },
	{ "defer_unknown", VP_OPT_BOOL, OFF(defer_unknown), 0, 1, 0 },
	{ "enhanced_auth", VP_OPT_BOOL, OFF(enhanced_auth), 0, 1, 1 },
	{ "token_window", VP_OPT_U32, OFF(token_window), 1, 3600, 60 },
	{ "poll_interval", VP_OPT_U32, OFF(poll_interval), 0, 3600, 1 },
	{ "backoff_base_ms", VP_OPT_U32, OFF(backoff_base_ms), 1, 60000, 250 },
	{ "backoff_max_ms", VP_OPT_U32, OFF(backoff_max_ms), 1, 3600000, 30000 },
	{ "ratelimit_entries", VP_OPT_U32, OFF(ratelimit_entries), 64, 1U << 24, 16384 },
	{ "replay_cache_size", VP_OPT_U32, OFF(replay_cache_size), 256, 1U << 26, 262144 },
	{ "password_cache_ttl", VP_OPT_U32, OFF(password_cache_ttl), 0, 86400, 60 },
	{ "password_hashes_per_sec", VP_OPT_U32, OFF(password_hashes_per_sec), 1, 1000, 1000 },
	{ "password_ms_per_sec", VP_OPT_U32, OFF(password_ms_per_sec), 1, 1000, 200 },
};
#define N_OPTS (sizeof(opt_defs) / sizeof(opt_defs[0]))

bool vp_auth__option_known(const char *key)
{
	return vp_options__known(opt_defs, N_OPTS, key);
}

int vp_auth__options(struct vp_auth *a, struct mosquitto_opt *opts, int count)
{
	int rc = vp_options__parse(opt_defs, N_OPTS, a, "auth", opts, count);
	if (rc != VEIL_OK)
		return rc;
	if (!a->auto_id_prefix && !(a->auto_id_prefix = strdup("auto-")))
		return VEIL_ERR_NOMEM;
	if (!veil_username_valid(a->auto_id_prefix))
		return vp_options__refuse("auth", "auto_id_prefix", a->auto_id_prefix, "not-a-valid-client-id-prefix");
	if (a->backoff_max_ms < a->backoff_base_ms)
		return vp_options__refuse("auth", "backoff_max_ms", "<base", "smaller-than-backoff_base_ms");
	if (a->audience && !veil_audience_valid(a->audience))
		return vp_options__refuse("auth", "audience", a->audience, "not-a-valid-audience");
	if (a->token_v1 && strcmp(a->token_v1, "allow") != 0 && strcmp(a->token_v1, "refuse") != 0)
		return vp_options__refuse("auth", "token_v1", a->token_v1, "expected-allow-or-refuse");
	a->refuse_v1 = a->token_v1 && !strcmp(a->token_v1, "refuse");
	/* Without a name every token is version 1 or for somewhere else:
	 * refusing version 1 would refuse every device. */
	if (a->refuse_v1 && !a->audience)
		return vp_options__refuse("auth", "token_v1", a->token_v1, "refuse-needs-plugin_opt_audience");
	/* The load balancers: their address is every client's behind them. */
	char bad[80];
	const char *why = NULL;
	int prc = vp_proxies__parse(a->proxy_addresses, &a->proxies, bad, sizeof(bad), &why);
	if (prc == VEIL_ERR_INVAL)
		return vp_options__refuse("auth", "proxy_addresses", bad, why);
	if (prc != VEIL_OK)
		return prc;
	/* A bridge proves itself with a password of the plugin's own file. */
	for (size_t i = 0; a->bridge_users && a->bridge_users[i]; i++) {
		if (veil__name_why(a->bridge_users[i], VEIL__NAME_PASSWD_USER))
			return vp_options__refuse("auth", "bridge_user", a->bridge_users[i], "not-a-password-file-user");
		if (!a->password_file)
			return vp_options__refuse("auth", "bridge_user", a->bridge_users[i], "needs-plugin_opt_password_file");
	}
	return VEIL_OK;
}

/* A broken file is logged at every poll until it is fixed: the old state it
 * keeps may be exactly what the operator meant to change (a revocation). */
static void log_bad_file(const struct vp_auth *a, const char *which, const char *err)
{
	char e[300];
	/* err is "path:line: reason"; the path and reason come from our own config, not clients. */
	snprintf(e, sizeof(e), "%s", err);
	for (char *p = e; *p; p++) {
		if (*p == '|' || *p == '\n')
			*p = '?';
	}
	if (!a->started)
		vp_log__audit(MOSQ_LOG_ERR, "auth", "init-failed",
		              "file=%s error=\"%s\" action=refuse-start (the plugin cannot start without a valid %s file)",
		              which, e, which);
	else
		vp_log__audit(MOSQ_LOG_ERR, "auth", "reload-failed", "file=%s error=\"%s\" action=kept-old", which, e);
}

/* One file: decide whether to (re)load, then swap in the new state. */
static int load_one(const char *which, const char *path, struct vp_file_sig *cur, struct vp_file_sig *bad,
                    char *bad_err, size_t bad_err_len, bool force, bool *changed,
                    int (*loader)(struct vp_auth *, const char *, char *, size_t), struct vp_auth *a)
{
	if (!path)
		return VEIL_OK;
	struct vp_file_sig now;
	vp_file__sig(path, &now);
	if (!force && vp_file__sig_equal(&now, cur))
		return VEIL_OK;
	/* (A file never refused has no error yet: a deleted one would match the
	 * zeroed "bad" signature and be logged without a reason.) */
	if (!force && bad_err[0] && vp_file__sig_equal(&now, bad)) {
		log_bad_file(a, which, bad_err); /* same broken version: not parsed again */
		return VEIL_ERR_PARSE;
	}
	char err[256] = "";
	int rc = loader(a, path, err, sizeof(err));
	if (rc != VEIL_OK) {
		snprintf(bad_err, bad_err_len, "%s", err[0] ? err : veil_errname(rc));
		log_bad_file(a, which, bad_err);
		*bad = now;
		return rc;
	}
	*cur = now;
	memset(bad, 0, sizeof(*bad));
	if (changed)
		*changed = true;
	return VEIL_OK;
}

static int load_authorities(struct vp_auth *a, const char *path, char *err, size_t errlen)
{
	uint8_t (*pks)[VEIL_PK_BYTES] = calloc(VP_AUTHORITIES_MAX, VEIL_PK_BYTES);
	uint8_t (*ids)[VEIL_AUTHORITY_ID_BYTES] = calloc(VP_AUTHORITIES_MAX, VEIL_AUTHORITY_ID_BYTES);
	size_t n = 0;
	if (!pks || !ids) {
		free(pks);
		free(ids);
		return VEIL_ERR_NOMEM;
	}
	int rc = veil_public_keys_load(path, pks, VP_AUTHORITIES_MAX, &n, err, errlen);
	if (rc == VEIL_OK && n == 0) {
		snprintf(err, errlen, "%s: no public key", path);
		rc = VEIL_ERR_PARSE;
	}
	if (rc != VEIL_OK) {
		free(pks);
		free(ids);
		return rc;
	}
	for (size_t i = 0; i < n; i++)
		veil_authority_id(pks[i], ids[i]);
	free(a->authorities);
	free(a->authority_ids);
	a->authorities = pks;
	a->authority_ids = ids;
	veil__credcache_clear(a->credcache); /* verdicts under the old keys */
	a->n_authorities = n;
	vp_log__audit(MOSQ_LOG_NOTICE, "auth", "load", "file=authority keys=%zu", n);
	return VEIL_OK;
}

/* What logins see: the operator's file and the runtime file as one. */
static int merge_passwd(struct vp_auth *a)
{
	struct vp_passwd *p = NULL;
	size_t shadowed = 0;
	int rc = vp_passwd__merge(a->passwd_file, a->passwd_rt, &p, &shadowed);
	if (rc != VEIL_OK)
		return rc;
	vp_passwd__free(&a->passwd);
	a->passwd = p;
	if (shadowed)
		vp_log__audit(MOSQ_LOG_WARNING, "auth", "shadowed",
		              "file=runtime-password users=%zu (the operator's password_file has them: its entries count)",
		              shadowed);
	return VEIL_OK;
}

static int merge_revoke(struct vp_auth *a)
{
	struct vp_revoke *r = NULL;
	int rc = vp_revoke__merge(a->revoke_file, a->revoke_rt, &r);
	if (rc != VEIL_OK)
		return rc;
	vp_revoke__free(&a->revoke);
	a->revoke = r;
	return VEIL_OK;
}

/* A runtime file that does not exist (yet) is empty: no API change so far. */
static bool absent(const char *path)
{
	struct stat st;
	return lstat(path, &st) != 0 && errno == ENOENT;
}

static int load_passwd_into(struct vp_auth *a, const char *which, struct vp_passwd **slot, bool may_be_absent,
                            const char *path, char *err, size_t errlen)
{
	struct vp_passwd *p = NULL;
	int rc = may_be_absent && absent(path) ? vp_passwd__merge(NULL, NULL, &p, NULL)
	                                       : vp_passwd__load(path, &p, err, errlen);
	if (rc != VEIL_OK)
		return rc;
	vp_passwd__free(slot);
	*slot = p;
	vp_log__audit(MOSQ_LOG_NOTICE, "auth", "load", "file=%s users=%zu", which, vp_passwd__count(p));
	return merge_passwd(a);
}

static int load_passwd(struct vp_auth *a, const char *path, char *err, size_t errlen)
{
	return load_passwd_into(a, "password", &a->passwd_file, false, path, err, errlen);
}

static int load_passwd_rt(struct vp_auth *a, const char *path, char *err, size_t errlen)
{
	return load_passwd_into(a, "runtime-password", &a->passwd_rt, true, path, err, errlen);
}

static int load_revoke_into(struct vp_auth *a, const char *which, struct vp_revoke **slot, bool may_be_absent,
                            const char *path, char *err, size_t errlen)
{
	struct vp_revoke *r = NULL;
	int rc = may_be_absent && absent(path) ? vp_revoke__empty(&r) : vp_revoke__load(path, &r, err, errlen);
	if (rc != VEIL_OK)
		return rc;
	if (slot == &a->revoke_rt && a->runtime_revocations_changed)
		a->runtime_revocations_changed(a, *slot, r); /* to the deployment's other nodes (relay.h) */
	vp_revoke__free(slot);
	*slot = r;
	vp_log__audit(MOSQ_LOG_NOTICE, "auth", "load", "file=%s entries=%zu", which, vp_revoke__count(r));
	return merge_revoke(a);
}

static int load_revoke(struct vp_auth *a, const char *path, char *err, size_t errlen)
{
	return load_revoke_into(a, "revocation", &a->revoke_file, false, path, err, errlen);
}

static int load_revoke_rt(struct vp_auth *a, const char *path, char *err, size_t errlen)
{
	return load_revoke_into(a, "runtime-revocation", &a->revoke_rt, true, path, err, errlen);
}

/* <state_dir>/passwd and <state_dir>/revocations; NULL without a state dir
 * (or, when it could not be built, with err said). */
static const char *runtime_path(struct vp_auth *a, enum vp_runtime which)
{
	char **slot = which == VP_RUNTIME_PASSWD ? &a->rt_password_file : &a->rt_revocation_file;
	const char *name = which == VP_RUNTIME_PASSWD ? "passwd" : "revocations";
	if (!*slot && a->state_dir) {
		size_t n = strlen(a->state_dir) + strlen(name) + 2;
		if ((*slot = malloc(n)))
			snprintf(*slot, n, "%s/%s", a->state_dir, name);
	}
	return *slot;
}

static int load_rt(struct vp_auth *a, enum vp_runtime which, bool force, bool *changed)
{
	const char *path = runtime_path(a, which);
	if (!path)
		return a->state_dir ? VEIL_ERR_NOMEM : VEIL_OK;
	if (which == VP_RUNTIME_PASSWD)
		return load_one("runtime-password", path, &a->sig_passwd_rt, &a->bad_passwd_rt, a->err_passwd_rt,
		                sizeof(a->err_passwd_rt), force, changed, load_passwd_rt, a);
	return load_one("runtime-revocation", path, &a->sig_revoke_rt, &a->bad_revoke_rt, a->err_revoke_rt,
	                sizeof(a->err_revoke_rt), force, changed, load_revoke_rt, a);
}

static const char *no_state_dir = "no plugin_opt_state_dir: a runtime change could not survive a restart";

int vp_auth__runtime_current(struct vp_auth *a, enum vp_runtime which, char *err, size_t errlen)
{
	if (!a->state_dir) {
		snprintf(err, errlen, "%s", no_state_dir);
		return VEIL_ERR_INVAL;
	}
	int rc = load_rt(a, which, false, NULL);
	if (rc != VEIL_OK)
		snprintf(err, errlen, "%s (fix or remove the file first)",
		         which == VP_RUNTIME_PASSWD ? a->err_passwd_rt : a->err_revoke_rt);
	return rc;
}

int vp_auth__runtime_write(struct vp_auth *a, enum vp_runtime which, const char *text, size_t len, char *err,
                           size_t errlen)
{
	const char *path = a->state_dir ? runtime_path(a, which) : NULL;
	if (!path) {
		snprintf(err, errlen, "%s", a->state_dir ? "out of memory" : no_state_dir);
		return a->state_dir ? VEIL_ERR_NOMEM : VEIL_ERR_INVAL;
	}
	int rc = veil__file_write_atomic(path, text, len, 0600, false); /* directory synced too */
	if (rc != VEIL_OK) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return rc;
	}
	/* Loaded as a change of the file is: the same parser, the same merge. */
	rc = load_rt(a, which, true, NULL);
	if (rc != VEIL_OK)
		snprintf(err, errlen, "%s", which == VP_RUNTIME_PASSWD ? a->err_passwd_rt : a->err_revoke_rt);
	return rc;
}

int vp_auth__load_files(struct vp_auth *a, bool force, bool *changed)
{
	if (changed)
		*changed = false;
	int r1 = load_one("authority", a->authority_file, &a->sig_authority, &a->bad_authority, a->err_authority,
	                  sizeof(a->err_authority), force, changed, load_authorities, a);
	int r2 = load_one("password", a->password_file, &a->sig_passwd, &a->bad_passwd, a->err_passwd,
	                  sizeof(a->err_passwd), force, changed, load_passwd, a);
	int r3 = load_one("revocation", a->revocation_file, &a->sig_revoke, &a->bad_revoke, a->err_revoke,
	                  sizeof(a->err_revoke), force, changed, load_revoke, a);
	int r4 = load_rt(a, VP_RUNTIME_PASSWD, force, changed);
	int r5 = load_rt(a, VP_RUNTIME_REVOCATIONS, force, changed);
	if (!a->revoke && vp_revoke__empty(&a->revoke) != VEIL_OK)
		return VEIL_ERR_NOMEM;
	int rcs[] = { r1, r2, r3, r4, r5 };
	for (size_t i = 0; i < sizeof(rcs) / sizeof(rcs[0]); i++) {
		if (rcs[i] != VEIL_OK)
			return rcs[i];
	}
	return VEIL_OK;
}

void vp_auth__release(struct vp_auth *a)
{
	if (!a)
		return;
	vp_options__free(opt_defs, N_OPTS, a);
	free(a->authorities);
	free(a->authority_ids);
	vp_passwd__free(&a->passwd);
	vp_revoke__free(&a->revoke);
	vp_passwd__free(&a->passwd_file);
	vp_passwd__free(&a->passwd_rt);
	vp_revoke__free(&a->revoke_file);
	vp_revoke__free(&a->revoke_rt);
	free(a->rt_password_file);
	free(a->rt_revocation_file);
	vp_ratelimit__free(&a->rl);
	vp_proxies__free(&a->proxies);
	vp_nonce_cache__free(&a->nonces);
	vp_login_quota__free(&a->quota);
	vp_pwcache__free(&a->pwcache);
	veil__credcache_free(&a->credcache);
	memset(a, 0, sizeof(*a));
}
