/*
 * keyd's store: one SQLite database (WAL, secure_delete on), schema
 * versioned and migrated forward on open. Topic keys are sealed at rest
 * under the storage key (XChaCha20-Poly1305, AAD = instance filter ||
 * u32 key id || u32 epoch): the database file alone reveals no key.
 *
 * Opened by the daemon with the storage key (read-write), and by
 * `veil keys` without it (status, devices; rotate only queues a request
 * the daemon picks up within a second). Every write of a rotation happens
 * inside one kd_store__begin/commit.
 */
#ifndef KD_STORE_H
#define KD_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "veil/envelope.h"
#include "veil/identity.h"
#include "../core/bundle.h"

#define KD_STORE_SCHEMA 3
#define KD_STORAGE_KEY_BYTES 32U
#define KD_STORAGE_KEY_PREFIX "veil-storage-key-v1"

struct kd_store;

/* Storage key file: "veil-storage-key-v1 <base64 32 bytes>", mode 0600.
 * create: a fresh random key, refusing to overwrite. key is
 * sodium_malloc'd; free with kd_storage_key__free. */
int kd_storage_key__create(const char *path, char *err, size_t errlen);
int kd_storage_key__load(const char *path, uint8_t **key, char *err, size_t errlen);
void kd_storage_key__free(uint8_t **key);

/* Open path. storage_key NULL: admin access (no key is ever unsealed).
 * create: make the database (and schema) if missing; otherwise a missing
 * file is VEIL_ERR_NOT_FOUND. A database with a newer schema than this
 * build knows is refused (VEIL_ERR_VERSION). */
int kd_store__open(const char *path, const uint8_t *storage_key, bool create, struct kd_store **out, char *err,
                   size_t errlen);
void kd_store__close(struct kd_store **s);
int kd_store__schema(struct kd_store *s);

int kd_store__begin(struct kd_store *s);
int kd_store__commit(struct kd_store *s);
void kd_store__rollback(struct kd_store *s);

/* ---- counters (meta) ----------------------------------------------------- */
/* The next key id: >= VEIL__GRANT_KEY_ID_MIN, never handed out twice (the
 * counter only grows, also across restarts); VEIL_ERR_TOO_LARGE when the
 * range is exhausted. */
int kd_store__next_key_id(struct kd_store *s, uint32_t *out);
/* The next bundle or statement version: max(last + 1, now_us). */
int kd_store__next_version(struct kd_store *s, uint64_t now_us, uint64_t *out);

/* The public key of the keyd identity that issued the keys in store
 * (VEIL_ERR_NOT_FOUND: none recorded yet). */
int kd_store__issuer_get(struct kd_store *s, uint8_t pk[VEIL_PK_BYTES]);
int kd_store__issuer_set(struct kd_store *s, const uint8_t pk[VEIL_PK_BYTES]);

/* ---- scopes and instances ----------------------------------------------- */
/* The scope row for filter, created with anchor = now when new. */
int kd_store__scope(struct kd_store *s, const char *filter, uint64_t now, int64_t *id, uint64_t *anchor);
/* The instance row (filter with %c substituted; owner NULL for a shared
 * scope), created when new. */
int kd_store__instance(struct kd_store *s, int64_t scope_id, const char *filter, const char *owner, int64_t *id);
struct kd_instance_row {
	int64_t id;
	int64_t scope_id;
	char scope[VEIL__GRANT_SCOPE_MAX + 1];
	char filter[VEIL__GRANT_SCOPE_MAX + 1];
	char owner[VEIL_CLIENT_ID_MAX + 1]; /* "" for a shared scope */
};
typedef int (*kd_instance_cb)(void *ctx, const struct kd_instance_row *r);
int kd_store__instances_each(struct kd_store *s, kd_instance_cb cb, void *ctx);

/* ---- epochs ------------------------------------------------------------- */
struct kd_epoch {
	int64_t instance;
	uint32_t key_id;
	uint32_t epoch;
	uint64_t send_from, send_until, accept_until;
	uint64_t superseded_at; /* 0: live */
	uint32_t grace_s;       /* of the epochs this one supersedes */
	uint8_t flags;          /* VEIL__GRANT_SUPERSEDES only; the rest is per device */
	uint8_t *key;           /* VEIL_KEY_BYTES in sodium_malloc'd memory (NULL in admin rows) */
};
/* Seal e->key under the storage key and insert. */
int kd_store__epoch_add(struct kd_store *s, const char *instance_filter, const struct kd_epoch *e);
int kd_store__epoch_supersede(struct kd_store *s, uint32_t key_id, uint64_t at);
/* Every stored epoch of every instance, keys unsealed into sodium_malloc'd
 * memory (daemon only). cb owns e->key. */
