/*
 * veil_async_*: the asynchronous flavour of libveil, a thin MQTTAsync wrapper.
 *
 * Paho runs every callback on its own thread, so everything shared goes
 * through the shim's lock (keyring, sequence, replay, stats) or this file's
 * rlock (pending requests, connection state). Paho's automaticReconnect is
 * not used: it would resend the CONNECT of the first login, whose token the
 * plugin has already consumed. A small worker thread of ours makes a fresh
 * token for every attempt instead.
 *
 * With the key service, "connected" means "ready to publish": the connect's
 * completion and on_connected wait until the key service's keys are here,
 * bounded by the connect timeout. Keys arrive on Paho's callback thread, so
 * that thread never waits: the worker does, and veil_async_free,
 * veil_async_disconnect and a lost connection end its wait at once.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "async_private.h"

#define BACKOFF_MIN_MS 250U
#define BACKOFF_MAX_MS 10000U

/* ---- connection ---- */

/* The app's side of a successful connect: its completion, then on_connected. */
static void connected_app(struct veil_async *a, veil_done_cb done, void *ctx)
{
	pthread_mutex_lock(&a->rlock);
	veil_done_cb on_connected = a->on_connected;
	void *connected_ctx = a->connected_ctx;
	pthread_mutex_unlock(&a->rlock);
	veil__in_callback++;
	if (done)
		done(ctx, VEIL_OK, 0);
	if (on_connected)
		on_connected(connected_ctx, VEIL_OK, 0);
	veil__in_callback--;
}

/* Caller holds rlock. Take the waiting connect completion away from the
 * worker (its wait ends at once); false when none waits. */
static bool defer_take(struct veil_async *a, veil_done_cb *done, void **ctx)
{
	if (!a->defer)
		return false;
	*done = a->defer_done;
	*ctx = a->defer_ctx;
	a->defer = false;
	a->defer_done = NULL;
	__atomic_store_n(&a->ready_cancel, true, __ATOMIC_RELEASE);
	return true;
}

static void connect_result(struct veil_async *a, int rc, int reason)
{
	if (!veil__async_cb_enter(a))
		return;
	pthread_mutex_lock(&a->rlock);
	a->connecting = false;
	veil_done_cb done = a->connect_done;
	void *ctx = a->connect_ctx;
	a->connect_done = NULL;
	if (rc == VEIL_OK) {
		a->ever_connected = true;
		a->backoff_ms = BACKOFF_MIN_MS;
	} else if (a->s.auto_reconnect && a->ever_connected && !a->app_disconnected && !a->stopping) {
		a->want_reconnect = true;
		pthread_cond_broadcast(&a->rcond);
	}
	pthread_mutex_unlock(&a->rlock);
	if (rc == VEIL_OK) {
		pthread_mutex_lock(&a->s.lock);
		a->s.stats.connects++;
		pthread_mutex_unlock(&a->s.lock);
		veil__log(&a->s, VEIL_LOG_INFO, "connected to %s as '%s'", a->s.server_uri, a->s.client_id);
		veil__shim_connected(&a->s);
		if (!veil__session_ready(a->s.ses) && a->thread_started) {
			/* Keys come on this very thread: the worker waits for them. */
			pthread_mutex_lock(&a->rlock);
			a->defer = true;
			a->defer_done = done;
			a->defer_ctx = ctx;
			a->defer_until_ms = veil__mono_ms() + (uint64_t)a->s.connect_timeout_s * 1000U;
			a->defer_gen++;
			__atomic_store_n(&a->ready_cancel, false, __ATOMIC_RELEASE);
			pthread_cond_broadcast(&a->rcond);
			pthread_mutex_unlock(&a->rlock);
			veil__async_cb_leave(a);
			return;
		}
		connected_app(a, done, ctx);
		veil__async_cb_leave(a);
		return;
	}
	veil__log(&a->s, VEIL_LOG_ERROR, "connect to %s as '%s' failed (%s)", a->s.server_uri, a->s.client_id,
	          veil_errname(rc));
	veil__in_callback++;
	if (done)
		done(ctx, rc, reason);
	veil__in_callback--;
	veil__async_cb_leave(a);
}

static void on_conn_ok(void *ctx, MQTTAsync_successData *resp)
{
	(void)resp;
	connect_result(ctx, VEIL_OK, 0);
}

