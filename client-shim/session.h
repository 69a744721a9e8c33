/*
 * The client session core: everything a Veil client does that is not Paho
 * glue, written once for every front end (libveil's MQTTClient and MQTTAsync
 * flavours, the LD_PRELOAD interposer, and through libveil the CLI). No Paho
 * type appears here.
 *
 * A session is one device identity at work: its credential, keyring, state
 * directory and sender sequence, the login token, sealing. A receiver is one
 * connection's receive side (its replay windows, persisted per client id), so
 * two clients of one process that subscribe to the same topic never see each
 * other's deliveries as replays. The rules that used to differ between the
 * front ends live here only:
 *   - loading: identity and credential must match; the credential must be
 *     for the configured client id (token login), verify against the
 *     keyring's authorities when it lists any, and be valid now; every error
 *     names its file;
 *   - state_dir: created 0700 when missing; refused when it (or a state file
 *     in it) is owned by another user or writable by group or others; locked,
 *     so two clients or processes never share one sequence; a corrupt sequence
 *     or replay file refuses to start;
 *   - replay windows are saved every VEIL__SAVE_EVERY accepted messages or
 *     VEIL__SAVE_SECONDS seconds (monotonic), whichever comes first, and when
 *     the receiver is freed; the file is written outside the lock, by the
 *     session's state writer thread (session_writer.c), not by the thread
 *     that delivers messages;
 *   - seal: policy, signing, and sending in clear only where the keyring says
 *     plaintext (refused outright with refuse_plaintext_send);
 *   - open: every check of docs/PROTOCOL.md section 8;
 *   - what is said: one line per refused publish ("... REFUSED: ... (name)"),
 *     dropped message ("... DROPPED: ... (name)"), message sent or accepted
 *     in clear, through the log callback; libveil hands it to the app's
 *     log callback, the preload prints it (tests/broker/check_frontends.c
 *     holds both to the same words).
 * Thread safety: every function may be called from any thread; one mutex
 * per session guards keyring, sequence and replay windows.
 */
#ifndef VEIL_SESSION_H
#define VEIL_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "veil/veil.h"

#define VEIL__SAVE_EVERY 64U
#define VEIL__SAVE_SECONDS 5U

/* Log levels, the numbers of enum veil_log_level (client.h). INFO is what
 * an attacker can trigger at will (a refused incoming message); front ends
 * that print unconditionally show only ERROR and WARNING. */
enum { VEIL__LOG_ERROR = 0, VEIL__LOG_WARNING = 1, VEIL__LOG_INFO = 2, VEIL__LOG_DEBUG = 3 };
typedef void (*veil__log_fn)(void *ctx, int level, const char *msg);

/* Monotonic milliseconds, and the CLOCK_MONOTONIC time ms from now (timed
 * waits on condition variables set to that clock): for every front end. */
uint64_t veil__mono_ms(void);
struct timespec veil__mono_after(uint64_t ms);

/* The front end's raw publish for the key service's device messages: QoS 1,
 * not retained, never sealed; VEIL_OK when handed to MQTT. The core calls it
 * from its own keeper thread, never from the thread that delivered a
 * message. VEIL__SEND_LATER: this connection may only be used from the front
 * end's own thread (Paho's synchronous mode), which then calls
 * veil__session_flush. */
#define VEIL__SEND_LATER 1
typedef int (*veil__send_fn)(void *ctx, const char *topic, const uint8_t *payload, size_t len);

/* Whether the client uses the key service (docs/KEYS.md). */
enum veil__key_service {
	VEIL__KEYS_AUTO = 0,            /* on when there is no keyring file */
	VEIL__KEYS_ON = 1,
	VEIL__KEYS_OFF = 2
};

