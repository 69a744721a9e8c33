/*
 * Private to libveil_preload.so: the state every interposer shares (config,
 * identity, keyring, sequence, one record per Paho handle), the recursion
 * guard, and the seal/open/login helpers that preload_client.c (MQTTClient)
 * and preload_async.c (MQTTAsync) call. preload.c owns all of it.
 *
 * Why a recursion guard: Paho calls some of its own exported functions
 * through the PLT (MQTTClient_publish -> MQTTClient_publish5,
 * MQTTAsync_sendMessage -> MQTTAsync_send), so those inner calls land in our
 * interposers again; without the guard a message would be sealed twice.
 */
#ifndef VEIL_PRELOAD_H
#define VEIL_PRELOAD_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "veil/veil.h"
#include "session.h"

#define VPL_TAG "veil-preload"

/* A message an MQTTClient app without callbacks has not received yet: read
 * by the preload itself (while connect waits for the key service's keys,
 * or before a publish), or a held message whose key came (opened). */
struct vpl_queued {
	struct vpl_queued *next;
	char *topic;
	int topic_len;              /* as Paho's MQTTClient_receive gives it */
	int rc;                     /* its MQTTClient_receive return code */
	void *m;                    /* MQTTClient_message */
	bool opened;                /* already opened in place */
};

/* Per-handle record. Its address is the context Paho hands our callback
 * wrappers, so it must live until the real destroy returned. */
struct vpl_handle {
	struct vpl_handle *next;
	void *handle;               /* MQTTClient or MQTTAsync */
	bool async;
	char *client_id;            /* the id actually given to Paho */
	struct veil__receiver *rcv; /* receive windows of this client (session core) */
	/* app callbacks and their contexts */
	void *app_ma;
	void *app_ma_ctx;
	void *app_cl;
	void *app_dc;
	void *app_ctx;
	void *app_update;           /* MQTTAsync_updateConnectOptions */
	void *app_update_ctx;
	/* Message already decrypted in place whose delivery the app refused
	 * (returned 0): Paho redelivers the same object, which must not be
	 * opened a second time. */
	void *opened_pending;
	bool mqtt5;                 /* created for MQTT 5 (Paho's *5 calls) */
	void *app_connected;        /* MQTTAsync_connected */
	void *app_connected_ctx;
	/* The flavour's Paho calls, for held messages and the key service
	 * (preload_client.c / preload_async.c). */
	int (*app_deliver)(struct vpl_handle *h, char *topic, int topic_len, void *m); /* app's messageArrived */
	void (*free_message)(void *m, char *topic);
	int (*raw_publish)(struct vpl_handle *h, const char *topic, const uint8_t *payload, size_t len);
	int (*subscribe_service)(struct vpl_handle *h, char *const *topics, int n);
	/* How long a connect waits for the key service's keys (the app's
	 * connectTimeout). */
	unsigned ready_ms;
	/* MQTTClient without callbacks (Paho's synchronous mode): nothing
	 * reads unless the app or the preload calls receive. */
	bool polling;
	pthread_mutex_t pump_lock;  /* one reader of Paho at a time (trylock) */
	uint64_t drained_ms;        /* monotonic: the last drain before a publish */
	pthread_mutex_t q_lock;     /* the queue */
	struct vpl_queued *q_head, *q_tail;
	/* MQTTAsync: the app's connect callbacks, called through ours. */
	void *app_conn_ok, *app_conn_ok5, *app_conn_fail, *app_conn_fail5, *app_conn_ctx;
	void *conn_ok_data;         /* the success data copied, until connected_wrap defers it */
};

/* The queue of an MQTTClient handle (any thread). Freed with the handle
 * (h->free_message). */
void vpl_queue_push(struct vpl_handle *h, char *topic, int topic_len, int rc, void *m, bool opened);
bool vpl_queue_pop(struct vpl_handle *h, struct vpl_queued *out);

/* What the interposed messageArrived does first with a message:
 * VPL_DELIVER (opened in place: hand it to the app) or VPL_TAKEN (the key
 * service's own message, dropped, or held until its key arrives: the
 * preload owns it now; return 1 to Paho). */
enum vpl_arrival { VPL_DELIVER = 0, VPL_TAKEN = 1 };
/* Paho gives a topic's length in some paths and 0 in others; the core's
 * convention: 0 for a NUL-terminated topic without a NUL inside. */