static void on_conn_ok5(void *ctx, MQTTAsync_successData5 *resp)
{
	(void)resp;
	connect_result(ctx, VEIL_OK, 0);
}

/* Paho's words for a failed connect (refused, timed out, TLS), logged: the
 * error code alone does not tell which. */
static void conn_failure_log(struct veil_async *a, int code, const char *message)
{
	veil__log(&a->s, VEIL_LOG_ERROR, "connect to %s failed: %s (Paho code %d)", a->s.server_uri,
	          message && *message ? message : (code > 0 ? veil_mqtt_reason_text(code) : "no answer"), code);
}

static void on_conn_fail(void *ctx, MQTTAsync_failureData *resp)
{
	struct veil_async *a = ctx;
	int code = resp && resp->code ? resp->code : MQTTASYNC_FAILURE;
	conn_failure_log(a, code, resp ? resp->message : NULL);
	connect_result(a, veil__mqtt_err(&a->s, code), code > 0 ? code : 0);
}

static void on_conn_fail5(void *ctx, MQTTAsync_failureData5 *resp)
{
	struct veil_async *a = ctx;
	int code = MQTTASYNC_FAILURE, reason = 0;
	if (resp) {
		/* Paho 1.3.12 reports a refused CONNACK's reason in code. */
		if (resp->reasonCode >= 0x80)
			reason = (int)resp->reasonCode;
		else if (resp->code >= 0x80)
			reason = resp->code;
		code = reason ? reason : (resp->code ? resp->code : code);
	}
	conn_failure_log(a, code, resp ? resp->message : NULL);
	connect_result(a, veil__mqtt_err(&a->s, code), reason);
}

/* Start one CONNECT with a fresh token. Paho copies the options. */
static int start_connect(struct veil_async *a)
{
	struct veil__login l;
	int rc = veil__shim_login(&a->s, &l);
	if (rc != VEIL_OK)
		return rc;
	int prc;
	MQTTAsync_SSLOptions ssl;
	veil__shim_tls_async(&a->s, &ssl);
	MQTTAsync_willOptions will = MQTTAsync_willOptions_initializer;
	if (l.will) {
		will.topicName = a->s.will_topic;
		will.message = NULL;
		will.payload.data = l.will;
		will.payload.len = (int)l.will_len;
		will.qos = a->s.will_qos;
		will.retained = a->s.will_retained;
	}
	if (veil__async_v5(a)) {
		MQTTAsync_connectOptions o = MQTTAsync_connectOptions_initializer5;
		o.keepAliveInterval = a->s.keepalive_s;
		o.cleanstart = !a->s.persistent_session;
		o.connectTimeout = a->s.connect_timeout_s;
		o.username = l.username;
		o.password = l.password;
		o.ssl = a->s.tls ? &ssl : NULL;
		o.will = l.will ? &will : NULL;
		o.connectProperties = &l.props;
		o.onSuccess5 = on_conn_ok5;
		o.onFailure5 = on_conn_fail5;
		o.context = a;
		prc = MQTTAsync_connect(a->ma, &o);
	} else {
		MQTTAsync_connectOptions o = MQTTAsync_connectOptions_initializer;
		o.keepAliveInterval = a->s.keepalive_s;
		o.cleansession = !a->s.persistent_session;
		o.connectTimeout = a->s.connect_timeout_s;
		o.username = l.username;
		o.password = l.password;
		o.ssl = a->s.tls ? &ssl : NULL;
		o.will = l.will ? &will : NULL;
		o.onSuccess = on_conn_ok;
		o.onFailure = on_conn_fail;
		o.context = a;
		prc = MQTTAsync_connect(a->ma, &o);
	}
	veil__shim_login_wipe(&l);
	return veil__mqtt_err(&a->s, prc);
}

/* Worker, rlock held: wait (without rlock) for the keys a successful
 * connect needs, then hand the app its completion unless someone took it
 * meanwhile (a lost connection) or the client is being freed. */
