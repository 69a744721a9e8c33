/*
 * libveil_preload.so: the interposed MQTTAsync (asynchronous Paho) entry
 * points: create/destroy, callbacks, connect (Veil login, sealed will, fresh
 * token on every automatic reconnect), send/sendMessage. Shared state and
 * helpers: preload.c.
 *
 * With the key service, the app hears of a successful connect (its
 * onSuccess/onSuccess5, then its setConnected callback) once the keys are
 * here, bounded by its connectTimeout. Keys arrive on Paho's callback
 * thread, so that thread never waits: one thread of the preload's waits and
 * calls the app's callbacks with copies of Paho's success data (the
 * CONNACK's properties included). A lost connection reports the connect
 * first, then the loss; MQTTAsync_destroy drops what still waits (and waits
 * for a call already running on another thread). The preload also receives
 * for apps that set no messageArrived callback (their messages are dropped,
 * as Paho would leave them queued forever), so that bundles reach them.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <MQTTAsync.h>
#include <sodium.h>

#include "preload.h"

#define VPL_API __attribute__((visibility("default")))

#define REAL(fn)                                                                              \
	static __typeof__(fn) *real_##fn;                                                     \
	__typeof__(fn) *fn##_p = __atomic_load_n(&real_##fn, __ATOMIC_ACQUIRE);               \
	if (!fn##_p) {                                                                        \
		fn##_p = (__typeof__(fn) *)vpl_real(#fn);                                     \
		__atomic_store_n(&real_##fn, fn##_p, __ATOMIC_RELEASE);                       \
	}

/* ---- reconnect: a token is single-use, so every attempt needs a new one ---- */

static int update_wrap(void *ctx, MQTTAsync_connectData *data)
{
	struct vpl_handle *h = ctx;
	REAL(MQTTAsync_malloc);
	REAL(MQTTAsync_free);
	const char *orig_user = data->username;
	const void *orig_pw = data->binarypwd.data;
	int app_rc = 0;
	if (h->app_update)
		VPL_APP_CALL(app_rc = ((MQTTAsync_updateConnectOptions *)h->app_update)(h->app_update_ctx, data));
	char pw[VEIL_PASSWORD_MAX];
	int vrc;
	if (!vpl_login(h->client_id, pw, sizeof(pw), &vrc))
		return app_rc;
	if (vrc != VEIL_OK || !MQTTAsync_malloc_p || !MQTTAsync_free_p || !h->client_id)
		return app_rc; /* the stale token will be refused; logged by vpl_login */
	size_t pwlen = strlen(pw);
	size_t idlen = strlen(h->client_id);
	char *npw = MQTTAsync_malloc_p(pwlen + 1U);
	char *nuser = NULL;
	if (npw && (!orig_user || strcmp(orig_user, h->client_id) != 0))
		nuser = MQTTAsync_malloc_p(idlen + 1U);
	if (!npw) {
		sodium_memzero(pw, sizeof(pw));
		return app_rc;
	}
	memcpy(npw, pw, pwlen + 1U);
	sodium_memzero(pw, sizeof(pw));
	/* Whatever the app allocated is superseded: Paho frees only what it is handed back. */
	if (data->binarypwd.data != orig_pw && data->binarypwd.data)
		MQTTAsync_free_p((void *)data->binarypwd.data);
	data->binarypwd.data = npw;
	data->binarypwd.len = (int)pwlen;
	if (data->username != orig_user && data->username)
		MQTTAsync_free_p((void *)data->username);
	data->username = orig_user;
	if (nuser) {
		memcpy(nuser, h->client_id, idlen + 1U);
		data->username = nuser;
	}
	return 1;
}

/* ---- create / destroy ---- */

/* The flavour's Paho calls and callbacks, defined below with the callbacks. */
static void free_message(void *msg, char *topic);
static int app_deliver(struct vpl_handle *h, char *topic, int topic_len, void *m);
static int raw_publish(struct vpl_handle *h, const char *topic, const uint8_t *payload, size_t len);
static int subscribe_service(struct vpl_handle *h, char *const *topics, int n);
static void connected_wrap(void *ctx, char *cause);
static void cl_wrap(void *ctx, char *cause);
static int ma_wrap(void *ctx, char *topicName, int topicLen, MQTTAsync_message *m);
static void defer_drop(void *handle);

