/*
 * veil-keyd's private header: what the daemon's files share (config,
 * audit log, the daemon state). Each module keeps its own header for what
 * it offers (store.h, epochs.h, grants.h, service.h, mqtt.h). Names:
 * kd_<area>__<verb>, file-local helpers static and unprefixed.
 *
 * keyd exposes nothing to devices but the wire formats of docs/PROTOCOL.md
 * sections 10-13 (core/bundle.h); `veil keys` reads and writes its store
 * through store.h only.
 */
#ifndef KD_KEYD_H
#define KD_KEYD_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KD_CONFIG_MAX_BYTES (1U << 20)
#define KD_CONFIG_MAX_LINE 4096U
#define KD_SCOPES_MAX 4096U
#define KD_DEFAULT_TOKEN_WINDOW 60U
#define KD_DEFAULT_REISSUE 5U
#define KD_DEFAULT_REKEY_GRACE 5U
#define KD_DEFAULT_DEPTH 2U
#define KD_DEFAULT_AUDIT_DAYS 30U    /* audit rows and finished rotation requests kept, days */
#define KD_DEFAULT_REQUEST_RATE 10U   /* device messages per second per client id, before any verify */
#define KD_DEFAULT_KEEPALIVE 30U
#define KD_PERIOD_MAX (366U * 86400U) /* a year: epochs longer than that defeat their purpose */

/* One `scope <filter> period <s> lead <s> grace <s> [depth <k>]` line. */
struct kd_scope_conf {
	char *filter;      /* valid topic filter; '%c' only as a whole level */
	bool per_device;   /* has a %c level: one instance per known device */
	uint32_t period;   /* seconds each epoch is sent with */
	uint32_t lead;     /* seconds before send_from the next epoch is granted */
	uint32_t grace;    /* seconds an epoch is accepted after its send_until */
	uint32_t depth;    /* periods granted beyond the lead (0..16) */
	unsigned line;     /* where it was written, for messages */
};

struct kd_config {
	char *path;
	char *broker;          /* Paho server URI: tcp://host:port or ssl://host:port */
	char *client_id;       /* = keyd's credential's client id */
	char *identity;        /* keyd's Ed25519 identity (secret file) */
	char *credential;      /* keyd's credential, role veil-keyd */
	char *authorities;     /* public key file the plugin trusts */
	char *acl_file;        /* the plugin's ACL file */
	char *revocation_file; /* the plugin's revocation list (optional) */
	char *runtime_revocation_file; /* the plugin's runtime list (<plugin_opt_state_dir>/revocations,
	                                * written by its admin API): read when present */
	char *database;        /* SQLite path */
	char *storage_key;     /* 0600 file: the key sealing topic keys at rest */
	char *tls_ca_file;     /* optional, for ssl:// brokers */
	char *audience;        /* optional: the deployment's name (plugin_opt_audience): version 2 login tokens */
	uint32_t token_window;     /* seconds, freshness of device messages (and lead/grace floor) */
	uint32_t reissue_interval; /* seconds between two bundles of unchanged content to one device */
	uint32_t rekey_grace;      /* seconds superseded epochs stay accepted after a forced rotation */
	uint32_t request_rate;     /* device messages per second per client id before they are dropped unverified */
	uint32_t keepalive;        /* MQTT keep-alive, seconds */
	uint32_t audit_days;       /* the store's audit rows kept this many days (0: for ever) */
	struct kd_scope_conf *scopes;
	size_t n_scopes;
};

/* Parse a config image; name is used in errors ("name:line: reason").
 * Relative paths are resolved against name's directory. On error *out is
 * empty (freed). */
int kd_config__parse(const char *name, const char *text, size_t len, struct kd_config *out, char *err,
                     size_t errlen);
int kd_config__load(const char *path, struct kd_config *out, char *err, size_t errlen);
void kd_config__free(struct kd_config *c);
/* The scope whose filter is exactly filter, or NULL. */
const struct kd_scope_conf *kd_config__scope(const struct kd_config *c, const char *filter);

/* ---- audit log: "veil-keyd: <area> | <verb> | k=v ..." ------------------ */

/* Where lines go: a sink (tests capture them), else stderr. */
typedef void (*kd_log_sink)(void *ctx, const char *line);
void kd_log__set_sink(kd_log_sink sink, void *ctx);
void kd_log__set_debug(bool on);
void kd_log__audit(const char *area, const char *verb, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void kd_log__debug(const char *area, const char *verb, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* A client-supplied string made safe for one k=v field (at most 64 bytes,
 * no blanks, '|' or '='). */
const char *kd_log__clean(const char *s, char *buf, size_t buflen);
/* Lower-case hex of n bytes into out (2n + 1). */
const char *kd_log__hex(const uint8_t *p, size_t n, char *out, size_t cap);

/* Substitute %c levels of filter with client_id; false when the result
 * would be longer than cap - 1 (or client_id is NULL and %c occurs). */
bool kd_filter__subst(const char *filter, const char *client_id, char *out, size_t cap);

#endif
