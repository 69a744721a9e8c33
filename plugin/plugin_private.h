/*
 * What the plugin's files share. plugin.c holds only the entry points and
 * event dispatch; each concern lives in its own file:
 *   clients.c   per-client state, keyed by the broker's client pointer
 *   log.c       audit log lines ("veil: <area> | <verb> | k=v ...")
 *   auth*.c     authentication (credential tokens, password file, anonymous),
 *               revocation, rate limiting                      -> struct vp_auth
 *   acl*.c      rules file, topic trie, ACL decisions, envelope enforcement
 *                                                              -> struct vp_acl
 *   control*.c  the admin API on $CONTROL/veil/v1             -> struct vp_control
 *   metrics.c   counters fed by the audit lines, $SYS/broker/veil, the audit
 *               format                                         -> struct vp_metrics
 * No global state: one struct vp_ctx per plugin instance, passed as userdata.
 * Internal names: vp_<area>__<verb>.
 *
 * Errors, one convention: every function of the plugin that can fail
 * returns enum veil_err (VEIL_OK = 0), as the core does, except the event
 * handlers (vp_auth__basic, __ext_start, __ext_continue, vp_acl__check),
 * whose result is Mosquitto's decision for the event (MOSQ_ERR_SUCCESS,
 * AUTH, ACL_DENIED, PLUGIN_DEFER). A veil_err becomes a MOSQ_ERR_* in one
 * place, mosq_err() in plugin.c, where the plugin answers Mosquitto. Lookups
 * return a pointer or a bool, never -1.
 */
#ifndef VP_PLUGIN_PRIVATE_H
#define VP_PLUGIN_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "veil/identity.h"
#include "../core/table.h" /* uthash, for the registry's handles in struct vp_client */

struct mosquitto;
struct mosquitto_opt;
struct mosquitto_evt_basic_auth;
struct mosquitto_evt_extended_auth;
struct mosquitto_evt_acl_check;
struct mosquitto_evt_disconnect;
struct mosquitto_evt_control;
typedef struct mosquitto_plugin_id_t mosquitto_plugin_id_t;

struct vp_auth;
struct vp_acl;
struct vp_clients;
struct vp_control;
struct vp_metrics;

struct vp_ctx {
	mosquitto_plugin_id_t *pid;
	struct vp_auth *auth;
	struct vp_acl *acl;
	struct vp_clients *clients;
	struct vp_control *control;
	struct vp_metrics *metrics;
	const char *admin_role;   /* plugin_opt_admin_role (owned by control), for veil_topics */
};

enum vp_login {
	VP_LOGIN_NONE = 0,        /* not (yet) authenticated by this plugin */
	VP_LOGIN_CREDENTIAL,      /* authority-signed credential + device token */
	VP_LOGIN_PASSWORD,        /* Argon2id password file */
	VP_LOGIN_ANONYMOUS        /* allowed by plugin_opt_allow_anonymous */
};

/* Per client. Created at authentication; at DISCONNECT parked (persistent
 * session) or departed (no session, kept for its Will), see clients.c. */
struct vp_client {
	const struct mosquitto *mosq;          /* key: the broker's client pointer */
	UT_hash_handle hh;                     /* the registry, by mosq (clients.c); next to its key:
	                                        * a lookup then reads one cache line per entry */
	char *client_id;                       /* copies, owned here */
	char *username;
	enum vp_login login;
	bool has_identity;                     /* credential login: pk and sender id valid */
	bool bridge;                           /* a declared bridge (plugin_opt_bridge_user) that logged in
	                                        * with its password: carries others' envelopes (bridge.c) */
	uint8_t device_pk[VEIL_PK_BYTES];
	uint8_t sender_id[VEIL_SENDER_ID_BYTES];
	uint8_t credential_id[VEIL_CREDENTIAL_ID_BYTES];
	uint8_t authority_id[VEIL_AUTHORITY_ID_BYTES]; /* signer of the credential */
	uint64_t credential_expires;
	time_t connected_at;                   /* wall clock, at login (listClients) */
	bool enhanced;                         /* logged in with MQTT 5 enhanced auth (veil-v1) */
	bool auth_after_connect;               /* sent AUTH after CONNECT: kicked at the next tick */
	char roles[VEIL_ROLES_MAX + 1];        /* comma separated, from the credential */
	bool kick_pending;                     /* revoked: disconnect at next tick */
	bool parked;                           /* offline persistent session (clients.c) */
	bool departed;                         /* left without a session: Will checks only (clients.c) */
	time_t departed_at;
	void *acl_cache;                       /* owned by the ACL module (per-client %c/%u rules) */
	UT_hash_handle hh_park;                /* parked entries, by client id (clients.c) */
	struct vp_client *park_prev, *park_next; /* parked list, oldest first (clients.c, utlist) */
	struct vp_client *dep_prev, *dep_next;   /* departed list, oldest first (clients.c, utlist) */
};