VPL_API int MQTTAsync_createWithOptions(MQTTAsync *handle, const char *serverURI, const char *clientId,
                                        int persistence_type, void *persistence_context,
                                        MQTTAsync_createOptions *options)
{
	REAL(MQTTAsync_createWithOptions);
	if (!MQTTAsync_createWithOptions_p)
		return MQTTASYNC_FAILURE;
	if (vpl_depth)
		return MQTTAsync_createWithOptions_p(handle, serverURI, clientId, persistence_type,
		                                     persistence_context, options);
	if (!vpl_ready())
		return MQTTASYNC_FAILURE;
	const char *id = vpl_client_id(clientId);
	vpl_depth++;
	int rc = MQTTAsync_createWithOptions_p(handle, serverURI, id, persistence_type, persistence_context,
	                                       options);
	vpl_depth--;
	if (rc != MQTTASYNC_SUCCESS || !handle || !*handle)
		return rc;
	REAL(MQTTAsync_destroy);
	struct vpl_handle *h = vpl_handle_new(*handle, true, id);
	if (!h) { /* vpl_handle_new said why */
		if (MQTTAsync_destroy_p)
			MQTTAsync_destroy_p(handle);
		return MQTTASYNC_FAILURE;
	}
	h->mqtt5 = options && options->MQTTVersion >= MQTTVERSION_5;
	h->app_deliver = app_deliver;
	h->free_message = free_message;
	h->raw_publish = raw_publish;
	h->subscribe_service = subscribe_service;
	REAL(MQTTAsync_setConnected);
	if (MQTTAsync_setConnected_p) {
		vpl_depth++;
		(void)MQTTAsync_setConnected_p(*handle, h, connected_wrap);
		vpl_depth--;
	}
	REAL(MQTTAsync_setCallbacks);
	if (veil__session_key_service(vpl_session()) && MQTTAsync_setCallbacks_p) {
		/* Bundles must arrive whether or not the app ever sets callbacks. */
		vpl_depth++;
		(void)MQTTAsync_setCallbacks_p(*handle, h, cl_wrap, ma_wrap, NULL);
		vpl_depth--;
	}
	char probe[VEIL_PASSWORD_MAX];
	int vrc;
	bool credential = vpl_login(id, probe, sizeof(probe), &vrc);
	sodium_memzero(probe, sizeof(probe));
	if (credential) {
		REAL(MQTTAsync_setUpdateConnectOptions);
		int urc = MQTTASYNC_FAILURE;
		if (MQTTAsync_setUpdateConnectOptions_p) {
			vpl_depth++;
			urc = MQTTAsync_setUpdateConnectOptions_p(*handle, h, update_wrap);
			vpl_depth--;
		}
		if (urc != MQTTASYNC_SUCCESS)
			vpl_loud("cannot hook reconnects: automatic reconnects will reuse a spent token");
	}
	return rc;
}

VPL_API int MQTTAsync_create(MQTTAsync *handle, const char *serverURI, const char *clientId, int persistence_type,
                             void *persistence_context)
{
	if (vpl_depth) {
		REAL(MQTTAsync_create);
		return MQTTAsync_create_p ? MQTTAsync_create_p(handle, serverURI, clientId, persistence_type,
		                                               persistence_context)
		                          : MQTTASYNC_FAILURE;
	}
	return MQTTAsync_createWithOptions(handle, serverURI, clientId, persistence_type, persistence_context,
	                                   NULL);
}

VPL_API void MQTTAsync_destroy(MQTTAsync *handle)
{
	REAL(MQTTAsync_destroy);
	void *h = handle ? *handle : NULL;
	if (h && !vpl_depth) {
		vpl_handle_forget(h);
		defer_drop(h); /* a connect success still waiting for keys is never reported */
	}
	if (MQTTAsync_destroy_p) {
		vpl_depth++;
		MQTTAsync_destroy_p(handle);
		vpl_depth--;
	}
	if (h && !vpl_depth)
		vpl_handle_free(h);
}

/* ---- the flavour's Paho calls for the shared code (preload.c) ---- */