struct veil__session_opts {
	const char *client_id;          /* the client id the broker will see; NULL: the credential's */
	const char *audience;           /* the deployment tokens are bound to; NULL: version 1 tokens */
	const char *identity_path;      /* NULL: receive only */
	const char *credential_path;    /* NULL: no token login, no signing */
	const char *keyring_path;       /* NULL: none (the key service's keys only) */
	const char *authority_path;     /* NULL, or public keys of further trusted authorities */
	int key_service;                /* enum veil__key_service */
	const char *state_dir;          /* NULL: state in memory only */
	bool token_login;               /* logs in with a token: the credential must be for client_id */
	bool sign_all;                  /* sign every envelope */
	bool refuse_plaintext_send;     /* never send in clear, even where policy allows */
	size_t max_per_key;             /* receive windows per key; 0: VEIL_REPLAY_DEFAULT_PER_KEY */
	veil__log_fn log;               /* may be NULL */
	void *log_ctx;
};

struct veil__session;
struct veil__receiver;

/* err (may be NULL) gets the reason in words, naming the file concerned and
 * ending in "(<veil_errname>)" (so does veil__receiver_new's). */
int veil__session_new(const struct veil__session_opts *o, struct veil__session **out, char *err, size_t errlen);
void veil__session_free(struct veil__session **s);

/* Re-read the keyring from the same path and use it for every message from
 * now on; on any error the old keyring stays and err says why (file:line). */
int veil__session_reload(struct veil__session *s, char *err, size_t errlen);

/* ---- the key service (docs/KEYS.md) ----
 * A front end that runs the session on an MQTT connection: sets its raw
 * publish, subscribes (QoS 1) to veil__session_topics after every connect and
 * then calls veil__session_connected; hands every message on such a topic to
 * veil__session_service_message instead of a receiver; calls
 * veil__session_disconnected when the connection is gone. All no-ops when the
 * key service is off. */
bool veil__session_key_service(const struct veil__session *s);
void veil__session_set_send(struct veil__session *s, veil__send_fn fn, void *ctx);
size_t veil__session_topics(const struct veil__session *s, const char *topics[2]);
void veil__session_connected(struct veil__session *s);
void veil__session_disconnected(struct veil__session *s);
/* Send the device messages waiting for the caller's thread (after the raw
 * publish said VEIL__SEND_LATER); cheap when none wait. */
void veil__session_flush(struct veil__session *s);
bool veil__session_service_topic(const struct veil__session *s, const char *topic);
int veil__session_service_message(struct veil__session *s, const char *topic, const uint8_t *payload, size_t len);
/*
 * Readiness: a client that uses the key service is ready to publish once it
 * can seal under it (a bundle applied since it started, or keys kept in
 * state_dir whose send window covers now). Front ends make "connected" mean
 * "ready": they wait, bounded by their connect timeout, after the key
 * service's subscriptions and request, on a thread that does not deliver
 * the bundle. Always ready without the key service.
 */
bool veil__session_ready(struct veil__session *s);
/* Wait up to timeout_ms; true when ready. False at the timeout, after
 * logging (warn) the WARNING every front end gives: no bundle came, and
 * publishes under the key service's scopes are refused (no-key) until one
 * does; false early and silent when *cancel (may be NULL, read atomically)
 * is set and veil__session_wake is called. */
bool veil__session_wait_ready(struct veil__session *s, unsigned timeout_ms, const bool *cancel, bool warn);
/* That WARNING, for a front end that waited its own way (waited_ms). */
void veil__session_not_ready(struct veil__session *s, unsigned waited_ms);
void veil__session_wake(struct veil__session *s);

/* The client id the session logs in as (NULL: none given, no credential). */
const char *veil__session_client_id(const struct veil__session *s);
bool veil__session_can_sign(const struct veil__session *s);

/* Login material for exactly one CONNECT (a token is single-use): the raw
 * token (MQTT 5 Authentication Data) and its password form (MQTT 3.1.1, or
 * MQTT 5 without enhanced auth: username = client id). Wipe after use. */
struct veil__token {
	uint8_t tok[VEIL_TOKEN_MAX];
	size_t len;
	char password[VEIL_PASSWORD_MAX];
};
int veil__session_token(struct veil__session *s, struct veil__token *t);
void veil__token_wipe(struct veil__token *t);

