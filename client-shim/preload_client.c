/*
 * libveil_preload.so: the interposed MQTTClient (synchronous Paho) entry
 * points. Each seals what the app publishes, opens what it receives and
 * injects the Veil login at CONNECT, then calls the real function found with
 * dlsym(RTLD_NEXT). Shared state and helpers: preload.c.
 *
 * With the key service, MQTTClient_connect returns once the keys are here
 * (bounded by the app's connectTimeout). An app with callbacks gets them on
 * Paho's thread while connect waits. An app without callbacks (Paho's
 * synchronous mode) reads only when it calls receive, so the preload reads
 * for it: during connect until the keys are here, and before a publish (at
 * most once a second, without waiting) so a publish-only app applies the
 * bundles of rotations. What it reads for the app waits in the handle's
 * queue, which the interposed MQTTClient_receive returns first, in order.
 */
#define _GNU_SOURCE
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <MQTTClient.h>
#include <sodium.h>

#include "preload.h"

#define VPL_API __attribute__((visibility("default")))

/* Resolve the real symbol once; a racing first call stores the same value. */
#define REAL(fn)                                                                              \
	static __typeof__(fn) *real_##fn;                                                     \
	__typeof__(fn) *fn##_p = __atomic_load_n(&real_##fn, __ATOMIC_ACQUIRE);               \
	if (!fn##_p) {                                                                        \
		fn##_p = (__typeof__(fn) *)vpl_real(#fn);                                     \
		__atomic_store_n(&real_##fn, fn##_p, __ATOMIC_RELEASE);                       \
	}

static MQTTResponse response(int rc)
{
	MQTTResponse r = MQTTResponse_initializer;
	r.reasonCode = (enum MQTTReasonCodes)rc;
	return r;
}

static void set_flavour(struct vpl_handle *h, bool mqtt5);

/* ---- create / destroy: learn the handle, give Paho the right client id ---- */

VPL_API int MQTTClient_createWithOptions(MQTTClient *handle, const char *serverURI, const char *clientId,
                                         int persistence_type, void *persistence_context,
                                         MQTTClient_createOptions *options)
{
	REAL(MQTTClient_createWithOptions);
	if (!MQTTClient_createWithOptions_p)
		return MQTTCLIENT_FAILURE;
	if (vpl_depth)
		return MQTTClient_createWithOptions_p(handle, serverURI, clientId, persistence_type,
		                                      persistence_context, options);
	if (!vpl_ready())
		return MQTTCLIENT_FAILURE;
	const char *id = vpl_client_id(clientId);
	vpl_depth++;
	int rc = MQTTClient_createWithOptions_p(handle, serverURI, id, persistence_type, persistence_context,
	                                        options);
	vpl_depth--;
	struct vpl_handle *nh = NULL;
	if (rc == MQTTCLIENT_SUCCESS && handle && *handle && (nh = vpl_handle_new(*handle, false, id)))
		set_flavour(nh, options && options->MQTTVersion >= MQTTVERSION_5);
	if (rc == MQTTCLIENT_SUCCESS && handle && *handle && !nh) {
		/* vpl_handle_new said why */
		REAL(MQTTClient_destroy);
		if (MQTTClient_destroy_p)
			MQTTClient_destroy_p(handle);
		return MQTTCLIENT_FAILURE;
	}
	return rc;
}

VPL_API int MQTTClient_create(MQTTClient *handle, const char *serverURI, const char *clientId,
                              int persistence_type, void *persistence_context)
{
	if (vpl_depth) {
		REAL(MQTTClient_create);
		return MQTTClient_create_p ? MQTTClient_create_p(handle, serverURI, clientId, persistence_type,
		                                                 persistence_context)
		                           : MQTTCLIENT_FAILURE;
	}
	return MQTTClient_createWithOptions(handle, serverURI, clientId, persistence_type, persistence_context,
	                                    NULL);
}

VPL_API void MQTTClient_destroy(MQTTClient *handle)
{
	REAL(MQTTClient_destroy);
	void *h = handle ? *handle : NULL;
	if (h && !vpl_depth)
		vpl_handle_forget(h);
	if (MQTTClient_destroy_p) {
		vpl_depth++;
		MQTTClient_destroy_p(handle);
		vpl_depth--;
	}
	/* After the real destroy: no callback can reach the record any more. */
	if (h && !vpl_depth)
		vpl_handle_free(h);
}

/* ---- the flavour's Paho calls for the shared code (preload.c) ---- */

static void free_message(void *msg, char *topic)
{
	REAL(MQTTClient_freeMessage);
	REAL(MQTTClient_free);
	MQTTClient_message *m = msg;
	if (MQTTClient_freeMessage_p && m)
		MQTTClient_freeMessage_p(&m);
	if (MQTTClient_free_p && topic)
		MQTTClient_free_p(topic);
}

/* A held message whose key came: the app gets it (and frees it); an app
 * without callbacks, from its next MQTTClient_receive. */
static int app_deliver(struct vpl_handle *h, char *topic, int topic_len, void *m)
{
	MQTTClient_messageArrived *app = (MQTTClient_messageArrived *)h->app_ma;
	int rc = 1;
	if (app)
		VPL_APP_CALL(rc = app(h->app_ma_ctx, topic, topic_len, m));
	else if (h->polling)
		vpl_queue_push(h, topic, topic_len ? topic_len : (int)strlen(topic),
		               topic_len ? MQTTCLIENT_TOPICNAME_TRUNCATED : MQTTCLIENT_SUCCESS, m, true);
	else
		free_message(m, topic);
	if (!rc)
		vpl_log("the app asked for a held message on '%s' again: it was delivered once", topic);
	return rc;
}

/* Nonzero while the app's own thread is inside one of our calls on a
 * handle in Paho's synchronous mode: the one thread that may use it. */
static __thread int pumping;

static int raw_publish(struct vpl_handle *h, const char *topic, const uint8_t *payload, size_t len)
{
	if (h->polling && !pumping)
		return VEIL__SEND_LATER; /* the app's next call sends it (veil__session_flush) */
	REAL(MQTTClient_publishMessage);
	REAL(MQTTClient_publishMessage5);
	MQTTClient_message m = MQTTClient_message_initializer;
	m.payload = (void *)payload;
	m.payloadlen = (int)len;
	m.qos = 1;
	MQTTClient_deliveryToken dt = 0;
	int rc = MQTTCLIENT_FAILURE;
	/* Through the real call, marked as ours: never sealed again. */
	const void *outer = vpl_inflight;
	vpl_inflight = payload;
	vpl_depth++;
	if (h->mqtt5 && MQTTClient_publishMessage5_p) {
		MQTTResponse r = MQTTClient_publishMessage5_p(h->handle, topic, &m, &dt);
		rc = (int)r.reasonCode;
		REAL(MQTTResponse_free);
		if (MQTTResponse_free_p)
			MQTTResponse_free_p(r);
	} else if (!h->mqtt5 && MQTTClient_publishMessage_p) {
		rc = MQTTClient_publishMessage_p(h->handle, topic, &m, &dt);
	}
	vpl_depth--;
	vpl_inflight = outer;
	return rc == MQTTCLIENT_SUCCESS ? VEIL_OK : VEIL_ERR_MQTT;
}

static int subscribe_service(struct vpl_handle *h, char *const *topics, int n)
{
	REAL(MQTTClient_subscribeMany);
	REAL(MQTTClient_subscribeMany5);
	int qos[2] = { 1, 1 };
	int rc = MQTTCLIENT_FAILURE;
	vpl_depth++;
	if (h->mqtt5 && MQTTClient_subscribeMany5_p) {
		MQTTSubscribe_options so[2] = { MQTTSubscribe_options_initializer, MQTTSubscribe_options_initializer };
		MQTTResponse r = MQTTClient_subscribeMany5_p(h->handle, n, topics, qos, so, NULL);
		rc = r.reasonCode >= 0x80 ? (int)r.reasonCode : MQTTCLIENT_SUCCESS;
		REAL(MQTTResponse_free);
		if (MQTTResponse_free_p)
			MQTTResponse_free_p(r);
	} else if (!h->mqtt5 && MQTTClient_subscribeMany_p) {
		rc = MQTTClient_subscribeMany_p(h->handle, n, topics, qos);
	}
	vpl_depth--;
	return rc == MQTTCLIENT_SUCCESS ? VEIL_OK : VEIL_ERR_MQTT;
}

static void set_flavour(struct vpl_handle *h, bool mqtt5)
{
	h->mqtt5 = mqtt5;
	h->app_deliver = app_deliver;
	h->free_message = free_message;
	h->raw_publish = raw_publish;
	h->subscribe_service = subscribe_service;
}

/* ---- callbacks: wrappers get our record as context ---- */

static int ma_wrap(void *ctx, char *topicName, int topicLen, MQTTClient_message *m)
{
	struct vpl_handle *h = ctx;
	MQTTClient_messageArrived *app = (MQTTClient_messageArrived *)h->app_ma;
	vpl_in_cb++;
	if (m && m != h->opened_pending &&
	    vpl_arrived(h, topicName, topicLen, m, m->payload, &m->payloadlen) == VPL_TAKEN) {
		vpl_in_cb--;
		return 1; /* the key service's, dropped or held: never reaches the app now */
	}
	int rc = 0;
	VPL_APP_CALL(rc = app(h->app_ma_ctx, topicName, topicLen, m));
	vpl_in_cb--;
	/* 0 = app wants it again later; Paho redelivers this very object. */
	h->opened_pending = rc ? NULL : m;
	return rc;
}

static void cl_wrap(void *ctx, char *cause)
{
	struct vpl_handle *h = ctx;
	vpl_in_cb++;
	vpl_disconnected(h);
	if (h->app_cl)
		VPL_APP_CALL(((MQTTClient_connectionLost *)h->app_cl)(h->app_ctx, cause));
	vpl_in_cb--;
}

static void dc_wrap(void *ctx, MQTTClient_deliveryToken dt)
{
	struct vpl_handle *h = ctx;
	vpl_in_cb++;
	if (h->app_dc)
		VPL_APP_CALL(((MQTTClient_deliveryComplete *)h->app_dc)(h->app_ctx, dt));
	vpl_in_cb--;
}

VPL_API int MQTTClient_setCallbacks(MQTTClient handle, void *context, MQTTClient_connectionLost *cl,
                                    MQTTClient_messageArrived *ma, MQTTClient_deliveryComplete *dc)
{
	REAL(MQTTClient_setCallbacks);
	if (!MQTTClient_setCallbacks_p)
		return MQTTCLIENT_FAILURE;
	if (vpl_depth)
		return MQTTClient_setCallbacks_p(handle, context, cl, ma, dc);
	if (!vpl_ready())
		return MQTTCLIENT_FAILURE;
	struct vpl_handle *h = vpl_handle_find(handle);
	if (!ma) /* Paho's own argument error: let Paho answer */
		return MQTTClient_setCallbacks_p(handle, context, cl, ma, dc);
	if (!h) {
		/* Not created through us: its messages would reach the app unopened. */
		vpl_loud("setCallbacks on an unknown client refused");
		return MQTTCLIENT_FAILURE;
	}
	h->app_ma = (void *)ma;
	h->app_ma_ctx = context;
	h->app_cl = (void *)cl;
	h->app_dc = (void *)dc;
	h->app_ctx = context;
	vpl_depth++;
	int rc = MQTTClient_setCallbacks_p(handle, h, cl ? cl_wrap : NULL, ma_wrap, dc ? dc_wrap : NULL);
	vpl_depth--;
	return rc;
}

/* ---- receive, and reading for an app without callbacks ---- */

/* A message the app's receive may return: opened in place (true), or
 * consumed by the preload (the key service's, held, or dropped: false). */
static bool receivable(struct vpl_handle *h, char *topic, int topic_len, MQTTClient_message *m)
{
	return vpl_arrived(h, topic, topic_len, m, m->payload, &m->payloadlen) == VPL_DELIVER;
}

/* One real receive for the preload: the key service's messages are
 * applied, the app's wait in the queue, unopened. True when it read one. */
static bool read_one(struct vpl_handle *h, unsigned long timeout_ms)
{
	REAL(MQTTClient_receive);
	if (!MQTTClient_receive_p)
		return false;
	char *topic = NULL;
	int tl = 0;
	MQTTClient_message *m = NULL;
	vpl_depth++;
	int rc = MQTTClient_receive_p(h->handle, &topic, &tl, &m, timeout_ms);
	vpl_depth--;
	if (!m || !topic || (rc != MQTTCLIENT_SUCCESS && rc != MQTTCLIENT_TOPICNAME_TRUNCATED))
		return false;
	if (vpl_topic_len(topic, tl) == 0 && veil__session_service_topic(vpl_session(), topic))
		(void)vpl_arrived(h, topic, 0, m, m->payload, &m->payloadlen); /* applied and freed */
	else
		vpl_queue_push(h, topic, tl, rc, m, false);
	return true;
}

/* The key service's messages waiting for this thread go out. */
static void flush(struct vpl_handle *h)
{
	if (!h || !h->polling)
		return;
	pumping++;
	veil__session_flush(vpl_session());
	pumping--;
}

/* While connect waits for keys: read until they are here or until_ms. */
static void read_until_ready(struct vpl_handle *h, uint64_t until_ms)
{
	pthread_mutex_lock(&h->pump_lock);
	for (uint64_t now = veil__mono_ms(); !veil__session_ready(vpl_session()) && now < until_ms; now = veil__mono_ms()) {
		flush(h);
		(void)read_one(h, until_ms - now < 100U ? (unsigned long)(until_ms - now) : 100UL);
	}
	flush(h);
	pthread_mutex_unlock(&h->pump_lock);
}

/* Before a publish of an app without callbacks: what has arrived, without
 * waiting, at most once a second (rotation bundles for a publish-only app). */
#define DRAIN_EVERY_MS 1000U
#define DRAIN_MAX_READS 64
static void drain(struct vpl_handle *h)
{
	if (!h || !h->polling || pthread_mutex_trylock(&h->pump_lock) != 0)
		return;
	flush(h);
	uint64_t now = veil__mono_ms();
	if (now - h->drained_ms >= DRAIN_EVERY_MS) {
		h->drained_ms = now;
		/* A read may take an acknowledgement rather than a message:
		 * stop after a few empty ones. */
		for (int i = 0, empty = 0; i < DRAIN_MAX_READS && empty < 4; i++)
			empty = read_one(h, 0) ? 0 : empty + 1;
		flush(h);
	}
	pthread_mutex_unlock(&h->pump_lock);
}

/* After a connect succeeded: the key service, and "connected" means "ready
 * to publish", bounded by the app's connectTimeout. */
static void connected(MQTTClient handle, int connect_timeout_s)
{
	struct vpl_handle *h = vpl_handle_find(handle);
	if (!h)
		return;
	h->polling = h->app_ma == NULL;
	h->drained_ms = veil__mono_ms();
	if (!vpl_connected(h) || vpl_in_cb)
		return; /* not the key service's connection, or on the thread that delivers keys */
	unsigned ms = (unsigned)(connect_timeout_s > 0 ? connect_timeout_s : 30) * 1000U;
	if (!h->polling) {
		(void)veil__session_wait_ready(vpl_session(), ms, NULL, true);
		return;
	}
	read_until_ready(h, veil__mono_ms() + ms);
	if (!veil__session_ready(vpl_session()))
		veil__session_not_ready(vpl_session(), ms);
}

VPL_API int MQTTClient_receive(MQTTClient handle, char **topicName, int *topicLen, MQTTClient_message **message,
                               unsigned long timeout)
{
	REAL(MQTTClient_receive);
	if (!MQTTClient_receive_p)
		return MQTTCLIENT_FAILURE;
	if (vpl_depth)
		return MQTTClient_receive_p(handle, topicName, topicLen, message, timeout);
	if (!vpl_ready())
		return MQTTCLIENT_FAILURE;
	struct vpl_handle *h = vpl_handle_find(handle);
	if (!h) {
		/* Not created through us: we could not open what it receives. */
		vpl_loud("receive on an unknown client refused");
		return MQTTCLIENT_FAILURE;
	}
	flush(h);
	/* What the preload read for the app comes first, in order. */
	struct vpl_queued q;
	for (int pass = 0; pass < 2; pass++) {
		while (vpl_queue_pop(h, &q)) {
			MQTTClient_message *m = q.m;
			if (q.opened || receivable(h, q.topic, q.topic_len, m)) {
				*topicName = q.topic;
				if (topicLen)
					*topicLen = q.topic_len;
				*message = m;
				return q.rc;
			}
		}
		if (pass == 1)
			break;
		vpl_depth++;
		int rc = MQTTClient_receive_p(handle, topicName, topicLen, message, timeout);
		vpl_depth--;
		if (!message || !*message || !*topicName || (rc != MQTTCLIENT_SUCCESS && rc != MQTTCLIENT_TOPICNAME_TRUNCATED))
			return rc;
		/* The key service's messages are applied, not returned; a message
		 * whose key is not here yet is held (it comes back through the
		 * queue once its bundle is applied, or is dropped at its deadline). */
		if (receivable(h, *topicName, topicLen ? *topicLen : 0, *message))
			return rc;
		/* A bundle applied just now may have released held messages. */
	}
	*message = NULL;
	*topicName = NULL;
	if (topicLen)
		*topicLen = 0;
	/* Looks like a timeout to the app: nothing arrived that it may see. */
	return MQTTCLIENT_SUCCESS;
}

/* ---- connect: Veil login and a sealed will ---- */

struct login {
	const char *username;
	const char *password;
	MQTTClient_willOptions *will;
	MQTTClient_willOptions will_copy;
	uint8_t *sealed_will;
	size_t sealed_will_len;
	char pw[VEIL_PASSWORD_MAX];
};

/* Patch options in place (the sync API takes them non-const and writes
 * `returned` back), remembering what to restore. */
static int login_apply(struct vpl_handle *h, MQTTClient_connectOptions *o, struct login *l)
{
	memset(l, 0, sizeof(*l));
	if (!o)
		return MQTTCLIENT_NULL_PARAMETER;
	l->username = o->username;
	l->password = o->password;
	l->will = o->will;
	if (o->will) {
		const MQTTClient_willOptions *w = o->will;
		const void *data = w->message;
		size_t len = w->message ? strlen(w->message) : 0;
		if (w->struct_version >= 1 && !w->message && w->payload.data) {
			data = w->payload.data;
			len = (size_t)(w->payload.len > 0 ? w->payload.len : 0);
		}
		if (vpl_seal_will(w->topicName, data, len, w->retained != 0, &l->sealed_will, &l->sealed_will_len) !=
		    VEIL_OK) {
			vpl_loud("connect refused: the will message cannot be sealed");
			return MQTTCLIENT_FAILURE;
		}
		/* A version 0 struct ends before payload: copy only what it has,
		 * then send version 1 (binary payload). */
		memcpy(&l->will_copy, w,
		       w->struct_version >= 1 ? sizeof(l->will_copy) : offsetof(MQTTClient_willOptions, payload));
		l->will_copy.struct_version = 1;
		l->will_copy.message = NULL;
		l->will_copy.payload.data = l->sealed_will;
		l->will_copy.payload.len = (int)l->sealed_will_len;
		o->will = &l->will_copy;
	}
	int vrc;
	if (vpl_login(h ? h->client_id : NULL, l->pw, sizeof(l->pw), &vrc)) {
		if (vrc != VEIL_OK || !h)
			return MQTTCLIENT_FAILURE;
		o->username = h->client_id;
		o->password = l->pw;
	}
	return MQTTCLIENT_SUCCESS;
}

static void login_restore(MQTTClient_connectOptions *o, struct login *l)
{
	if (o) {
		o->username = l->username;
		o->password = l->password;
		o->will = l->will;
	}
	vpl_sealed_free(l->sealed_will, l->sealed_will_len);
	sodium_memzero(l->pw, sizeof(l->pw));
}

VPL_API int MQTTClient_connect(MQTTClient handle, MQTTClient_connectOptions *options)
{
	REAL(MQTTClient_connect);
	if (!MQTTClient_connect_p)
		return MQTTCLIENT_FAILURE;
	if (vpl_depth)
		return MQTTClient_connect_p(handle, options);
	if (!vpl_ready())
		return MQTTCLIENT_FAILURE;
	struct login l;
	int rc = login_apply(vpl_handle_find(handle), options, &l);
	if (rc == MQTTCLIENT_SUCCESS) {
		vpl_depth++;
		rc = MQTTClient_connect_p(handle, options);
		vpl_depth--;
	}
	login_restore(options, &l);
	if (rc == MQTTCLIENT_SUCCESS)
		connected(handle, options->connectTimeout);
	return rc;
}

VPL_API MQTTResponse MQTTClient_connect5(MQTTClient handle, MQTTClient_connectOptions *options,
                                         MQTTProperties *connectProperties, MQTTProperties *willProperties)
{
	REAL(MQTTClient_connect5);
	if (!MQTTClient_connect5_p)
		return response(MQTTCLIENT_FAILURE);
	if (vpl_depth)
		return MQTTClient_connect5_p(handle, options, connectProperties, willProperties);
	if (!vpl_ready())
		return response(MQTTCLIENT_FAILURE);
	struct login l;
	int rc = login_apply(vpl_handle_find(handle), options, &l);
	MQTTResponse r = response(rc);
	if (rc == MQTTCLIENT_SUCCESS) {
		vpl_depth++;
		r = MQTTClient_connect5_p(handle, options, connectProperties, willProperties);
		vpl_depth--;
	}
	login_restore(options, &l);
	if (rc == MQTTCLIENT_SUCCESS && r.reasonCode == MQTTREASONCODE_SUCCESS)
		connected(handle, options->connectTimeout);
	return r;
}

/* ---- publish: seal, or send nothing ---- */

VPL_API MQTTResponse MQTTClient_publish5(MQTTClient handle, const char *topicName, int payloadlen,
                                         const void *payload, int qos, int retained, MQTTProperties *properties,
                                         MQTTClient_deliveryToken *dt)
{
	REAL(MQTTClient_publish5);
	if (!MQTTClient_publish5_p)
		return response(MQTTCLIENT_FAILURE);
	if (vpl_depth && payload && payload == vpl_inflight)
		return MQTTClient_publish5_p(handle, topicName, payloadlen, payload, qos, retained, properties, dt);
	if (!vpl_ready() || payloadlen < 0)
		return response(MQTTCLIENT_FAILURE);
	drain(vpl_handle_find(handle));
	uint8_t *env = NULL;
	size_t env_len = 0;
	if (vpl_seal(topicName, payload, (size_t)payloadlen, retained != 0, &env, &env_len) != VEIL_OK)
		return response(MQTTCLIENT_FAILURE);
	/* Paho has copied or written the payload when the sync call returns. */
	const void *outer = vpl_inflight;
	vpl_inflight = env;
	vpl_depth++;
	MQTTResponse r = MQTTClient_publish5_p(handle, topicName, (int)env_len, env, qos, retained, properties, dt);
	vpl_depth--;
	vpl_inflight = outer;
	vpl_sealed_free(env, env_len);
	return r;
}

VPL_API int MQTTClient_publish(MQTTClient handle, const char *topicName, int payloadlen, const void *payload,
                               int qos, int retained, MQTTClient_deliveryToken *dt)
{
	REAL(MQTTClient_publish);
	if (!MQTTClient_publish_p)
		return MQTTCLIENT_FAILURE;
	if (vpl_depth && payload && payload == vpl_inflight)
		return MQTTClient_publish_p(handle, topicName, payloadlen, payload, qos, retained, dt);
	if (!vpl_ready() || payloadlen < 0)
		return MQTTCLIENT_FAILURE;
	drain(vpl_handle_find(handle));
	uint8_t *env = NULL;
	size_t env_len = 0;
	if (vpl_seal(topicName, payload, (size_t)payloadlen, retained != 0, &env, &env_len) != VEIL_OK)
		return MQTTCLIENT_FAILURE;
	const void *outer = vpl_inflight;
	vpl_inflight = env;
	vpl_depth++;
	int rc = MQTTClient_publish_p(handle, topicName, (int)env_len, env, qos, retained, dt);
	vpl_depth--;
	vpl_inflight = outer;
	vpl_sealed_free(env, env_len);
	return rc;
}

/* A shallow copy of the app's message with the envelope as payload; the
 * app's struct may be version 0 (no properties), so copy only what it has. */
static int sealed_message(const char *topic, const MQTTClient_message *msg, MQTTClient_message *copy,
                          uint8_t **env, size_t *env_len)
{
	if (!msg || msg->payloadlen < 0)
		return MQTTCLIENT_NULL_PARAMETER;
	MQTTClient_message init = MQTTClient_message_initializer;
	*copy = init;
	memcpy(copy, msg, msg->struct_version >= 1 ? sizeof(*copy) : offsetof(MQTTClient_message, properties));
	if (vpl_seal(topic, msg->payload, (size_t)msg->payloadlen, msg->retained != 0, env, env_len) != VEIL_OK)
		return MQTTCLIENT_FAILURE;
	copy->payload = *env;
	copy->payloadlen = (int)*env_len;
	return MQTTCLIENT_SUCCESS;
}

VPL_API int MQTTClient_publishMessage(MQTTClient handle, const char *topicName, MQTTClient_message *msg,
                                      MQTTClient_deliveryToken *dt)
{
	REAL(MQTTClient_publishMessage);
	if (!MQTTClient_publishMessage_p)
		return MQTTCLIENT_FAILURE;
	if (vpl_depth && msg && msg->payload && msg->payload == vpl_inflight)
		return MQTTClient_publishMessage_p(handle, topicName, msg, dt);
	if (!vpl_ready())
		return MQTTCLIENT_FAILURE;
	drain(vpl_handle_find(handle));
	MQTTClient_message copy;
	uint8_t *env = NULL;
	size_t env_len = 0;
	int rc = sealed_message(topicName, msg, &copy, &env, &env_len);
	if (rc != MQTTCLIENT_SUCCESS)
		return rc;
	const void *outer = vpl_inflight;
	vpl_inflight = env;
	vpl_depth++;
	rc = MQTTClient_publishMessage_p(handle, topicName, &copy, dt);
	vpl_depth--;
	vpl_inflight = outer;
	msg->msgid = copy.msgid;
	vpl_sealed_free(env, env_len);
	return rc;
}

VPL_API MQTTResponse MQTTClient_publishMessage5(MQTTClient handle, const char *topicName, MQTTClient_message *msg,
                                                MQTTClient_deliveryToken *dt)
{
	REAL(MQTTClient_publishMessage5);
	if (!MQTTClient_publishMessage5_p)
		return response(MQTTCLIENT_FAILURE);
	if (vpl_depth && msg && msg->payload && msg->payload == vpl_inflight)
		return MQTTClient_publishMessage5_p(handle, topicName, msg, dt);
	if (!vpl_ready())
		return response(MQTTCLIENT_FAILURE);
	drain(vpl_handle_find(handle));
	MQTTClient_message copy;
	uint8_t *env = NULL;
	size_t env_len = 0;
	int rc = sealed_message(topicName, msg, &copy, &env, &env_len);
	if (rc != MQTTCLIENT_SUCCESS)
		return response(rc);
	const void *outer = vpl_inflight;
	vpl_inflight = env;
	vpl_depth++;
	MQTTResponse r = MQTTClient_publishMessage5_p(handle, topicName, &copy, dt);
	vpl_depth--;
	vpl_inflight = outer;
	msg->msgid = copy.msgid;
	vpl_sealed_free(env, env_len);
	return r;
}