static void free_message(void *msg, char *topic)
{
	REAL(MQTTAsync_freeMessage);
	REAL(MQTTAsync_free);
	MQTTAsync_message *m = msg;
	if (MQTTAsync_freeMessage_p && m)
		MQTTAsync_freeMessage_p(&m);
	if (MQTTAsync_free_p && topic)
		MQTTAsync_free_p(topic);
}

static int app_deliver(struct vpl_handle *h, char *topic, int topic_len, void *m)
{
	MQTTAsync_messageArrived *app = (MQTTAsync_messageArrived *)h->app_ma;
	int rc = 1;
	if (app)
		VPL_APP_CALL(rc = app(h->app_ma_ctx, topic, topic_len, m));
	else
		free_message(m, topic);
	if (!rc)
		vpl_log("the app asked for a held message on '%s' again: it was delivered once", topic);
	return rc;
}

static int raw_publish(struct vpl_handle *h, const char *topic, const uint8_t *payload, size_t len)
{
	REAL(MQTTAsync_sendMessage);
	if (!MQTTAsync_sendMessage_p)
		return VEIL_ERR_MQTT;
	MQTTAsync_message m = MQTTAsync_message_initializer;
	m.payload = (void *)payload;
	m.payloadlen = (int)len;
	m.qos = 1;
	MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
	const void *outer = vpl_inflight;
	vpl_inflight = payload;
	vpl_depth++;
	int rc = MQTTAsync_sendMessage_p(h->handle, topic, &m, &ro);
	vpl_depth--;
	vpl_inflight = outer;
	return rc == MQTTASYNC_SUCCESS ? VEIL_OK : VEIL_ERR_MQTT;
}

static int subscribe_service(struct vpl_handle *h, char *const *topics, int n)
{
	REAL(MQTTAsync_subscribeMany);
	if (!MQTTAsync_subscribeMany_p)
		return VEIL_ERR_MQTT;
	int qos[2] = { 1, 1 };
	MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
	vpl_depth++;
	int rc = MQTTAsync_subscribeMany_p(h->handle, n, topics, qos, &ro);
	vpl_depth--;
	return rc == MQTTASYNC_SUCCESS ? VEIL_OK : VEIL_ERR_MQTT;
}

/* ---- connect success, once the key service's keys are here ---- */

/* What the app hears of one successful connect, copied: it may be called
 * later from the preload's thread, when Paho's data is gone. */
struct defer {
	struct defer *next;
	void *handle;                    /* MQTTAsync */
	uint64_t until_ms;               /* monotonic */
	unsigned waited_ms;
	MQTTAsync_onSuccess *ok;
	MQTTAsync_onSuccess5 *ok5;
	void *ok_ctx;
	MQTTAsync_successData d;
	MQTTAsync_successData5 d5;       /* properties copied */
	char *uri;                       /* d/d5.alt.connect.serverURI */
	MQTTAsync_connected *connected;
	void *connected_ctx;
	char cause[64];
};

static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;             /* work for the waiter; a call ended */
	struct defer *list;
	bool started;
	bool cancel;                     /* atomic: the waiter plans its wait again */
	void *firing;                    /* the handle whose callbacks run now */
	pthread_t firing_thread;
} D = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, false, false, NULL, 0 };

static void defer_free(struct defer *d)
{
	if (!d)
		return;
	REAL(MQTTProperties_free);
	if (d->ok5 && MQTTProperties_free_p)
		MQTTProperties_free_p(&d->d5.properties);
	free(d->uri);
	free(d);
}

static void defer_fire(struct defer *d)
{
	if (d->ok)
		VPL_APP_CALL(d->ok(d->ok_ctx, &d->d));
	else if (d->ok5)
		VPL_APP_CALL(d->ok5(d->ok_ctx, &d->d5));
	if (d->connected)
		VPL_APP_CALL(d->connected(d->connected_ctx, d->cause));
}

/* Caller holds D.lock. Unlink the first deferral of handle (any: NULL)
 * that is due (ready, or past its time), or of handle whatever its time. */
