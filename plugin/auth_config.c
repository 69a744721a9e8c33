/*
 * Authentication options and files: parses plugin_opt_* values, loads the
 * authority keys, password file and revocation list, and reloads them when
 * they change. A broken file never replaces a good one: the old state stays
 * and the problem is logged once as file:line. No broker calls except
 * logging, so unit tests can link this file.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>

#include "veil/error.h"
#include "plugin_private.h"
#include "auth_private.h"
#include "auth_credcache.h"
#include "auth_names.h"
#include "nonce_cache.h"
#include "passwd.h"
#include "ratelimit.h"
#include "revoke.h"

enum opt_kind { OPT_PATH, OPT_BOOL, OPT_U32, OPT_BOOL_TRUE, OPT_STRING };

struct opt_def {
	const char *key;
	enum opt_kind kind;
	size_t offset;
	uint32_t min, max, def;
};

#define OFF(f) offsetof(struct vp_auth, f)
static const struct opt_def opt_defs[] = {
	{ "authority_file", OPT_PATH, OFF(authority_file), 0, 0, 0 },
	{ "password_file", OPT_PATH, OFF(password_file), 0, 0, 0 },
	{ "revocation_file", OPT_PATH, OFF(revocation_file), 0, 0, 0 },
	{ "auto_id_prefix", OPT_STRING, OFF(auto_id_prefix), 0, 0, 0 },
	{ "state_dir", OPT_PATH, OFF(state_dir), 0, 0, 0 },
	{ "allow_anonymous", OPT_BOOL, OFF(allow_anonymous), 0, 1, 0 },
	{ "defer_unknown", OPT_BOOL, OFF(defer_unknown), 0, 1, 0 },
	{ "enhanced_auth", OPT_BOOL_TRUE, OFF(enhanced_auth), 0, 1, 1 },
	{ "token_window", OPT_U32, OFF(token_window), 1, 3600, 60 },
	{ "poll_interval", OPT_U32, OFF(poll_interval), 0, 3600, 1 },
	{ "backoff_base_ms", OPT_U32, OFF(backoff_base_ms), 1, 60000, 250 },
	{ "backoff_max_ms", OPT_U32, OFF(backoff_max_ms), 1, 3600000, 30000 },
	{ "ratelimit_entries", OPT_U32, OFF(ratelimit_entries), 64, 1U << 24, 16384 },
	{ "replay_cache_size", OPT_U32, OFF(replay_cache_size), 256, 1U << 26, 262144 },
	{ "password_cache_ttl", OPT_U32, OFF(password_cache_ttl), 0, 86400, 60 },
	{ "password_hashes_per_sec", OPT_U32, OFF(password_hashes_per_sec), 1, 1000, 1000 },
	{ "password_ms_per_sec", OPT_U32, OFF(password_ms_per_sec), 1, 1000, 200 },
};
#define N_OPTS (sizeof(opt_defs) / sizeof(opt_defs[0]))

bool vp_auth__option_known(const char *key)
{
	for (size_t i = 0; key && i < N_OPTS; i++) {
		if (!strcmp(key, opt_defs[i].key))
			return true;
	}
	return false;
}

static int bad_option(const char *key, const char *value, const char *why)
{
	char v[80];
	vp_log__audit(MOSQ_LOG_ERR, "auth", "init-failed", "option=plugin_opt_%s value=%s reason=%s", key,
	              vp_log__clean(value, v, sizeof(v)), why);
	return MOSQ_ERR_INVAL;
}

static int set_option(struct vp_auth *a, const struct opt_def *d, const char *value)
{
	char *field = (char *)a + d->offset;
	if (!value || !*value)
		return bad_option(d->key, value, "empty");
	switch (d->kind) {
	case OPT_STRING:
	case OPT_PATH: {
		char **p = (char **)(void *)field;
		free(*p);
		*p = strdup(value);
		return *p ? MOSQ_ERR_SUCCESS : MOSQ_ERR_NOMEM;
	}
	case OPT_BOOL:
	case OPT_BOOL_TRUE:
		if (!strcmp(value, "true"))
			*(bool *)(void *)field = true;
		else if (!strcmp(value, "false"))
			*(bool *)(void *)field = false;
		else
			return bad_option(d->key, value, "expected-true-or-false");
		return MOSQ_ERR_SUCCESS;
	case OPT_U32: {
		char *end = NULL;
		errno = 0;
		unsigned long long v = strtoull(value, &end, 10);
		if (errno || *end || value[0] == '-' || v < d->min || v > d->max)
			return bad_option(d->key, value, "out-of-range");
		*(uint32_t *)(void *)field = (uint32_t)v;
		return MOSQ_ERR_SUCCESS;
	}
	}
	return MOSQ_ERR_INVAL;
}

int vp_auth__options(struct vp_auth *a, struct mosquitto_opt *opts, int count)
{
	for (size_t i = 0; i < N_OPTS; i++) {
		if (opt_defs[i].kind == OPT_U32)
			*(uint32_t *)(void *)((char *)a + opt_defs[i].offset) = opt_defs[i].def;
		else if (opt_defs[i].kind == OPT_BOOL_TRUE)
			*(bool *)(void *)((char *)a + opt_defs[i].offset) = true;
	}
	for (int i = 0; i < count; i++) {
		for (size_t k = 0; k < N_OPTS; k++) {
			if (opts[i].key && !strcmp(opts[i].key, opt_defs[k].key)) {
				int rc = set_option(a, &opt_defs[k], opts[i].value);
				if (rc != MOSQ_ERR_SUCCESS)
					return rc;
			}
		}
	}
	if (!a->auto_id_prefix && !(a->auto_id_prefix = strdup("auto-")))
		return MOSQ_ERR_NOMEM;
	if (!vp_auth__name_valid(a->auto_id_prefix))
		return bad_option("auto_id_prefix", a->auto_id_prefix, "not-a-valid-client-id-prefix");
	if (a->backoff_max_ms < a->backoff_base_ms)
		return bad_option("backoff_max_ms", "<base", "smaller-than-backoff_base_ms");
	return MOSQ_ERR_SUCCESS;
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
		return MOSQ_ERR_SUCCESS;
	struct vp_file_sig now;
	vp_file__sig(path, &now);
	if (!force && vp_file__sig_equal(&now, cur))
		return MOSQ_ERR_SUCCESS;
	/* (A file never refused has no error yet: a deleted one would match the
	 * zeroed "bad" signature and be logged without a reason.) */
	if (!force && bad_err[0] && vp_file__sig_equal(&now, bad)) {
		log_bad_file(a, which, bad_err); /* same broken version: not parsed again */
		return MOSQ_ERR_INVAL;
	}
	char err[256] = "";
	int rc = loader(a, path, err, sizeof(err));
	if (rc != VEIL_OK) {
		snprintf(bad_err, bad_err_len, "%s", err[0] ? err : veil_errname(rc));
		log_bad_file(a, which, bad_err);
		*bad = now;
		return MOSQ_ERR_INVAL;
	}
	*cur = now;
	memset(bad, 0, sizeof(*bad));
	if (changed)
		*changed = true;
	return MOSQ_ERR_SUCCESS;
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
	vp_credcache__clear(a->credcache); /* verdicts under the old keys */
	a->n_authorities = n;
	vp_log__audit(MOSQ_LOG_NOTICE, "auth", "load", "file=authority keys=%zu", n);
	return VEIL_OK;
}