static void keys_wait(struct veil_async *a)
{
	uint64_t gen = a->defer_gen, now = veil__mono_ms();
	unsigned left = a->defer_until_ms > now ? (unsigned)(a->defer_until_ms - now) : 0U;
	pthread_mutex_unlock(&a->rlock);
	bool ready = veil__session_wait_ready(a->s.ses, left, &a->ready_cancel, false);
	pthread_mutex_lock(&a->rlock);
	veil_done_cb done = NULL;
	void *ctx = NULL;
	bool cancelled = __atomic_load_n(&a->ready_cancel, __ATOMIC_ACQUIRE);
	if (a->stopping || a->defer_gen != gen || !defer_take(a, &done, &ctx))
		return;
	pthread_mutex_unlock(&a->rlock);
	if (!ready && !cancelled) /* the whole timeout, however late this thread ran */
		veil__session_not_ready(a->s.ses, (unsigned)a->s.connect_timeout_s * 1000U);
	if (veil__async_cb_enter(a)) {
		connected_app(a, done, ctx);
		veil__async_cb_leave(a);
	}
	pthread_mutex_lock(&a->rlock);
}

static void *worker_main(void *arg)
{
	struct veil_async *a = arg;
	pthread_mutex_lock(&a->rlock);
	for (;;) {
		while (!a->want_reconnect && !a->defer && !a->stopping)
			pthread_cond_wait(&a->rcond, &a->rlock);
		if (a->stopping)
			break;
		if (a->defer) {
			keys_wait(a);
			continue;
		}
		/* Back off first so a broker that drops us at once is not hammered. */
		struct timespec until = veil__mono_after(a->backoff_ms);
		while (!a->stopping && !a->defer && pthread_cond_timedwait(&a->rcond, &a->rlock, &until) != ETIMEDOUT)
			;
		if (a->stopping)
			break;
		if (a->defer)
			continue; /* the backoff resumes after it */
		a->backoff_ms = a->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : a->backoff_ms * 2;
		a->want_reconnect = false;
		if (a->app_disconnected || a->connecting)
			continue;
		a->connecting = true;
		pthread_mutex_unlock(&a->rlock);
		veil__log(&a->s, VEIL_LOG_INFO, "reconnecting to %s", a->s.server_uri);
		int rc = start_connect(a);
		pthread_mutex_lock(&a->rlock);
		if (rc != VEIL_OK) {
			a->connecting = false;
			a->want_reconnect = true;
		}
	}
	pthread_mutex_unlock(&a->rlock);
	return NULL;
}

static void on_lost(void *ctx, char *cause)
{
	struct veil_async *a = ctx;
	if (!veil__async_cb_enter(a))
		return;
	/* A connect still waiting for keys did succeed: the app hears of it
	 * before it hears of the loss. */
	veil_done_cb done = NULL;
	void *done_ctx = NULL;
	pthread_mutex_lock(&a->rlock);
	bool deferred = defer_take(a, &done, &done_ctx);
	pthread_mutex_unlock(&a->rlock);
	if (deferred) {
		veil__session_wake(a->s.ses);
		connected_app(a, done, done_ctx);
	}
	veil__log(&a->s, VEIL_LOG_WARNING, "connection lost: %s", cause ? cause : "unknown");
	veil__shim_disconnected(&a->s);
	pthread_mutex_lock(&a->rlock);
	if (a->s.auto_reconnect && !a->app_disconnected && !a->stopping) {
		a->want_reconnect = true;
		pthread_cond_broadcast(&a->rcond);
	}
	pthread_mutex_unlock(&a->rlock);
	pthread_mutex_lock(&a->s.lock);
	veil_connection_lost_cb cb = a->s.on_lost;
	void *cb_ctx = a->s.cb_ctx;
	pthread_mutex_unlock(&a->s.lock);
	veil__in_callback++;
	if (cb)
		cb(cb_ctx, cause);
	veil__in_callback--;
	veil__async_cb_leave(a);
}

/* MQTT 5: a DISCONNECT from the broker (a kick, a revocation, a session
 * taken over, the broker stopping) reaches only this callback: Paho closes
 * the connection and does not call connectionLost for it. */
static void on_disconnected(void *ctx, MQTTProperties *props, enum MQTTReasonCodes rc)
{
	(void)props;
	char cause[200];
	veil__disconnect_cause((int)rc, cause, sizeof(cause));
	on_lost(ctx, cause);
}