static struct defer *defer_unlink(void *handle, bool ready, uint64_t now)
{
	for (struct defer **pp = &D.list; *pp; pp = &(*pp)->next) {
		struct defer *d = *pp;
		if (handle ? d->handle == handle : (ready || d->until_ms <= now)) {
			*pp = d->next;
			d->next = NULL;
			return d;
		}
	}
	return NULL;
}

/* Caller holds D.lock: run d's callbacks without it; MQTTAsync_destroy of
 * d's handle on another thread waits for them. */
static void defer_run(struct defer *d, bool warn)
{
	D.firing = d->handle;
	D.firing_thread = pthread_self();
	pthread_mutex_unlock(&D.lock);
	if (warn)
		veil__session_not_ready(vpl_session(), d->waited_ms);
	defer_fire(d);
	defer_free(d);
	pthread_mutex_lock(&D.lock);
	D.firing = NULL;
	pthread_cond_broadcast(&D.cond);
}

static void *waiter_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&D.lock);
	for (;;) {
		while (!D.list)
			pthread_cond_wait(&D.cond, &D.lock);
		uint64_t now = veil__mono_ms(), until = UINT64_MAX;
		for (struct defer *d = D.list; d; d = d->next)
			until = d->until_ms < until ? d->until_ms : until;
		__atomic_store_n(&D.cancel, false, __ATOMIC_RELEASE);
		pthread_mutex_unlock(&D.lock);
		unsigned left = until > now ? (unsigned)(until - now < UINT32_MAX ? until - now : UINT32_MAX) : 0U;
		bool ready = veil__session_wait_ready(vpl_session(), left, &D.cancel, false);
		pthread_mutex_lock(&D.lock);
		now = veil__mono_ms();
		struct defer *d;
		while ((d = defer_unlink(NULL, ready, now)))
			defer_run(d, !ready);
	}
	return NULL;
}

/* Hand d to the waiter; false when it cannot run (the caller fires now). */
static bool defer_add(struct defer *d)
{
	pthread_mutex_lock(&D.lock);
	if (!D.started) {
		pthread_t t;
		pthread_attr_t at;
		pthread_attr_init(&at);
		pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
		D.started = pthread_create(&t, &at, waiter_main, NULL) == 0;
		pthread_attr_destroy(&at);
	}
	bool ok = D.started;
	if (ok) {
		struct defer **pp = &D.list;
		while (*pp)
			pp = &(*pp)->next;
		*pp = d;
		__atomic_store_n(&D.cancel, true, __ATOMIC_RELEASE);
		pthread_cond_broadcast(&D.cond);
	}
	pthread_mutex_unlock(&D.lock);
	if (ok)
		veil__session_wake(vpl_session());
	return ok;
}

/* MQTTAsync_destroy: what still waits is dropped; a call running on
 * another thread ends first (on this one, the app destroys from it). */
static void defer_drop(void *handle)
{
	pthread_mutex_lock(&D.lock);
	struct defer *d;
	while ((d = defer_unlink(handle, false, 0)))
		defer_free(d);
	while (D.firing == handle && !pthread_equal(D.firing_thread, pthread_self()))
		pthread_cond_wait(&D.cond, &D.lock);
	pthread_mutex_unlock(&D.lock);
	struct vpl_handle *h = vpl_handle_find(handle);
	if (h) {
		defer_free(h->conn_ok_data);
		h->conn_ok_data = NULL;
	}
}

/* The connection is lost: a connect still waiting is reported first. */
static void defer_lost(void *handle)
{
	pthread_mutex_lock(&D.lock);
	struct defer *d = defer_unlink(handle, false, 0);
	if (d)
		defer_run(d, false);
	pthread_mutex_unlock(&D.lock);
}

static struct defer *defer_new(struct vpl_handle *h)
{
	struct defer *d = calloc(1, sizeof(*d));
	if (d)
		d->handle = h->handle;
	return d;
}

