/*
 * The device side of the key service (docs/KEYS.md, docs/PROTOCOL.md
 * sections 10-13), part of the client session core: Paho-free, no front end
 * sees it. It owns what a device holds of the key service:
 *   - the receive keys of its latest device messages (X25519, memory only,
 *     wiped once a bundle sealed to one of them is applied),
 *   - the granted epochs of the latest applied bundle and its version,
 *     persisted in <state_dir>/keys (0600) so a restart needs no request
 *     before it can seal, and deleted from memory and disk once an epoch's
 *     accept-until has passed (forward secrecy by epochs),
 *   - epochs superseded by a rekey, kept for receiving only for their grace
 *     (monotonic clock),
 *   - the union of every valid revocation statement's entries, persisted in
 *     <state_dir>/revoked, each until its keep-until.
 * It sends a request at every connect, an acknowledgement after every
 * applied bundle (each with a fresh receive key, timestamps growing), and
 * asks again when no bundle came (backing off) or when a newer one is
 * wanted. A keeper thread does the timed work and sends the device
 * messages; nothing here blocks the caller on the network.
 */
#ifndef VEIL_DEVICE_H
#define VEIL_DEVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "veil/veil.h"
#include "internal.h"
#include "session.h"

struct veil__device;

struct veil__device_opts {
	const char *client_id;                    /* the credential's */
	const struct veil_identity *identity;     /* signs device messages */
	const uint8_t *credential;
	size_t credential_len;
	const uint8_t (*authorities)[VEIL_PK_BYTES]; /* trusted for keyd's credential (never grown by keyd) */
	size_t n_authorities;
	const char *state_dir;                    /* NULL: memory only (no persisted version) */
	veil__log_fn log;
	void *log_ctx;
	/* The granted epochs changed (applied bundle, expiry, end of a grace):
	 * the session composes its keyring anew. Called without device locks. */
	void (*keys_changed)(void *ctx, const struct veil__keyring_grant *g, size_t n);
	void *keys_ctx;
	/* Called by the keeper thread about once a second (held messages'
	 * deadlines), without device locks. */
	void (*tick)(void *ctx);
};

int veil__device_new(const struct veil__device_opts *o, struct veil__device **out, char *err, size_t errlen);
/* Stops the keeper thread, wipes every key. */
void veil__device_free(struct veil__device **d);
/* Hand the current epochs to keys_changed now (at start: what was persisted). */
void veil__device_publish_keys(struct veil__device *d);
/* The front end's outbound channel (may be set after connect handlers exist). */
void veil__device_set_send(struct veil__device *d, veil__send_fn fn, void *ctx);
/* The topics to subscribe (QoS 1) after every connect: this device's bundle
 * topic and the revocation statement. */
size_t veil__device_topics(const struct veil__device *d, const char *topics[2]);
/* After every (re)connect and subscribe: sends a request. */
void veil__device_connected(struct veil__device *d);
/* The connection is gone: nothing is sent until the next connect. */
void veil__device_disconnected(struct veil__device *d);
/* Send queued device messages on the calling thread (after the channel
 * said VEIL__SEND_LATER to the keeper). */
void veil__device_flush(struct veil__device *d);
/* Whether topic is one the device consumes (never delivered to the app). */
bool veil__device_topic(const struct veil__device *d, const char *topic);
/* A message on such a topic. VEIL_OK when applied (or a harmless repeat);
 * else the refusal, logged and counted; keys held are never dropped
 * because of a bad bundle. */
int veil__device_message(struct veil__device *d, const char *topic, const uint8_t *payload, size_t len);
/* The receivers' revocation check (valid as long as d). */
const struct veil__revoked *veil__device_revoked(struct veil__device *d);
/* Ask for a bundle now (an envelope under an unknown key service key id
 * came in); rate limited. */
void veil__device_want_bundle(struct veil__device *d);
/* Whether key_id is an epoch this device dropped for good (its accept-until
 * passed, or its grace after a rekey ended): never granted again, so a
 * message under it is refused, not held. */
bool veil__device_gone(struct veil__device *d, uint32_t key_id);
/* Whether a bundle has been applied since the device started (or its
 * version was persisted): until then, keyd-range key ids are held, not refused. */
bool veil__device_has_bundle(struct veil__device *d);
/* Whether the device can seal under the key service now: a bundle applied
 * since it started, or a persisted epoch whose send window covers now. */
bool veil__device_ready(struct veil__device *d);
/* Wait until it is ready; false at deadline (CLOCK_MONOTONIC), or early
 * when *cancel (may be NULL; read atomically) is set and veil__device_wake
 * called. Takes only the device's lock. */
bool veil__device_wait_ready(struct veil__device *d, const struct timespec *deadline, const bool *cancel);
void veil__device_wake(struct veil__device *d);
/* How long a held message may wait: the largest grace of the epochs held
 * (accept-until after send-until, or a rekey's grace); 30 s before any. */
uint32_t veil__device_hold_seconds(struct veil__device *d);

#endif