static int on_arrived(void *ctx, char *topic, int topic_len, MQTTAsync_message *m)
{
	struct veil_async *a = ctx;
	if (veil__async_cb_enter(a)) {
		veil__in_callback++;
		veil__shim_deliver(&a->s, topic, (size_t)topic_len, m->payload, (size_t)m->payloadlen, m->qos,
		                   m->retained != 0, m->dup != 0, veil__async_v5(a) ? &m->properties : NULL);
		veil__in_callback--;
		veil__async_cb_leave(a);
	}
	MQTTAsync_freeMessage(&m);
	MQTTAsync_free(topic);
	return 1;
}

/* ---- the key service's messages ---- */

static int raw_publish(struct veil__shim *s, const char *topic, const uint8_t *payload, size_t len)
{
	struct veil_async *a = (struct veil_async *)s; /* s is the first member */
	MQTTAsync_message m = MQTTAsync_message_initializer;
	m.payload = (void *)payload;
	m.payloadlen = (int)len;
	m.qos = 1;
	MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
	return veil__mqtt_err(s, MQTTAsync_sendMessage(a->ma, topic, &m, &ro));
}

static int subscribe_service(struct veil__shim *s, char *const *topics, int n)
{
	struct veil_async *a = (struct veil_async *)s;
	int qos[2] = { 1, 1 };
	MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
	return veil__mqtt_err(s, MQTTAsync_subscribeMany(a->ma, n, topics, qos, &ro));
}

/* ---- public API ---- */

int veil_async_new(const struct veil_client_options *o, struct veil_async **out)
{
	if (!out)
		return VEIL_ERR_INVAL;
	*out = NULL;
	veil__paho_anchor();
	struct veil_async *a = calloc(1, sizeof(*a));
	if (!a)
		return VEIL_ERR_NOMEM;
	int rc = veil__shim_init(&a->s, o);
	if (rc != VEIL_OK) {
		free(a);
		return rc;
	}
	a->s.raw_publish = raw_publish;
	a->s.subscribe_service = subscribe_service;
	pthread_mutex_init(&a->rlock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&a->rcond, &ca);
	pthread_condattr_destroy(&ca);
	a->backoff_ms = BACKOFF_MIN_MS;
	MQTTAsync_createOptions co = MQTTAsync_createOptions_initializer;
	co.MQTTVersion = veil__async_v5(a) ? MQTTVERSION_5 : MQTTVERSION_3_1_1;
	int prc = MQTTAsync_createWithOptions(&a->ma, a->s.server_uri, a->s.client_id, MQTTCLIENT_PERSISTENCE_NONE,
	                                      NULL, &co);
	if (prc == MQTTASYNC_SUCCESS)
		prc = MQTTAsync_setCallbacks(a->ma, a, on_lost, on_arrived, NULL);
	if (prc == MQTTASYNC_SUCCESS && veil__async_v5(a))
		prc = MQTTAsync_setDisconnected(a->ma, a, on_disconnected);
	if (prc == MQTTASYNC_SUCCESS && (a->s.auto_reconnect || veil__session_key_service(a->s.ses))) {
		if (pthread_create(&a->thread, NULL, worker_main, a) == 0)
			a->thread_started = true;
		else
			rc = VEIL_ERR_NOMEM;
	}
	if (prc != MQTTASYNC_SUCCESS || rc != VEIL_OK) {
		if (prc != MQTTASYNC_SUCCESS)
			rc = veil__mqtt_err(&a->s, prc);
		veil_async_free(&a);
		return rc;
	}
	*out = a;
	return VEIL_OK;
}

int veil_async_set_callbacks(struct veil_async *a, void *ctx, veil_message_cb on_message, veil_refusal_cb on_refusal,
                             veil_connection_lost_cb on_lost_cb)
{
	if (!a)
		return VEIL_ERR_INVAL;
	pthread_mutex_lock(&a->s.lock);
	a->s.cb_ctx = ctx;
	a->s.on_message = on_message;
	a->s.on_refusal = on_refusal;
	a->s.on_lost = on_lost_cb;
	pthread_mutex_unlock(&a->s.lock);
	return VEIL_OK;
}

int veil_async_connect(struct veil_async *a, veil_done_cb done, void *ctx)
{
	if (!a)
		return VEIL_ERR_INVAL;
	pthread_mutex_lock(&a->rlock);
	if (a->connecting) {
		pthread_mutex_unlock(&a->rlock);
		return VEIL_ERR_INVAL;
	}
	a->connecting = true;
	a->app_disconnected = false;
	a->connect_done = done;
	a->connect_ctx = ctx;
	pthread_mutex_unlock(&a->rlock);
	int rc = start_connect(a);
	if (rc != VEIL_OK) {
		pthread_mutex_lock(&a->rlock);
		a->connecting = false;
		a->connect_done = NULL;
		pthread_mutex_unlock(&a->rlock);
	}
	return rc;
}