/* The app's connect callbacks, through ours (Paho's thread). */
static void conn_ok(void *ctx, MQTTAsync_successData *data)
{
	struct vpl_handle *h = ctx;
	struct defer *d = defer_new(h);
	if (!d || !data || (data->alt.connect.serverURI && !(d->uri = strdup(data->alt.connect.serverURI)))) {
		free(d);
		VPL_APP_CALL(((MQTTAsync_onSuccess *)h->app_conn_ok)(h->app_conn_ctx, data));
		return;
	}
	d->ok = (MQTTAsync_onSuccess *)h->app_conn_ok;
	d->ok_ctx = h->app_conn_ctx;
	d->d = *data;
	d->d.alt.connect.serverURI = d->uri;
	defer_free(h->conn_ok_data);
	h->conn_ok_data = d; /* connected_wrap comes next, on this thread */
}

static void conn_ok5(void *ctx, MQTTAsync_successData5 *data)
{
	struct vpl_handle *h = ctx;
	REAL(MQTTProperties_copy);
	struct defer *d = defer_new(h);
	if (!d || !data || !MQTTProperties_copy_p ||
	    (data->alt.connect.serverURI && !(d->uri = strdup(data->alt.connect.serverURI)))) {
		free(d);
		VPL_APP_CALL(((MQTTAsync_onSuccess5 *)h->app_conn_ok5)(h->app_conn_ctx, data));
		return;
	}
	d->ok5 = (MQTTAsync_onSuccess5 *)h->app_conn_ok5;
	d->ok_ctx = h->app_conn_ctx;
	d->d5 = *data;
	d->d5.alt.connect.serverURI = d->uri;
	d->d5.properties = MQTTProperties_copy_p(&data->properties);
	defer_free(h->conn_ok_data);
	h->conn_ok_data = d;
}

static void conn_fail(void *ctx, MQTTAsync_failureData *data)
{
	struct vpl_handle *h = ctx;
	VPL_APP_CALL(((MQTTAsync_onFailure *)h->app_conn_fail)(h->app_conn_ctx, data));
}

static void conn_fail5(void *ctx, MQTTAsync_failureData5 *data)
{
	struct vpl_handle *h = ctx;
	VPL_APP_CALL(((MQTTAsync_onFailure5 *)h->app_conn_fail5)(h->app_conn_ctx, data));
}

/* Every (re)connect, after Paho's onSuccess: the key service first, then
 * the app's success and connected callbacks, once the keys are here. */
static void connected_wrap(void *ctx, char *cause)
{
	struct vpl_handle *h = ctx;
	struct defer *d = h->conn_ok_data;
	h->conn_ok_data = NULL;
	if (!d)
		d = defer_new(h);
	if (d) {
		d->connected = (MQTTAsync_connected *)h->app_connected;
		d->connected_ctx = h->app_connected_ctx;
		snprintf(d->cause, sizeof(d->cause), "%s", cause ? cause : "");
		d->waited_ms = h->ready_ms ? h->ready_ms : 30000U;
		d->until_ms = veil__mono_ms() + d->waited_ms;
	}
	bool service = vpl_connected(h);
	if (d && service && (d->ok || d->ok5 || d->connected) && !veil__session_ready(vpl_session()) && defer_add(d))
		return;
	if (d) {
		defer_fire(d);
		defer_free(d);
	} else if (h->app_connected) { /* out of memory: not deferred */
		VPL_APP_CALL(((MQTTAsync_connected *)h->app_connected)(h->app_connected_ctx, cause));
	}
}

/* ---- callbacks ---- */

static int ma_wrap(void *ctx, char *topicName, int topicLen, MQTTAsync_message *m)
{
	struct vpl_handle *h = ctx;
	MQTTAsync_messageArrived *app = (MQTTAsync_messageArrived *)h->app_ma;
	if (m && m != h->opened_pending &&
	    vpl_arrived(h, topicName, topicLen, m, m->payload, &m->payloadlen) == VPL_TAKEN)
		return 1; /* the key service's, dropped or held: never reaches the app now */
	if (!app) {
		/* Ours is set for the key service; Paho would keep it queued forever. */
		vpl_log("message on '%s' dropped: the application set no messageArrived callback", topicName);
		free_message(m, topicName);
		return 1;
	}
	int rc = 0;
	VPL_APP_CALL(rc = app(h->app_ma_ctx, topicName, topicLen, m));
	h->opened_pending = rc ? NULL : m;
	return rc;
}