typedef int (*kd_epoch_cb)(void *ctx, const char *instance_filter, struct kd_epoch *e);
int kd_store__epochs_each(struct kd_store *s, kd_epoch_cb cb, void *ctx);
/* Delete key_id's epoch and its grant rows (secure_delete overwrites). */
int kd_store__epoch_delete(struct kd_store *s, uint32_t key_id);
/* Move the WAL's content into the database and truncate it, so deleted
 * keys leave no copy in the -wal file either. VEIL_ERR_TIMEOUT, at once,
 * while a reader holds the WAL (try again later). */
int kd_store__checkpoint(struct kd_store *s);

/* ---- devices ------------------------------------------------------------ */
struct kd_device_row {
	uint8_t cred_id[VEIL_CREDENTIAL_ID_BYTES];
	char client_id[VEIL_CLIENT_ID_MAX + 1];
	uint8_t device_pk[VEIL_PK_BYTES];
	char roles[VEIL_ROLES_MAX + 1];
	uint8_t authority_id[VEIL_AUTHORITY_ID_BYTES]; /* who signed the credential */
	uint64_t expires_at;
	uint64_t msg_ts;                             /* newest accepted device message */
	uint8_t msg_nonce[VEIL__DEVMSG_NONCE_BYTES];
	uint8_t rx_pk[VEIL__X25519_BYTES];           /* its receive key */
	uint64_t issued_version;                     /* newest bundle committed */
	uint64_t published_version;                  /* newest bundle the broker acknowledged */
	uint64_t acked_version;                      /* newest bundle the device acknowledged */
	uint64_t last_issue;                         /* unix seconds of the newest bundle */
};
int kd_store__device_put(struct kd_store *s, const struct kd_device_row *d);
/* VEIL_ERR_NOT_FOUND when absent. */
int kd_store__device_get(struct kd_store *s, const uint8_t cred_id[VEIL_CREDENTIAL_ID_BYTES], struct kd_device_row *d);
/* Forget a credential (and what its bundles held). */
int kd_store__device_delete(struct kd_store *s, const uint8_t cred_id[VEIL_CREDENTIAL_ID_BYTES]);
int kd_store__device_published(struct kd_store *s, const uint8_t cred_id[VEIL_CREDENTIAL_ID_BYTES], uint64_t version);
typedef int (*kd_device_cb)(void *ctx, const struct kd_device_row *d);
int kd_store__devices_each(struct kd_store *s, kd_device_cb cb, void *ctx);

/* What the newest bundle to a device held: (key id, flags) per grant. */
struct kd_grant_ref {
	uint32_t key_id;
	uint8_t flags;
};
int kd_store__grants_set(struct kd_store *s, const uint8_t cred_id[VEIL_CREDENTIAL_ID_BYTES], uint64_t version,
                         const struct kd_grant_ref *g, size_t n);
/* Rows of one device (malloc'd array, *n entries). */
int kd_store__grants_get(struct kd_store *s, const uint8_t cred_id[VEIL_CREDENTIAL_ID_BYTES],
                         struct kd_grant_ref **g, size_t *n);

/* ---- audit and admin ---------------------------------------------------- */
int kd_store__audit(struct kd_store *s, uint64_t now, const char *event, const char *fields);
/* Delete audit rows and finished rotation requests older than before (unix
 * seconds); *n: how many rows went. */
int kd_store__audit_prune(struct kd_store *s, uint64_t before, uint64_t *n);
/* `veil keys rotate SCOPE`: queue a forced rotation. */
int kd_store__rotate_request(struct kd_store *s, const char *scope, uint64_t now);
/* Whether name is a scope filter or a scope instance keyd has loaded into
 * the store. */
int kd_store__scope_known(struct kd_store *s, const char *name, bool *known);
/* The scope filters in the store, one per line, indented. */
int kd_store__scopes_print(struct kd_store *s, FILE *f);
/* The oldest pending request (VEIL_ERR_NOT_FOUND: none). */
int kd_store__rotate_next(struct kd_store *s, int64_t *id, char *scope, size_t cap);
int kd_store__rotate_done(struct kd_store *s, int64_t id, uint64_t now, const char *result);

/* `veil keys status` / `devices`: human-readable report to f. */
int kd_store__report_status(struct kd_store *s, FILE *f, uint64_t now);
int kd_store__report_devices(struct kd_store *s, FILE *f);

#endif