/* Seal payload for topic into stackbuf when it fits, else into a malloc'd
 * buffer; *out is one or the other (release with veil__sealed_release).
 * *sealed false: sent in clear under a plaintext policy, or an empty
 * retained publish, which MQTT uses to clear a topic's retained message (it
 * carries nothing; the plugin lets it through on protected topics). With the
 * key service on and no bundle yet (none applied, none kept in state_dir), a
 * topic the keyring file does not cover is refused no-key, not no-policy:
 * the device does not know its scopes yet, and it asks for its bundle. */
int veil__session_seal(struct veil__session *s, const char *topic, const void *payload, size_t len, bool retained,
                       uint8_t *stackbuf, size_t stackcap, uint8_t **out, size_t *out_len, bool *sealed);
void veil__sealed_release(uint8_t *out, size_t len, const uint8_t *stackbuf);
/* A Will, sealed for one CONNECT like any publish (malloc'd *out). Its
 * refusal says the connect is refused; under a key service scope a Will can
 * only be sealed with keys already held (kept in state_dir from an earlier
 * connection): before the first bundle it is refused no-key, saying so. */
int veil__session_seal_will(struct veil__session *s, const char *topic, const void *payload, size_t len,
                            bool retained, uint8_t **out, size_t *out_len);

struct veil__seal_stats {
	uint64_t published, published_sealed, publish_refused;
};
void veil__session_seal_stats(struct veil__session *s, struct veil__seal_stats *out);

/* A receiver for client_id (its replay file is "replay-<escaped id>" in the
 * state dir; the older single "replay" file is read once if present). */
int veil__receiver_new(struct veil__session *s, const char *client_id, struct veil__receiver **out, char *err,
                       size_t errlen);
/* Saves the windows, then frees. */
void veil__receiver_free(struct veil__receiver **r);
/* Open a received payload (topic_len 0: NUL terminated; else the topic may
 * not contain a NUL). out_cap >= len + 1; the plaintext is NUL terminated.
 * VEIL__WAIT: an envelope under a key service key id this device does not
 * hold yet: it has asked for a bundle; the front end may keep the message
 * (veil__receiver_hold) or refuse it as unknown-key. */
#define VEIL__WAIT 1
int veil__receiver_open(struct veil__receiver *r, const char *topic, size_t topic_len, const uint8_t *in,
                        size_t len, uint8_t *out, size_t out_cap, size_t *out_len, struct veil_open_info *info)
	__attribute__((warn_unused_result));

/*
 * Held messages. A front end that can keep a message (its payload and topic
 * behind a handle of its own) sets held_fn once; after VEIL__WAIT it calls
 * veil__receiver_hold(handle). The core keeps at most VEIL__HELD_MAX per
 * receiver, each until the key service's grace is over. When new keys
 * arrive the core calls held_fn(ctx, handle, false): the front end opens the
 * message again with veil__receiver_open_again and returns true when it is
 * done with it (delivered or refused), false to keep waiting; at the deadline
 * held_fn(ctx, handle, true): refuse it as unknown-key and free it. Called
 * without the session's lock, from the thread that applied the keys or from
 * the key service's keeper thread.
 */
#define VEIL__HELD_MAX 256U
typedef bool (*veil__held_fn)(void *ctx, void *handle, bool expired);
void veil__receiver_set_held(struct veil__receiver *r, veil__held_fn fn, void *ctx);
/* VEIL_OK: held; VEIL_ERR_UNKNOWN_KEY: no room (refuse it now; counted and
 * logged here). At its deadline the core counts and logs the refusal
 * (unknown-key) before held_fn(expired) runs. */
int veil__receiver_hold(struct veil__receiver *r, void *handle, const char *topic);
/* veil__receiver_open for a held message (not counted as received again). */
int veil__receiver_open_again(struct veil__receiver *r, const char *topic, size_t topic_len, const uint8_t *in,
                              size_t len, uint8_t *out, size_t out_cap, size_t *out_len,
                              struct veil_open_info *info) __attribute__((warn_unused_result));
/* Persist the windows now (e.g. at disconnect). */
void veil__receiver_save(struct veil__receiver *r);

struct veil__recv_stats {
	uint64_t received, delivered, refused;
	uint64_t refused_by_err[64];   /* [-err] for err in (-64, 0] */
};
void veil__receiver_stats(struct veil__receiver *r, struct veil__recv_stats *out);

#endif