static int load_passwd(struct vp_auth *a, const char *path, char *err, size_t errlen)
{
	struct vp_passwd *p = NULL;
	int rc = vp_passwd__load(path, &p, err, errlen);
	if (rc != VEIL_OK)
		return rc;
	vp_passwd__free(&a->passwd);
	a->passwd = p;
	vp_log__audit(MOSQ_LOG_NOTICE, "auth", "load", "file=password users=%zu", vp_passwd__count(p));
	return VEIL_OK;
}

static int load_revoke(struct vp_auth *a, const char *path, char *err, size_t errlen)
{
	struct vp_revoke *r = NULL;
	int rc = vp_revoke__load(path, &r, err, errlen);
	if (rc != VEIL_OK)
		return rc;
	vp_revoke__free(&a->revoke);
	a->revoke = r;
	vp_log__audit(MOSQ_LOG_NOTICE, "auth", "load", "file=revocation entries=%zu", vp_revoke__count(r));
	return VEIL_OK;
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
	if (!a->revoke && vp_revoke__empty(&a->revoke) != VEIL_OK)
		return MOSQ_ERR_NOMEM;
	return (r1 || r2 || r3) ? MOSQ_ERR_INVAL : MOSQ_ERR_SUCCESS;
}

void vp_auth__release(struct vp_auth *a)
{
	if (!a)
		return;
	free(a->authority_file);
	free(a->password_file);
	free(a->revocation_file);
	free(a->auto_id_prefix);
	free(a->state_dir);
	free(a->authorities);
	free(a->authority_ids);
	vp_passwd__free(&a->passwd);
	vp_revoke__free(&a->revoke);
	vp_ratelimit__free(&a->rl);
	vp_nonce_cache__free(&a->nonces);
	vp_pwcache__free(&a->pwcache);
	vp_credcache__free(&a->credcache);
	memset(a, 0, sizeof(*a));
}