/* clients.c */
/* VEIL_OK or VEIL_ERR_NOMEM. */
int vp_clients__new(struct vp_clients **out);
void vp_clients__free(struct vp_clients **cl, void (*acl_cache_free)(void *));
/* Returns the existing entry for mosq, or a new zeroed one (NULL on ENOMEM).
 * Logins call vp_clients__forget_stale first, so an entry found here is
 * the same connection's (a SIGHUP re-check). 
 * An existing entry is reset (ids, identity, acl cache) so a reused pointer
 * never inherits another client's state. Parked entries of the same client
 * id (an old session this connection takes over) are removed. */
struct vp_client *vp_clients__put(struct vp_clients *cl, const struct mosquitto *mosq, const char *client_id,
                                  const char *username, void (*acl_cache_free)(void *));
/* The entry of a connected client or of a parked session (READ, SUBSCRIBE,
 * WRITE, logins); never a departed one. */
struct vp_client *vp_clients__get(const struct vp_clients *cl, const struct mosquitto *mosq);
/* Whether the registry holds an entry of mosq under client_id that the
 * plugin has marked as no longer authorised (revoked, expired, deleted, its
 * authority removed, AUTH after CONNECT): connected until the kick, parked
 * (an offline session) or departed. get hides such an entry, and the ACL
 * must then refuse everything instead of judging the client by the names
 * the broker reports (patterns, user rules would still match them). */
bool vp_clients__refused(const struct vp_clients *cl, const struct mosquitto *mosq, const char *client_id);
/* For WRITE checks: as get, and also a departed entry of mosq if it left
 * under client_id (what the broker reports for the connection now). */
struct vp_client *vp_clients__get_publisher(const struct vp_clients *cl, const struct mosquitto *mosq,
                                            const char *client_id);
void vp_clients__remove(struct vp_clients *cl, const struct mosquitto *mosq, void (*acl_cache_free)(void *));
/*
 * A client with a persistent session went offline. Mosquitto keeps its
 * session and checks READ for every message it queues for it, with the same
 * client pointer: the entry stays (login, identity, roles) so those checks
 * decide as they did while it was online. Parked entries are bounded (the
 * oldest is dropped first) and removed when the client id logs in again; a
 * parked entry marked kick_pending (revoked) is no longer returned by get.
 */
void vp_clients__park(struct vp_clients *cl, const struct mosquitto *mosq, void (*acl_cache_free)(void *));
/*
 * A client without a persistent session went offline. Mosquitto 2.0.11 runs
 * the DISCONNECT event first and the Will's ACL_CHECK WRITE after it, with
 * the same client pointer: at once when the Will has no delay, or when an
 * MQTT 5 Will Delay Interval ends (or the session does, or the broker
 * stops). The plugin API does not tell which, so the entry stays, marked
 * departed and seen only by get_publisher, for VP_DEPARTED_KEEP seconds
 * (removed by the first TICK after that; at most MAX_DEPARTED, oldest
 * dropped first). A Will delayed longer finds no entry: if the plugin had
 * refused the client (kick_pending) when its entry was dropped, refused
 * keeps answering true for that pointer and client id (at most MAX_GONE,
 * oldest dropped first, forgotten at a new login on the pointer); the ACL
 * also refuses a client id on the revocation list. Otherwise it is judged
 * by the names the broker reports, without the identity it logged in with
 * (docs/SECURITY.md, residuals).
 * The broker may free the context and give its pointer to a new client:
 * that client's login replaces the entry (put), or, if another mechanism
 * logs it in, forget_departed must be called at its BASIC_AUTH /
 * EXT_AUTH_START before anything else.
 */
#define VP_DEPARTED_KEEP 60
void vp_clients__depart(struct vp_clients *cl, const struct mosquitto *mosq, time_t now,
                        void (*acl_cache_free)(void *));
void vp_clients__forget_departed(struct vp_clients *cl, const struct mosquitto *mosq, void (*acl_cache_free)(void *));
/*
 * A new login on mosq (BASIC_AUTH outside a reload's re-checks, or
 * EXT_AUTH_START): Mosquitto may hand a freed client's pointer to a new
 * connection without telling the plugin (an MQTT 5 session that expired, a
 * Will that was sent), so any offline entry (parked or departed) of mosq is
 * someone else's and is removed. Returns the state the removed entry was in
 * ("parked", "departed") for the audit line, or NULL if there was none;
 * prev_id (may be NULL, prev_len bytes) gets its client id.
 */