int veil_async_set_connected(struct veil_async *a, veil_done_cb on_connected, void *ctx)
{
	if (!a)
		return VEIL_ERR_INVAL;
	pthread_mutex_lock(&a->rlock);
	a->on_connected = on_connected;
	a->connected_ctx = ctx;
	pthread_mutex_unlock(&a->rlock);
	return VEIL_OK;
}

bool veil_async_is_connected(struct veil_async *a)
{
	return a && MQTTAsync_isConnected(a->ma);
}

int veil_async_publish5(struct veil_async *a, const char *topic, const void *payload, size_t len, int qos,
                        bool retained, MQTTProperties *props, veil_done_cb done, void *ctx)
{
	if (!a || !topic || qos < 0 || qos > 2 || (!veil__async_v5(a) && props && props->count))
		return VEIL_ERR_INVAL;
	uint8_t stackbuf[VEIL__SEAL_STACK];
	uint8_t *env = NULL;
	size_t env_len = 0;
	int rc = veil__shim_seal(&a->s, topic, payload, len, retained, stackbuf, sizeof(stackbuf), &env,
	                         &env_len);
	if (rc != VEIL_OK)
		return rc;
	if (env_len > (size_t)INT32_MAX) {
		veil__shim_seal_release(env, env_len, stackbuf);
		return VEIL_ERR_TOO_LARGE;
	}
	MQTTAsync_message m = MQTTAsync_message_initializer;
	m.payload = env;
	m.payloadlen = (int)env_len;
	m.qos = qos;
	m.retained = retained;
	if (props)
		m.properties = *props;
	MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
	struct req *r = NULL;
	if (done && !(r = veil__async_req_new(a, REQ_PUBLISH, done, ctx))) {
		veil__shim_seal_release(env, env_len, stackbuf);
		return VEIL_ERR_NOMEM;
	}
	veil__async_req_response(a, &ro, r);
	int prc = MQTTAsync_sendMessage(a->ma, topic, &m, &ro);
	/* Paho copied the envelope into its command queue. */
	veil__shim_seal_release(env, env_len, stackbuf);
	return prc == MQTTASYNC_SUCCESS ? VEIL_OK : veil__async_req_abort(a, r, prc);
}

int veil_async_publish(struct veil_async *a, const char *topic, const void *payload, size_t len, int qos,
                       bool retained, veil_done_cb done, void *ctx)
{
	return veil_async_publish5(a, topic, payload, len, qos, retained, NULL, done, ctx);
}

int veil_async_subscribe5(struct veil_async *a, const char *filter, int qos, MQTTSubscribe_options *opts,
                          MQTTProperties *props, veil_done_cb done, void *ctx)
{
	if (!a || !filter || qos < 0 || qos > 2 || (!veil__async_v5(a) && (opts || (props && props->count))))
		return VEIL_ERR_INVAL;
	MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
	struct req *r = veil__async_req_new(a, REQ_SUBSCRIBE, done, ctx);
	if (!r)
		return VEIL_ERR_NOMEM;
	veil__async_req_response(a, &ro, r);
	if (opts)
		ro.subscribeOptions = *opts;
	if (props)
		ro.properties = *props;
	int prc = MQTTAsync_subscribe(a->ma, filter, qos, &ro);
	return prc == MQTTASYNC_SUCCESS ? VEIL_OK : veil__async_req_abort(a, r, prc);
}

int veil_async_subscribe(struct veil_async *a, const char *filter, int qos, veil_done_cb done, void *ctx)
{
	return veil_async_subscribe5(a, filter, qos, NULL, NULL, done, ctx);
}

int veil_async_unsubscribe(struct veil_async *a, const char *filter, veil_done_cb done, void *ctx)
{
	if (!a || !filter)
		return VEIL_ERR_INVAL;
	MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
	struct req *r = veil__async_req_new(a, REQ_UNSUBSCRIBE, done, ctx);
	if (!r)
		return VEIL_ERR_NOMEM;
	veil__async_req_response(a, &ro, r);
	int prc = MQTTAsync_unsubscribe(a->ma, filter, &ro);
	return prc == MQTTASYNC_SUCCESS ? VEIL_OK : veil__async_req_abort(a, r, prc);
}

