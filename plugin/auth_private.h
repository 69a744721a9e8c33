/*
 * What the authentication files share: the module state (struct vp_auth),
 * option parsing and file (re)loading in auth_config.c, the broker-facing
 * event handlers in auth.c, the Argon2id budget in auth_budget.c. Pure
 * parts live in passwd.c, revoke.c, ratelimit.c, proxy.c, nonce_cache.c and
 * file.c; names and the credential cache
 * are the core's (core/names.c, core/credcache.c).
 */
#ifndef VP_AUTH_PRIVATE_H
#define VP_AUTH_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "veil/identity.h"
#include "file.h"

#define VP_AUTHORITIES_MAX 16U

struct mosquitto_opt;
struct vp_passwd;
struct vp_pwcache;
struct vp_revoke;
struct vp_ratelimit;
struct vp_proxies;
struct vp_nonce_cache;
struct veil__credcache;

struct vp_auth {
	/* options (plugin_opt_*, see docs/AUTH.md) */
	char *authority_file;
	char *password_file;
	char *revocation_file;
	char *auto_id_prefix;          /* Mosquitto's auto_id_prefix (default "auto-") */
	char *state_dir;               /* the plugin's own runtime files (token nonce journal, ...) */
	char *audience;                /* this deployment's name: version 2 tokens must carry it */
	char *token_v1;                /* "allow" (default) or "refuse": version 1 tokens with an audience */
	bool refuse_v1;                /* token_v1 is "refuse" */
	char **bridge_users;           /* plugin_opt_bridge_user, NULL-terminated (bridge.c) */
	char **proxy_addresses;        /* plugin_opt_proxy_addresses, NULL-terminated (proxy.h) */
	uint32_t token_window;         /* s */
	bool allow_anonymous;
	bool defer_unknown;
	bool enhanced_auth;            /* accept MQTT 5 enhanced auth (veil-v1); default true */
	uint32_t poll_interval;        /* s, 0 = never poll */
	uint32_t backoff_base_ms;
	uint32_t backoff_max_ms;
	uint32_t ratelimit_entries;
	uint32_t replay_cache_size;
	uint32_t password_cache_ttl;   /* s, 0 = no cache */
	uint32_t password_hashes_per_sec; /* count cap per second (secondary) */
	uint32_t password_ms_per_sec;  /* Argon2id time budget per second (the bound) */

	/* The admin API's runtime files (control.c), read in addition to the
	 * operator's: <state_dir>/passwd and <state_dir>/revocations, in the same
	 * formats; a missing one is empty. NULL without a state dir. */
	char *rt_password_file;
	char *rt_revocation_file;

	/* loaded files: replaced only by a complete, valid new version */
	uint8_t (*authorities)[VEIL_PK_BYTES];
	uint8_t (*authority_ids)[VEIL_AUTHORITY_ID_BYTES]; /* of authorities, same order */
	size_t n_authorities;
	struct vp_passwd *passwd;      /* what logins see: passwd_file, then passwd_rt's other users */
	struct vp_revoke *revoke;      /* what logins see: revoke_file and revoke_rt */
	struct vp_passwd *passwd_file, *passwd_rt;
	struct vp_revoke *revoke_file, *revoke_rt;
	struct vp_file_sig sig_authority, sig_passwd, sig_revoke;      /* loaded version */
	struct vp_file_sig bad_authority, bad_passwd, bad_revoke;      /* last rejected version */
	char err_authority[256], err_passwd[256], err_revoke[256];     /* why it was rejected */
	struct vp_file_sig sig_passwd_rt, sig_revoke_rt, bad_passwd_rt, bad_revoke_rt;
	char err_passwd_rt[256], err_revoke_rt[256];
	bool sweep_now;                /* the admin API changed who may stay: sweep at the next TICK */
	bool relay_applying;           /* relay.c is writing a record from another node into the runtime file */
	bool relay_synced;             /* relay.c published the runtime list once since the start */
	/* Told when the runtime revocation list changes (relay.c sets it; a
	 * pointer, so the unit tests of this file link no broker code). */
	void (*runtime_revocations_changed)(struct vp_auth *a, const struct vp_revoke *old,
	                                    const struct vp_revoke *new_list);