static void cl_wrap(void *ctx, char *cause)
{
	struct vpl_handle *h = ctx;
	defer_lost(h->handle);
	vpl_disconnected(h);
	if (h->app_cl)
		VPL_APP_CALL(((MQTTAsync_connectionLost *)h->app_cl)(h->app_ctx, cause));
}

static void dc_wrap(void *ctx, MQTTAsync_token token)
{
	struct vpl_handle *h = ctx;
	if (h->app_dc)
		VPL_APP_CALL(((MQTTAsync_deliveryComplete *)h->app_dc)(h->app_ctx, token));
}

VPL_API int MQTTAsync_setCallbacks(MQTTAsync handle, void *context, MQTTAsync_connectionLost *cl,
                                   MQTTAsync_messageArrived *ma, MQTTAsync_deliveryComplete *dc)
{
	REAL(MQTTAsync_setCallbacks);
	if (!MQTTAsync_setCallbacks_p)
		return MQTTASYNC_FAILURE;
	if (vpl_depth)
		return MQTTAsync_setCallbacks_p(handle, context, cl, ma, dc);
	if (!vpl_ready())
		return MQTTASYNC_FAILURE;
	struct vpl_handle *h = vpl_handle_find(handle);
	if (!ma) /* Paho's own argument error: let Paho answer */
		return MQTTAsync_setCallbacks_p(handle, context, cl, ma, dc);
	if (!h) {
		/* Not created through us: its messages would reach the app unopened. */
		vpl_loud("setCallbacks on an unknown client refused");
		return MQTTASYNC_FAILURE;
	}
	h->app_ma = (void *)ma;
	h->app_ma_ctx = context;
	h->app_cl = (void *)cl;
	h->app_dc = (void *)dc;
	h->app_ctx = context;
	/* With the key service ours stays: a lost connection ends a wait for keys. */
	bool keep_cl = cl || veil__session_key_service(vpl_session());
	vpl_depth++;
	int rc = MQTTAsync_setCallbacks_p(handle, h, keep_cl ? cl_wrap : NULL, ma_wrap, dc ? dc_wrap : NULL);
	vpl_depth--;
	return rc;
}

VPL_API int MQTTAsync_setMessageArrivedCallback(MQTTAsync handle, void *context, MQTTAsync_messageArrived *ma)
{
	REAL(MQTTAsync_setMessageArrivedCallback);
	if (!MQTTAsync_setMessageArrivedCallback_p)
		return MQTTASYNC_FAILURE;
	if (vpl_depth)
		return MQTTAsync_setMessageArrivedCallback_p(handle, context, ma);
	if (!vpl_ready())
		return MQTTASYNC_FAILURE;
	struct vpl_handle *h = vpl_handle_find(handle);
	if (!ma)
		return MQTTAsync_setMessageArrivedCallback_p(handle, context, ma);
	if (!h) {
		vpl_loud("setMessageArrivedCallback on an unknown client refused");
		return MQTTASYNC_FAILURE;
	}
	h->app_ma = (void *)ma;
	h->app_ma_ctx = context;
	vpl_depth++;
	int rc = MQTTAsync_setMessageArrivedCallback_p(handle, h, ma_wrap);
	vpl_depth--;
	return rc;
}

VPL_API int MQTTAsync_setConnected(MQTTAsync handle, void *context, MQTTAsync_connected *co)
{
	REAL(MQTTAsync_setConnected);
	if (!MQTTAsync_setConnected_p)
		return MQTTASYNC_FAILURE;
	if (vpl_depth)
		return MQTTAsync_setConnected_p(handle, context, co);
	if (!vpl_ready())
		return MQTTASYNC_FAILURE;
	struct vpl_handle *h = vpl_handle_find(handle);
	if (!h)
		return MQTTAsync_setConnected_p(handle, context, co);
	/* Ours stays registered and calls the app's after its own work. */
	h->app_connected = (void *)co;
	h->app_connected_ctx = context;
	return MQTTASYNC_SUCCESS;
}