int veil_async_reload(struct veil_async *a)
{
	return a ? veil__shim_reload(&a->s) : VEIL_ERR_INVAL;
}

int veil_async_disconnect(struct veil_async *a, int timeout_ms, veil_done_cb done, void *ctx)
{
	if (!a || timeout_ms < 0)
		return VEIL_ERR_INVAL;
	pthread_mutex_lock(&a->rlock);
	a->app_disconnected = true;
	a->want_reconnect = false;
	/* A connect still waiting for keys completes now (on the worker). */
	__atomic_store_n(&a->ready_cancel, true, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&a->rlock);
	veil__session_wake(a->s.ses);
	MQTTAsync_disconnectOptions o = MQTTAsync_disconnectOptions_initializer;
	o.timeout = timeout_ms;
	struct req *r = veil__async_req_new(a, REQ_DISCONNECT, done, ctx);
	if (!r)
		return VEIL_ERR_NOMEM;
	veil__async_req_disconnect(a, &o, r);
	int prc = MQTTAsync_disconnect(a->ma, &o);
	veil__shim_save_state(&a->s);
	return prc == MQTTASYNC_SUCCESS ? VEIL_OK : veil__async_req_abort(a, r, prc);
}

int veil_async_wait_keys(struct veil_async *a, unsigned long timeout_ms)
{
	return a ? veil__shim_wait_keys(&a->s, timeout_ms) : VEIL_ERR_INVAL;
}

void veil_async_stats(struct veil_async *a, struct veil_client_stats *out)
{
	if (!a || !out)
		return;
	veil__stats_copy(&a->s, out);
}

void veil_async_free(struct veil_async **ap)
{
	if (!ap || !*ap)
		return;
	struct veil_async *a = *ap;
	pthread_mutex_lock(&a->rlock);
	a->stopping = true;
	a->app_disconnected = true;
	/* The worker may be waiting for keys: end that wait now, not at its
	 * timeout (a waiting connect completion is dropped, as any request
	 * Paho has not answered). */
	__atomic_store_n(&a->ready_cancel, true, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&a->rcond);
	pthread_mutex_unlock(&a->rlock);
	veil__session_wake(a->s.ses);
	if (a->thread_started)
		pthread_join(a->thread, NULL);
	/* The keeper sends key service messages through a->ma: no more. */
	veil__shim_detach(&a->s);
	if (a->ma && MQTTAsync_isConnected(a->ma)) {
		/* Like Paho's samples: disconnect before destroy, so nothing is in
		 * flight; wait for its completion (success or failure), bounded by
		 * the disconnect's own timeout and a margin, on the monotonic clock. */
		struct req fin = { .a = a, .kind = REQ_FINAL_DISCONNECT };
		MQTTAsync_disconnectOptions o = MQTTAsync_disconnectOptions_initializer;
		o.timeout = 1000;
		veil__async_req_disconnect(a, &o, &fin);
		if (MQTTAsync_disconnect(a->ma, &o) == MQTTASYNC_SUCCESS) {
			struct timespec until = veil__mono_after(2000);
			pthread_mutex_lock(&a->rlock);
			while (!a->final_disconnected &&
			       pthread_cond_timedwait(&a->rcond, &a->rlock, &until) != ETIMEDOUT)
				;
			pthread_mutex_unlock(&a->rlock);
		}
	}
	pthread_mutex_lock(&a->rlock);
	a->closing = true;
	while (a->in_callbacks > 0)
		pthread_cond_wait(&a->rcond, &a->rlock);
	pthread_mutex_unlock(&a->rlock);
	/* After destroy Paho calls nothing of ours; requests it never answered are ours to free. */
	if (a->ma)
		MQTTAsync_destroy(&a->ma);
	while (a->reqs) {
		struct req *r = a->reqs;
		a->reqs = r->next;
		free(r);
	}
	pthread_cond_destroy(&a->rcond);
	pthread_mutex_destroy(&a->rlock);
	veil__shim_fini(&a->s);
	free(a);
	*ap = NULL;
}