	struct vp_ratelimit *rl;
	struct vp_proxies *proxies;    /* load balancers: no per-address back-off key */
	struct vp_nonce_cache *nonces;
	struct vp_login_quota *quota;  /* each credential's share of nonces (login_quota.h) */
	time_t quota_pruned_at;
	struct vp_pwcache *pwcache;
	struct veil__credcache *credcache;   /* verified credentials (core/credcache.c) */

	bool started;                  /* init done: a broken file now keeps the old state */
	time_t started_at;             /* without a state dir, older tokens are refused */
	bool nonces_persisted;         /* the token nonce journal is in use */
	uint64_t last_poll_ms;         /* monotonic */
	time_t last_sweep;
	bool reauth_pending;           /* SIGHUP: BASIC_AUTH re-checks until the next TICK */
	uint64_t ticks;                /* TICKs seen (none with per_listener_settings true) */
	time_t reauth_until;           /* ... or until then (no TICK with per_listener_settings) */
	uint64_t hash_window_ms;       /* Argon2id budget: start of the current second */
	uint32_t hashes_in_window;
	uint64_t hash_us_in_window;    /* Argon2id time spent in the current second */
	bool clean_over_in_window;     /* the one run past the budget for a user without failures went */
	uint64_t suspect_us_in_window; /* ... time of the others' runs */
	uint64_t hash_us_estimate;     /* moving average of one verification */
	uint64_t hashes_total;         /* counters (metrics) */
	uint64_t hash_us_total;
	uint64_t token_v1_logins;      /* accepted version 1 tokens (docs/AUTH.md, "Deployments") */
};

/* auth_config.c */
bool vp_auth__option_known(const char *key);
/* Parse options into a (zeroed) a: VEIL_OK, or VEIL_ERR_INVAL with an audit
 * line on a bad value, VEIL_ERR_NOMEM. */
int vp_auth__options(struct vp_auth *a, struct mosquitto_opt *opts, int count);
/* Load every configured file that changed (or all when force). A broken file keeps
 * the old state and is logged once as file:line. *changed (may be NULL) tells whether
 * anything was replaced. VEIL_OK when every file is loaded and current, else
 * the first file's error (VEIL_ERR_PARSE, VEIL_ERR_IO, ...). */
int vp_auth__load_files(struct vp_auth *a, bool force, bool *changed);
/* Free everything a owns except the struct itself. */
void vp_auth__release(struct vp_auth *a);

/* auth_budget.c: the Argon2id budget. Whether a run may start now (false:
 * refuse "busy"); suspect: the user has failed logins on record. Then one
 * verification, timed into the budget. */
bool vp_auth__hash_budget(struct vp_auth *a, bool suspect);
bool vp_auth__hash_verify(struct vp_auth *a, const char *stored, const char *password, bool suspect);

/*
 * The runtime files (the admin API, control.c). _runtime_current loads the
 * file again if it changed on disk since (an operator's edit): VEIL_OK when
 * what is loaded is what is on disk, else the file's error in err (a broken
 * file is never rewritten from the old state behind the operator's back).
 * _runtime_write replaces the file atomically (temporary file, fsync,
 * rename, fsync of the directory; mode 0600) and loads it as a change of the
 * file would be loaded. VEIL_ERR_INVAL without a state dir.
 */
enum vp_runtime { VP_RUNTIME_PASSWD, VP_RUNTIME_REVOCATIONS };
int vp_auth__runtime_current(struct vp_auth *a, enum vp_runtime which, char *err, size_t errlen);
int vp_auth__runtime_write(struct vp_auth *a, enum vp_runtime which, const char *text, size_t len, char *err,
                           size_t errlen);

#endif