VPL_API int MQTTAsync_setUpdateConnectOptions(MQTTAsync handle, void *context, MQTTAsync_updateConnectOptions *co)
{
	REAL(MQTTAsync_setUpdateConnectOptions);
	if (!MQTTAsync_setUpdateConnectOptions_p)
		return MQTTASYNC_FAILURE;
	if (vpl_depth)
		return MQTTAsync_setUpdateConnectOptions_p(handle, context, co);
	if (!vpl_ready())
		return MQTTASYNC_FAILURE;
	struct vpl_handle *h = vpl_handle_find(handle);
	char probe[VEIL_PASSWORD_MAX];
	int vrc;
	bool credential = h && vpl_login(h->client_id, probe, sizeof(probe), &vrc);
	sodium_memzero(probe, sizeof(probe));
	if (!credential)
		return MQTTAsync_setUpdateConnectOptions_p(handle, context, co);
	/* Ours stays registered and calls the app's first. */
	h->app_update = (void *)co;
	h->app_update_ctx = context;
	return MQTTASYNC_SUCCESS;
}

/* ---- connect ---- */

/* Bytes of MQTTAsync_connectOptions that exist for a struct_version: the
 * app may have compiled against an older, shorter struct. */
static size_t connect_options_size(int v)
{
	if (v <= 1)
		return offsetof(MQTTAsync_connectOptions, serverURIcount);
	if (v == 2)
		return offsetof(MQTTAsync_connectOptions, MQTTVersion);
	if (v == 3)
		return offsetof(MQTTAsync_connectOptions, automaticReconnect);
	if (v == 4)
		return offsetof(MQTTAsync_connectOptions, binarypwd);
	if (v == 5)
		return offsetof(MQTTAsync_connectOptions, cleanstart);
	if (v == 6)
		return offsetof(MQTTAsync_connectOptions, httpHeaders);
	if (v == 7)
		return offsetof(MQTTAsync_connectOptions, httpProxy);
	return sizeof(MQTTAsync_connectOptions);
}

VPL_API int MQTTAsync_connect(MQTTAsync handle, const MQTTAsync_connectOptions *options)
{
	REAL(MQTTAsync_connect);
	if (!MQTTAsync_connect_p)
		return MQTTASYNC_FAILURE;
	if (vpl_depth)
		return MQTTAsync_connect_p(handle, options);
	if (!vpl_ready())
		return MQTTASYNC_FAILURE;
	if (!options || options->struct_version < 0 || options->struct_version > 8)
		return MQTTAsync_connect_p(handle, options); /* Paho reports the bad structure */
	struct vpl_handle *h = vpl_handle_find(handle);
	/* Paho copies username, password and will during the call, so stack
	 * copies suffice; the app's (const) options are never written. */
	MQTTAsync_connectOptions o;
	memset(&o, 0, sizeof(o));
	memcpy(&o, options, connect_options_size(options->struct_version));
	MQTTAsync_willOptions will;
	uint8_t *sealed_will = NULL;
	size_t sealed_will_len = 0;
	char pw[VEIL_PASSWORD_MAX];
	int rc = MQTTASYNC_SUCCESS;
	if (o.will) {
		const MQTTAsync_willOptions *w = o.will;
		const void *data = w->message;
		size_t len = w->message ? strlen(w->message) : 0;
		if (w->struct_version >= 1 && !w->message && w->payload.data) {
			data = w->payload.data;
			len = (size_t)(w->payload.len > 0 ? w->payload.len : 0);
		}
		if (vpl_seal_will(w->topicName, data, len, w->retained != 0, &sealed_will, &sealed_will_len) != VEIL_OK) {
			vpl_loud("connect refused: the will message cannot be sealed");
			return MQTTASYNC_FAILURE;
		}
		memset(&will, 0, sizeof(will));
		memcpy(&will, w, w->struct_version >= 1 ? sizeof(will) : offsetof(MQTTAsync_willOptions, payload));
		will.struct_version = 1;
		will.message = NULL;
		will.payload.data = sealed_will;
		will.payload.len = (int)sealed_will_len;
		o.will = &will;
	}
	int vrc;
	if (vpl_login(h ? h->client_id : NULL, pw, sizeof(pw), &vrc)) {
		if (vrc != VEIL_OK || !h)
			rc = MQTTASYNC_FAILURE;
		o.username = h ? h->client_id : NULL;
		o.password = pw;
	}
	if (h) {
		/* The app's connect callbacks run through ours (success waits for
		 * the key service's keys); Paho checks which ones are set. */
		h->ready_ms = (unsigned)(o.connectTimeout > 0 ? o.connectTimeout : 30) * 1000U;
		h->app_conn_ok = (void *)o.onSuccess;
		h->app_conn_fail = (void *)o.onFailure;
		h->app_conn_ok5 = o.struct_version >= 6 ? (void *)o.onSuccess5 : NULL;
		h->app_conn_fail5 = o.struct_version >= 6 ? (void *)o.onFailure5 : NULL;
		h->app_conn_ctx = o.context;
		o.onSuccess = o.onSuccess ? conn_ok : NULL;
		o.onFailure = o.onFailure ? conn_fail : NULL;
		if (o.struct_version >= 6) {
			o.onSuccess5 = o.onSuccess5 ? conn_ok5 : NULL;
			o.onFailure5 = o.onFailure5 ? conn_fail5 : NULL;
		}
		o.context = h;
	}
	if (rc == MQTTASYNC_SUCCESS) {
		vpl_depth++;
		rc = MQTTAsync_connect_p(handle, &o);
		vpl_depth--;
	}
	sodium_memzero(pw, sizeof(pw));
	vpl_sealed_free(sealed_will, sealed_will_len);
	return rc;
}