int vpl_topic_len(const char *topic, int topic_len);
enum vpl_arrival vpl_arrived(struct vpl_handle *h, char *topic, int topic_len, void *m, void *payload, int *len);
/* After a connect succeeded on h: the key service's subscriptions and
 * request (when h logs in as the session's client id: then true, and h's
 * connect waits for the keys). */
bool vpl_connected(struct vpl_handle *h);
void vpl_disconnected(struct vpl_handle *h);
/* The process's client session (after vpl_ready). */
struct veil__session *vpl_session(void);

/* Thread-local: nonzero while we are inside a real Paho call. */
extern __thread int vpl_depth;
/* Thread-local: nonzero while Paho runs one of our callback wrappers: a
 * connect made from there must not wait for keys (this thread delivers them). */
extern __thread int vpl_in_cb;
/* Thread-local: the envelope we are handing to Paho right now. A nested
 * publish passes through unsealed only when it carries exactly this buffer;
 * anything else (say, an app callback run synchronously inside our call) is
 * sealed like any publish. */
extern __thread const void *vpl_inflight;

/* Run an app callback outside our depth: what it publishes is its own. */
#define VPL_APP_CALL(expr)                   \
	do {                                 \
		int vpl_saved_ = vpl_depth;  \
		vpl_depth = 0;               \
		expr;                        \
		vpl_depth = vpl_saved_;      \
	} while (0)

/* Load config, identity, credential, keyring once. Returns true when
 * ready; otherwise prints (once) and returns false: callers must fail. */
bool vpl_ready(void);
/* Reason the preload is not ready (for a repeated loud error line). */
const char *vpl_error(void);
/* Always printed: refusals of the app's own actions and setup errors. */
void vpl_loud(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Printed only with "log stderr": receive-side drops an attacker can trigger. */
void vpl_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Resolve a real Paho symbol (dlsym RTLD_NEXT); loud and NULL if missing. */
void *vpl_real(const char *name);

/* The client id to give Paho: the credential's when auth credential or
 * client_id is configured, else the app's. Returns a pointer valid for the
 * process lifetime or app_id itself. */
const char *vpl_client_id(const char *app_id);

/* Register a handle Paho created, with its receiver (replay windows of
 * client_id). NULL after printing why, as a NOT ACTIVE line: the caller
 * destroys the handle and fails the create. */
struct vpl_handle *vpl_handle_new(void *handle, bool async, const char *client_id);
struct vpl_handle *vpl_handle_find(void *handle);
/* Unlink and free (persisting receive windows first); its counters stay
 * in the exit summary. */
void vpl_handle_free(void *handle);
/* Before the real destroy: the key service's keeper sends nothing more on
 * this handle (a send under way has ended when it returns). */
void vpl_handle_forget(void *handle);

/* Seal for topic into a malloc'd buffer. On failure prints the reason and
 * returns a veil error: the caller must not send anything. */
int vpl_seal(const char *topic, const void *pt, size_t len, bool retained, uint8_t **out, size_t *out_len);
/* The same for a Will at CONNECT (the session core says why it cannot be
 * sealed: under a key service scope it needs keys kept from an earlier run). */
int vpl_seal_will(const char *topic, const void *pt, size_t len, bool retained, uint8_t **out, size_t *out_len);
/* Free a sealed buffer (wiped first: it is ciphertext, but cheap to be tidy). */
void vpl_sealed_free(uint8_t *buf, size_t len);

/* Open a received payload in place: on VEIL_OK *len is the plaintext length
 * (<= the old one) and the bytes at payload are plaintext. On failure the
 * reason is logged and counted; the caller drops the message. topic_len 0
 * means NUL terminated (Paho's convention). */
int vpl_open_inplace(struct vpl_handle *h, const char *topic, int topic_len, void *payload, int *len);
/* The same for a held message opened again (not counted as received twice). */
int vpl_open_inplace_again(struct vpl_handle *h, const char *topic, int topic_len, void *payload, int *len);

/* Login material for one CONNECT under "auth credential": username = client
 * id, password = VEIL_PASSWORD_PREFIX + base64(fresh token). Returns false
 * when auth is not credential (leave the app's login alone). pw must hold
 * VEIL_PASSWORD_MAX; wipe it after the call. Errors print and set *rc. */
bool vpl_login(const char *client_id, char *pw, size_t pwcap, int *rc);

#endif