const char *vp_clients__forget_stale(struct vp_clients *cl, const struct mosquitto *mosq, char *prev_id,
                                     size_t prev_len, void (*acl_cache_free)(void *));
void vp_clients__tick(struct vp_clients *cl, time_t now, void (*acl_cache_free)(void *));
size_t vp_clients__departed(const struct vp_clients *cl);
/* Refused clients remembered after their departed entry was dropped. */
size_t vp_clients__gone(const struct vp_clients *cl);
size_t vp_clients__parked(const struct vp_clients *cl);
size_t vp_clients__count(const struct vp_clients *cl);
/* Visit every client; stop early when fn returns false. */
void vp_clients__foreach(struct vp_clients *cl, bool (*fn)(struct vp_client *c, void *arg), void *arg);

/* log.c: audit lines "veil: <area> | <verb> | <fields>". Never pass secrets.
 * Each line is also counted (metrics.c: the counters come from these lines
 * and nowhere else, so they cannot drift apart) and, with
 * plugin_opt_audit_format json, written again as one JSON object. */
void vp_log__audit(int level, const char *area, const char *verb, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* The plugin instance an event runs for: plugin.c binds it around every
 * event and entry point (returns the previous one, to restore). Audit lines
 * are written deep inside modules that have no context to pass (option
 * parsing, file loading); binding per event keeps two instances of the
 * plugin (per-listener settings) counting each its own lines. Mosquitto
 * runs plugin events on one thread; the binding is thread-local anyway.
 * Unbound (unit tests), lines are only logged. */
struct vp_ctx *vp_log__bind(struct vp_ctx *ctx);
/* One audit line as a JSON object on one line: {"veil":area, "event":verb,
 * "level", "time" (unix seconds), then every k=v field as a string member
 * (quoted values unquoted), words that are not k=v in "text"}. malloc'd
 * (cJSON_free), NULL on ENOMEM. */
char *vp_log__json(int level, const char *area, const char *verb, const char *fields, time_t when);
/* Plain-text value safe for a log line: control characters, spaces and '|'
 * replaced, truncated to 64 bytes; returns buf. */
const char *vp_log__clean(const char *s, char *buf, size_t buflen);

/*
 * Module interfaces: __new and __reload return veil_err, the event handlers
 * Mosquitto's decision (see "Errors" above). _option_known tells the entry
 * point which plugin_opt_* keys the module owns (unknown keys fail init).
 */
bool vp_auth__option_known(const char *key);
int vp_auth__new(struct vp_ctx *ctx, struct mosquitto_opt *opts, int count, struct vp_auth **out);
void vp_auth__free(struct vp_auth **a);
int vp_auth__basic(struct vp_ctx *ctx, struct mosquitto_evt_basic_auth *ed);
int vp_auth__ext_start(struct vp_ctx *ctx, struct mosquitto_evt_extended_auth *ed);
int vp_auth__ext_continue(struct vp_ctx *ctx, struct mosquitto_evt_extended_auth *ed);
int vp_auth__reload(struct vp_ctx *ctx);
void vp_auth__tick(struct vp_ctx *ctx, time_t now);
/* Whether client_id is on the revocation list (operator's or runtime). */
bool vp_auth__client_id_revoked(const struct vp_ctx *ctx, const char *client_id);

bool vp_acl__option_known(const char *key);
int vp_acl__new(struct vp_ctx *ctx, struct mosquitto_opt *opts, int count, struct vp_acl **out);
void vp_acl__free(struct vp_acl **a);
int vp_acl__check(struct vp_ctx *ctx, struct mosquitto_evt_acl_check *ed);
int vp_acl__reload(struct vp_ctx *ctx);
void vp_acl__tick(struct vp_ctx *ctx, time_t now);
/* Frees a vp_client's acl_cache. */
void vp_acl__client_cache_free(void *cache);
/* Whether the plugin decides ACL checks (a rules file is loaded): without
 * one it defers them all, Veil's own topics included. */
bool vp_acl__enforcing(const struct vp_ctx *ctx);

/* control.c: the admin API ($CONTROL/veil/v1, docs/OPERATIONS.md). _event
 * answers Mosquitto's CONTROL event; _tick runs the kicks it queued. */
bool vp_control__option_known(const char *key);
int vp_control__new(struct vp_ctx *ctx, struct mosquitto_opt *opts, int count, struct vp_control **out);
void vp_control__free(struct vp_control **c);
int vp_control__event(struct vp_ctx *ctx, struct mosquitto_evt_control *ed);
void vp_control__tick(struct vp_ctx *ctx, time_t now);

#endif
