/*
 * What async.c (veil_async_*: connection, worker, public API) and
 * async_req.c (the app's pending requests and their Paho completions, and
 * the callback guard veil_async_free waits on) share. Private to libveil.
 */
#ifndef VEIL_ASYNC_PRIVATE_H
#define VEIL_ASYNC_PRIVATE_H

#include "shim.h"

enum req_kind { REQ_PUBLISH, REQ_SUBSCRIBE, REQ_UNSUBSCRIBE, REQ_DISCONNECT, REQ_FINAL_DISCONNECT };

/* One outstanding Paho request with a completion callback for the app. */
struct req {
	struct req *prev, *next;
	struct veil_async *a;
	enum req_kind kind;
	veil_done_cb done;
	void *ctx;
};

struct veil_async {
	struct veil__shim s;
	MQTTAsync ma;
	pthread_mutex_t rlock;           /* everything below */
	pthread_cond_t rcond;
	struct req *reqs;                /* pending, freed on destroy if Paho never answered */
	veil_done_cb on_connected;       /* every successful (re)connect */
	void *connected_ctx;
	veil_done_cb connect_done;       /* the app's connect request, answered once */
	void *connect_ctx;
	bool connecting;
	bool ever_connected;
	bool app_disconnected;           /* the app asked to disconnect: do not reconnect */
	bool want_reconnect;
	bool stopping;
	bool closing;                    /* veil_async_free started: callbacks do nothing */
	bool final_disconnected;         /* veil_async_free's own DISCONNECT completed */
	unsigned in_callbacks;           /* Paho callbacks running in our code */
	unsigned backoff_ms;
	/* A successful connect whose completion waits for the key service's
	 * keys (the worker's wait; a lost connection takes it over). */
	bool defer;
	veil_done_cb defer_done;
	void *defer_ctx;
	uint64_t defer_until_ms;         /* monotonic */
	uint64_t defer_gen;              /* which deferral the worker waits for */
	bool ready_cancel;               /* atomic: ends the worker's wait for keys now */
	pthread_t thread;                /* the worker: reconnects, waits for keys */
	bool thread_started;
};

static inline bool veil__async_v5(const struct veil_async *a)
{
	return a->s.mqtt_version == VEIL_MQTT_5;
}

/* Paho may still be inside one of our callbacks when the app frees the
 * client: callbacks register here (false: closing, do nothing), and
 * veil_async_free waits them out. */
bool veil__async_cb_enter(struct veil_async *a);
void veil__async_cb_leave(struct veil_async *a);

/* A pending request of the app (NULL: out of memory), linked in a->reqs
 * until Paho completes it and done runs (or veil_async_free frees it). */
struct req *veil__async_req_new(struct veil_async *a, enum req_kind kind, veil_done_cb done, void *ctx);
/* Point a Paho request's completions at r (r NULL: no completion wanted). */
void veil__async_req_response(struct veil_async *a, MQTTAsync_responseOptions *ro, struct req *r);
void veil__async_req_disconnect(struct veil_async *a, MQTTAsync_disconnectOptions *o, struct req *r);
/* A Paho call refused the request synchronously: no callback will come;
 * frees r and returns Paho's code translated. */
int veil__async_req_abort(struct veil_async *a, struct req *r, int prc);

#endif
