/*
 * What device.c (requests, bundles, granted epochs, the keeper) and
 * device_revoked.c (revocation statements) share: the device's state and
 * its locks. Private to veil_client_core.
 */
#ifndef VEIL_DEVICE_PRIVATE_H
#define VEIL_DEVICE_PRIVATE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "table.h" /* uthash: keyed hash, out of memory not fatal (never exit() in a library) */

#include "bundle.h"
#include "device.h"

#define RX_KEYS 4U                 /* receive keys of the latest device messages kept */
#define OUT_MAX RX_KEYS            /* device messages waiting to be sent */
#define RETRY_MIN_MS 5000U         /* ask again when no bundle came, backing off */
#define RETRY_MAX_MS 60000U
#define WANT_MIN_MS 5000U          /* an unknown key id asks at most this often */
#define HOLD_DEFAULT_S 30U         /* before any bundle: how long held messages wait */

struct rx {
	struct veil__rxkey *k;
	uint8_t nonce[VEIL__DEVMSG_NONCE_BYTES];
};

/* A device message built and waiting for the front end's channel. */
struct out {
	uint8_t buf[VEIL__DEVMSG_MAX];
	size_t len;
	uint8_t kind;
};

/* Key ids of epochs a device dropped for good (accept-until passed, or a
 * superseded epoch's grace ended), remembered so that a message under one
 * is refused at once instead of held and asked for: keyd never grants
 * them again (key ids are never reused). The newest GONE_IDS. */
#define GONE_IDS 64

/* An epoch superseded by a rekey: kept for receiving until drop_at_ms. */
struct superseded {
	struct veil__grant g;
	uint64_t drop_at_ms;       /* monotonic */
};

struct rev {
	uint8_t key[1 + VEIL_CREDENTIAL_ID_BYTES]; /* kind || id */
	uint64_t keep_until;       /* unix s */
	UT_hash_handle hh;
};

/*
 * Locks, in this order when nested: send_lock (one sender of device
 * messages at a time), publish_lock (one keyring hand-over at a time), lock
 * (the state), rev_lock (the revocation set, also taken by receivers under
 * the session's lock). The session's lock is never held while taking
 * publish_lock or lock... except by veil__device_want_bundle, which takes
 * only lock and never calls into the session.
 *
 * Device messages are sent by the keeper thread (or, for a front end whose
 * MQTT connection only its own thread may touch, by veil__device_flush on
 * that thread), never by the thread that built them: that may be Paho's
 * callback thread (a bundle applied there), and a synchronous Paho client
 * publishing at QoS 1 from its own callback thread waits for an
 * acknowledgement only that thread could read. Queued, they go out in order.
 */
struct veil__device {
	pthread_mutex_t send_lock;
	pthread_mutex_t publish_lock;
	pthread_mutex_t rev_lock;
	pthread_mutex_t lock;      /* everything below but the immutable identity fields */
	pthread_cond_t cond;       /* keeper wakeups, on CLOCK_MONOTONIC */
	pthread_t keeper;
	bool keeper_started, stop;
	char *client_id;
	const struct veil_identity *identity;
	const uint8_t *credential;
	size_t credential_len;
	struct veil_credential cred;
	uint8_t (*authorities)[VEIL_PK_BYTES];
	size_t n_authorities;
	char *keys_path, *revoked_path;
	char bundle_topic[sizeof(VEIL__TOPIC_BUNDLE_PREFIX) + VEIL_CLIENT_ID_MAX];
	char req_topic[sizeof(VEIL__TOPIC_REQ_PREFIX) + VEIL_CLIENT_ID_MAX];
	struct veil__grants *grants;       /* of the latest applied bundle */
	uint64_t version;
	bool have_version;                 /* applied or persisted */
	uint8_t version_signer[VEIL_CREDENTIAL_ID_BYTES]; /* keyd credential of the bundle held */
	bool have_signer;                  /* known (state files before 1.0.0 do not say) */
	bool applied;                      /* a bundle applied since the device started */
	bool save_due;                     /* the keys file lags what is in memory (device_keys.c) */
	bool ack_due;                      /* and the version in memory awaits its acknowledgement */
	uint64_t save_retry_ms;            /* monotonic: not before, after a failed write */
	struct superseded *sup;            /* sodium_malloc'd, nsup of cap */
	size_t nsup, supcap;
	uint32_t gone[GONE_IDS];           /* key ids of epochs dropped for good, a ring */
	size_t ngone;                      /* how many were ever noted */
	struct rx rx[RX_KEYS];             /* oldest first */
	size_t nrx;
	bool connected, awaiting;          /* a request is out and no bundle came */
	bool want_pending;                 /* a newer bundle is wanted (no-key, unknown key id, or one
	                                    * sealed to a receive key already spent) */
	uint64_t request_ms, retry_ms, want_ms;
	uint64_t last_ts;                  /* of the latest device message: keyd wants them growing */
	struct out *out;                   /* sodium_malloc'd, OUT_MAX; nout queued, oldest first */
	size_t nout;
	bool out_later;                    /* the keeper's channel said "not on this thread" */
	struct rev *revs;
	struct veil__revoked revoked;
	veil__send_fn send;
	void *send_ctx;
	veil__log_fn log;
	void *log_ctx;
	void (*keys_changed)(void *ctx, const struct veil__keyring_grant *g, size_t n);
	void *keys_ctx;
	void (*tick)(void *ctx);
};

/* The device's log line (never a key). */
void veil__device_log(const struct veil__device *d, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Queue a device message for the keeper; version NULL: the version held. */
void veil__device_send(struct veil__device *d, uint8_t kind, const uint64_t *version);

/* device_keys.c: the granted-keys file. Under the lock: the file must catch
 * up with memory (ack: then acknowledge that version; the caller wakes the
 * keeper, d->cond, once the keys are handed over); the keeper's write
 * (releases the lock meanwhile; acknowledges only when may_ack and the write
 * succeeded, else retries later); the load at start. */
void veil__device_keys_due(struct veil__device *d, bool ack);
void veil__device_keys_persist(struct veil__device *d, bool may_ack);
int veil__device_keys_load(struct veil__device *d, char *err, size_t errlen);

/* device_revoked.c: what the device knows of revocations (the union of the
 * valid statements' entries, persisted in <state_dir>/revoked). */
/* The receivers' revocation check (d->revoked), and the load of the file. */
void veil__device_rev_init(struct veil__device *d);
int veil__device_rev_load(struct veil__device *d, char *err, size_t errlen);
/* For veil__trust: a keyd credential the statements revoked. */
bool veil__device_rev_signer(const struct veil_credential *c, void *ctx);
/* A statement on the revocation topic: checked, then added (a union). */
int veil__device_rev_statement(struct veil__device *d, const uint8_t *payload, size_t len);
/* After revocations were added or loaded: a version held from a bundle
 * whose keyd credential is now revoked is forgotten (device.c). */
void veil__device_version_recheck(struct veil__device *d);
/* Forget entries past their keep-until; free them all. */
void veil__device_rev_expire(struct veil__device *d, uint64_t now_s);
void veil__device_rev_free(struct veil__device *d);


#endif