/* ---- publish ---- */

VPL_API int MQTTAsync_send(MQTTAsync handle, const char *destinationName, int payloadlen, const void *payload,
                           int qos, int retained, MQTTAsync_responseOptions *response)
{
	REAL(MQTTAsync_send);
	if (!MQTTAsync_send_p)
		return MQTTASYNC_FAILURE;
	if (vpl_depth && payload && payload == vpl_inflight)
		return MQTTAsync_send_p(handle, destinationName, payloadlen, payload, qos, retained, response);
	if (!vpl_ready() || payloadlen < 0)
		return MQTTASYNC_FAILURE;
	uint8_t *env = NULL;
	size_t env_len = 0;
	if (vpl_seal(destinationName, payload, (size_t)payloadlen, retained != 0, &env, &env_len) != VEIL_OK)
		return MQTTASYNC_FAILURE;
	/* MQTTAsync_send copies the payload into its command queue. */
	const void *outer = vpl_inflight;
	vpl_inflight = env;
	vpl_depth++;
	int rc = MQTTAsync_send_p(handle, destinationName, (int)env_len, env, qos, retained, response);
	vpl_depth--;
	vpl_inflight = outer;
	vpl_sealed_free(env, env_len);
	return rc;
}

VPL_API int MQTTAsync_sendMessage(MQTTAsync handle, const char *destinationName, const MQTTAsync_message *msg,
                                  MQTTAsync_responseOptions *response)
{
	REAL(MQTTAsync_sendMessage);
	if (!MQTTAsync_sendMessage_p)
		return MQTTASYNC_FAILURE;
	if (vpl_depth && msg && msg->payload && msg->payload == vpl_inflight)
		return MQTTAsync_sendMessage_p(handle, destinationName, msg, response);
	if (!vpl_ready())
		return MQTTASYNC_FAILURE;
	if (!msg || msg->payloadlen < 0)
		return MQTTASYNC_NULL_PARAMETER;
	MQTTAsync_message init = MQTTAsync_message_initializer;
	MQTTAsync_message copy = init;
	memcpy(&copy, msg, msg->struct_version >= 1 ? sizeof(copy) : offsetof(MQTTAsync_message, properties));
	uint8_t *env = NULL;
	size_t env_len = 0;
	if (vpl_seal(destinationName, msg->payload, (size_t)msg->payloadlen, msg->retained != 0, &env, &env_len) != VEIL_OK)
		return MQTTASYNC_FAILURE;
	copy.payload = env;
	copy.payloadlen = (int)env_len;
	const void *outer = vpl_inflight;
	vpl_inflight = env;
	vpl_depth++;
	int rc = MQTTAsync_sendMessage_p(handle, destinationName, &copy, response);
	vpl_depth--;
	vpl_inflight = outer;
	vpl_sealed_free(env, env_len);
	return rc;
}
