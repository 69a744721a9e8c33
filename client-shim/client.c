/*
 * veil_client_*: the synchronous flavour of libveil, a thin MQTTClient
 * wrapper. Callbacks are always registered with Paho (it then delivers on its
 * own thread), so every received message goes through veil__shim_deliver and
 * nothing unopened can reach the app through MQTTClient_receive.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "shim.h"

#define RING 256U

struct veil_client {
	struct veil__shim s;
	MQTTClient mc;
	/* Paho's MQTTClient_waitForCompletion polls in 100 ms steps; a QoS 1/2
	 * completion callback wakes veil_client_wait at once instead. */
	pthread_cond_t delivered_cond;   /* with s.lock, on CLOCK_MONOTONIC */
	uint64_t delivered;              /* completions seen */
	int done_ring[RING];             /* most recently completed tokens */
	int reason_ring[RING];           /* and their MQTT 5 reason codes */
};

static int on_arrived(void *ctx, char *topic, int topic_len, MQTTClient_message *m)
{
	struct veil_client *c = ctx;
	veil__in_callback++;
	veil__shim_deliver(&c->s, topic, (size_t)topic_len, m->payload, (size_t)m->payloadlen, m->qos,
	                   m->retained != 0, m->dup != 0,
	                   c->s.mqtt_version == VEIL_MQTT_5 ? &m->properties : NULL);
	veil__in_callback--;
	MQTTClient_freeMessage(&m);
	MQTTClient_free(topic);
	return 1;
}

static void completed(struct veil_client *c, int dt, int reason)
{
	pthread_mutex_lock(&c->s.lock);
	c->done_ring[c->delivered % RING] = dt;
	c->reason_ring[c->delivered % RING] = reason;
	c->delivered++;
	pthread_cond_broadcast(&c->delivered_cond);
	pthread_mutex_unlock(&c->s.lock);
}

static void on_delivered(void *ctx, MQTTClient_deliveryToken dt)
{
	completed(ctx, dt, 0);
}

/* MQTT 5: Paho reports every acknowledgement with its reason code here,
 * including refusals (PUBACK/PUBREC >= 0x80), which deliveryComplete never
 * sees. */
static void on_published(void *ctx, int dt, int packet_type, MQTTProperties *props, enum MQTTReasonCodes rc)
{
	(void)packet_type;
	(void)props;
	if ((int)rc >= 0x80)
		completed(ctx, dt, (int)rc);
}

static void on_lost(void *ctx, char *cause)
{
	struct veil_client *c = ctx;
	veil__log(&c->s, VEIL_LOG_WARNING, "connection lost: %s", cause ? cause : "unknown");
	veil__shim_disconnected(&c->s);
	pthread_mutex_lock(&c->s.lock);
	veil_connection_lost_cb cb = c->s.on_lost;
	void *cb_ctx = c->s.cb_ctx;
	pthread_mutex_unlock(&c->s.lock);
	/* An app that reconnects from here gets no wait for keys: this thread
	 * is the one that would deliver them. */
	veil__in_callback++;
	if (cb)
		cb(cb_ctx, cause);
	veil__in_callback--;
}

/* MQTT 5: a DISCONNECT from the broker (a kick, a revocation, a session
 * taken over, the broker stopping) reaches only this callback, on a thread
 * of its own: Paho has closed the connection and does not call
 * connectionLost for it. */
static void on_disconnected(void *ctx, MQTTProperties *props, enum MQTTReasonCodes rc)
{
	(void)props;
	char cause[200];
	veil__disconnect_cause((int)rc, cause, sizeof(cause));
	on_lost(ctx, cause);
}

/* The key service's device messages: QoS 1, not retained, never sealed. */
static int raw_publish(struct veil__shim *s, const char *topic, const uint8_t *payload, size_t len)
{
	struct veil_client *c = (struct veil_client *)s; /* s is the first member */
	MQTTClient_message m = MQTTClient_message_initializer;
	m.payload = (void *)payload;
	m.payloadlen = (int)len;
	m.qos = 1;
	MQTTClient_deliveryToken dt = 0;
	int prc;
	if (s->mqtt_version == VEIL_MQTT_5) {
		MQTTResponse r = MQTTClient_publishMessage5(c->mc, topic, &m, &dt);
		prc = (int)r.reasonCode;
		MQTTResponse_free(r);
	} else {
		prc = MQTTClient_publishMessage(c->mc, topic, &m, &dt);
	}
	return veil__mqtt_err(s, prc);
}

static int subscribe_service(struct veil__shim *s, char *const *topics, int n)
{
	struct veil_client *c = (struct veil_client *)s;
	int qos[2] = { 1, 1 };
	int prc;
	if (s->mqtt_version == VEIL_MQTT_5) {
		MQTTSubscribe_options so[2] = { MQTTSubscribe_options_initializer, MQTTSubscribe_options_initializer };
		MQTTResponse r = MQTTClient_subscribeMany5(c->mc, n, topics, qos, so, NULL);
		prc = r.reasonCode >= 0x80 ? (int)r.reasonCode : MQTTCLIENT_SUCCESS;
		for (int i = 0; prc == MQTTCLIENT_SUCCESS && r.reasonCodes && i < r.reasonCodeCount; i++)
			if (r.reasonCodes[i] >= 0x80)
				prc = (int)r.reasonCodes[i];
		MQTTResponse_free(r);
	} else {
		prc = MQTTClient_subscribeMany(c->mc, n, topics, qos);
		for (int i = 0; prc == MQTTCLIENT_SUCCESS && i < n; i++)
			if (qos[i] == 0x80)
				prc = MQTTREASONCODE_NOT_AUTHORIZED;
	}
	return veil__mqtt_err(s, prc);
}

int veil_client_new(const struct veil_client_options *o, struct veil_client **out)
{
	veil__paho_anchor();
	if (!out)
		return VEIL_ERR_INVAL;
	*out = NULL;
	struct veil_client *c = calloc(1, sizeof(*c));
	if (!c)
		return VEIL_ERR_NOMEM;
	int rc = veil__shim_init(&c->s, o);
	if (rc != VEIL_OK) {
		free(c);
		return rc;
	}
	c->s.raw_publish = raw_publish;
	c->s.subscribe_service = subscribe_service;
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&c->delivered_cond, &ca);
	pthread_condattr_destroy(&ca);
	MQTTClient_createOptions co = MQTTClient_createOptions_initializer;
	co.MQTTVersion = c->s.mqtt_version == VEIL_MQTT_5 ? MQTTVERSION_5 : MQTTVERSION_3_1_1;
	int prc = MQTTClient_createWithOptions(&c->mc, c->s.server_uri, c->s.client_id, MQTTCLIENT_PERSISTENCE_NONE,
	                                       NULL, &co);
	if (prc == MQTTCLIENT_SUCCESS)
		prc = MQTTClient_setCallbacks(c->mc, c, on_lost, on_arrived, on_delivered);
	if (prc == MQTTCLIENT_SUCCESS && c->s.mqtt_version == VEIL_MQTT_5)
		prc = MQTTClient_setPublished(c->mc, c, on_published);
	if (prc == MQTTCLIENT_SUCCESS && c->s.mqtt_version == VEIL_MQTT_5)
		prc = MQTTClient_setDisconnected(c->mc, c, on_disconnected);
	if (prc != MQTTCLIENT_SUCCESS) {
		rc = veil__mqtt_err(&c->s, prc);
		veil__log(&c->s, VEIL_LOG_ERROR, "MQTTClient_create: %s", MQTTClient_strerror(prc));
		veil__shim_detach(&c->s);
		if (c->mc)
			MQTTClient_destroy(&c->mc);
		pthread_cond_destroy(&c->delivered_cond);
		veil__shim_fini(&c->s);
		free(c);
		return rc;
	}
	*out = c;
	return VEIL_OK;
}

int veil_client_set_callbacks(struct veil_client *c, void *ctx, veil_message_cb on_message,
                              veil_refusal_cb on_refusal, veil_connection_lost_cb on_lost_cb)
{
	if (!c)
		return VEIL_ERR_INVAL;
	pthread_mutex_lock(&c->s.lock);
	c->s.cb_ctx = ctx;
	c->s.on_message = on_message;
	c->s.on_refusal = on_refusal;
	c->s.on_lost = on_lost_cb;
	pthread_mutex_unlock(&c->s.lock);
	return VEIL_OK;
}

int veil_client_connect(struct veil_client *c)
{
	if (!c)
		return VEIL_ERR_INVAL;
	struct veil__login l;
	int rc = veil__shim_login(&c->s, &l);
	if (rc != VEIL_OK)
		return rc;
	int prc;
	MQTTClient_SSLOptions ssl;
	veil__shim_tls(&c->s, &ssl);
	MQTTClient_willOptions will = MQTTClient_willOptions_initializer;
	if (l.will) {
		will.topicName = c->s.will_topic;
		will.message = NULL;
		will.payload.data = l.will;
		will.payload.len = (int)l.will_len;
		will.qos = c->s.will_qos;
		will.retained = c->s.will_retained;
	}
	if (c->s.mqtt_version == VEIL_MQTT_5) {
		MQTTClient_connectOptions opts = MQTTClient_connectOptions_initializer5;
		opts.keepAliveInterval = c->s.keepalive_s;
		opts.cleanstart = !c->s.persistent_session;
		opts.reliable = 0; /* as in the MQTT 3.1.1 branch below, which says why */
		opts.connectTimeout = c->s.connect_timeout_s;
		opts.username = l.username;
		opts.password = l.password;
		opts.ssl = c->s.tls ? &ssl : NULL;
		opts.will = l.will ? &will : NULL;
		MQTTResponse r = MQTTClient_connect5(c->mc, &opts, &l.props, NULL);
		prc = (int)r.reasonCode; /* Paho: negative codes are its own errors */
		MQTTResponse_free(r);
	} else {
		MQTTClient_connectOptions opts = MQTTClient_connectOptions_initializer;
		opts.keepAliveInterval = c->s.keepalive_s;
		opts.cleansession = !c->s.persistent_session;
		/* Paho's default ("reliable") keeps one QoS>0 message in flight
		 * and makes any other publish poll in 100 ms steps until it
		 * completes: the key service's acknowledgement, sent by the keeper
		 * thread, then waited behind the app's publish (0.80x of steady
		 * throughput with a scope rotating every 0.5 s, bench_keyd). Up to
		 * 10 in flight; MQTT keeps them in order. */
		opts.reliable = 0;
		opts.connectTimeout = c->s.connect_timeout_s;
		opts.username = l.username;
		opts.password = l.password;
		opts.ssl = c->s.tls ? &ssl : NULL;
		opts.will = l.will ? &will : NULL;
		prc = MQTTClient_connect(c->mc, &opts);
	}
	veil__shim_login_wipe(&l);
	if (prc != MQTTCLIENT_SUCCESS) {
		rc = veil__mqtt_err(&c->s, prc);
		veil__log(&c->s, VEIL_LOG_ERROR, "connect to %s as '%s' failed: rc %d (%s)", c->s.server_uri,
		          c->s.client_id, prc, veil_errname(rc));
		return rc;
	}
	pthread_mutex_lock(&c->s.lock);
	c->s.stats.connects++;
	pthread_mutex_unlock(&c->s.lock);
	veil__log(&c->s, VEIL_LOG_INFO, "connected to %s as '%s'", c->s.server_uri, c->s.client_id);
	veil__shim_connected(&c->s);
	/* "Connected" means ready to publish: with the key service, once its
	 * keys are here (they arrive on Paho's thread), bounded by the connect
	 * timeout; past it the session says why publishes are refused. */
	if (!veil__in_callback)
		(void)veil__session_wait_ready(c->s.ses, (unsigned)c->s.connect_timeout_s * 1000U, NULL, true);
	return VEIL_OK;
}

bool veil_client_is_connected(struct veil_client *c)
{
	return c && MQTTClient_isConnected(c->mc);
}

int veil_client_publish5(struct veil_client *c, const char *topic, const void *payload, size_t len, int qos,
                         bool retained, MQTTProperties *props, int *token)
{
	if (!c || !topic || qos < 0 || qos > 2)
		return VEIL_ERR_INVAL;
	uint8_t stackbuf[VEIL__SEAL_STACK];
	uint8_t *env = NULL;
	size_t env_len = 0;
	int rc = veil__shim_seal(&c->s, topic, payload, len, retained, stackbuf, sizeof(stackbuf), &env,
	                         &env_len);
	if (rc != VEIL_OK)
		return rc;
	if (env_len > (size_t)INT32_MAX) {
		veil__shim_seal_release(env, env_len, stackbuf);
		return VEIL_ERR_TOO_LARGE;
	}
	MQTTClient_message m = MQTTClient_message_initializer;
	m.payload = env;
	m.payloadlen = (int)env_len;
	m.qos = qos;
	m.retained = retained;
	MQTTClient_deliveryToken dt = 0;
	int prc;
	if (c->s.mqtt_version == VEIL_MQTT_5) {
		if (props)
			m.properties = *props;
		MQTTResponse r = MQTTClient_publishMessage5(c->mc, topic, &m, &dt);
		prc = (int)r.reasonCode; /* Paho: negative codes are its own errors */
		MQTTResponse_free(r);
	} else {
		prc = props && props->count ? MQTTCLIENT_BAD_MQTT_OPTION : MQTTClient_publishMessage(c->mc, topic, &m, &dt);
	}
	/* Paho has copied the envelope (or failed); either way ours goes now. */
	veil__shim_seal_release(env, env_len, stackbuf);
	if (prc != MQTTCLIENT_SUCCESS)
		return veil__mqtt_err(&c->s, prc);
	if (token)
		*token = dt;
	return VEIL_OK;
}

int veil_client_publish(struct veil_client *c, const char *topic, const void *payload, size_t len, int qos,
                        bool retained, int *token)
{
	return veil_client_publish5(c, topic, payload, len, qos, retained, NULL, token);
}

static bool token_pending(struct veil_client *c, int token)
{
	MQTTClient_deliveryToken *tokens = NULL;
	bool pending = false;
	if (MQTTClient_getPendingDeliveryTokens(c->mc, &tokens) == MQTTCLIENT_SUCCESS && tokens) {
		for (size_t i = 0; tokens[i] != -1 && !pending; i++)
			pending = tokens[i] == token;
		MQTTClient_free(tokens);
	}
	return pending;
}

/* Caller holds s.lock. Whether token completed lately, and how: Paho may
 * report one completion twice (deliveryComplete and, for MQTT 5, published
 * with the reason code), in either order, so a refusal wins. */
static bool token_done_recently(const struct veil_client *c, int token, int *reason)
{
	uint64_t n = c->delivered < RING ? c->delivered : RING;
	bool found = false;
	for (uint64_t i = 0; i < n; i++) {
		size_t k = (size_t)((c->delivered - 1 - i) % RING);
		if (c->done_ring[k] == token) {
			if (!found || c->reason_ring[k] > *reason)
				*reason = c->reason_ring[k];
			found = true;
		}
	}
	return found;
}

static bool before(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

static int finished(struct veil_client *c, int reason, int *reason_code)
{
	if (reason_code)
		*reason_code = reason;
	return reason >= 0x80 ? veil__mqtt_err(&c->s, reason) : VEIL_OK;
}

int veil_client_wait(struct veil_client *c, int token, unsigned long timeout_ms, int *reason_code)
{
	if (!c)
		return VEIL_ERR_INVAL;
	if (reason_code)
		*reason_code = 0;
	struct timespec until = veil__mono_after(timeout_ms);
	int reason = 0;
	pthread_mutex_lock(&c->s.lock);
	for (;;) {
		if (token_done_recently(c, token, &reason))
			break;
		/* Slow path, same test as Paho's waitForCompletion: no longer
		 * outbound (covers tokens that left the ring long ago). */
		uint64_t seen = c->delivered;
		pthread_mutex_unlock(&c->s.lock);
		bool pending = token_pending(c, token);
		bool connected = MQTTClient_isConnected(c->mc);
		pthread_mutex_lock(&c->s.lock);
		/* Completed while the lock was released (Paho ran both callbacks
		 * before it let token_pending see the token gone): its reason is in
		 * the ring now, a refusal included. */
		if (!pending) {
			(void)token_done_recently(c, token, &reason);
			break;
		}
		if (!connected) {
			pthread_mutex_unlock(&c->s.lock);
			return veil__mqtt_err(&c->s, MQTTCLIENT_DISCONNECTED);
		}
		/* Wake on a completion, or every 100 ms: a lost connection has none. */
		int wrc = 0;
		while (c->delivered == seen && wrc == 0) {
			struct timespec step = veil__mono_after(100);
			bool last = !before(&step, &until);
			wrc = pthread_cond_timedwait(&c->delivered_cond, &c->s.lock, last ? &until : &step);
			if (wrc == ETIMEDOUT && !last)
				wrc = -1;
		}
		if (wrc == ETIMEDOUT) {
			bool done = token_done_recently(c, token, &reason);
			pthread_mutex_unlock(&c->s.lock);
			if (done)
				return finished(c, reason, reason_code);
			return token_pending(c, token) ? VEIL_ERR_TIMEOUT : VEIL_OK;
		}
	}
	pthread_mutex_unlock(&c->s.lock);
	return finished(c, reason, reason_code);
}

int veil_client_subscribe5(struct veil_client *c, const char *filter, int qos, MQTTSubscribe_options *opts,
                           MQTTProperties *props)
{
	if (!c || !filter || qos < 0 || qos > 2)
		return VEIL_ERR_INVAL;
	int prc;
	if (c->s.mqtt_version == VEIL_MQTT_5) {
		MQTTResponse r = MQTTClient_subscribe5(c->mc, filter, qos, opts, props);
		prc = (int)r.reasonCode; /* Paho: negative codes are its own errors */
		MQTTResponse_free(r);
		/* Granted QoS 0..2 are successes; reason codes >= 0x80 are refusals. */
		if (prc >= 0 && prc <= 2)
			prc = MQTTCLIENT_SUCCESS;
	} else {
		if (opts || (props && props->count))
			return VEIL_ERR_INVAL;
		prc = MQTTClient_subscribe(c->mc, filter, qos);
		/* Paho returns the granted QoS; a refusal is granted QoS 0x80. */
		if (prc >= 0 && prc <= 2)
			prc = MQTTCLIENT_SUCCESS;
		else if (prc == 0x80)
			prc = MQTTREASONCODE_NOT_AUTHORIZED;
	}
	if (prc != MQTTCLIENT_SUCCESS) {
		int rc = veil__mqtt_err(&c->s, prc);
		veil__log(&c->s, VEIL_LOG_WARNING, "subscribe '%s' failed: rc %d (%s)", filter, prc, veil_errname(rc));
		return rc;
	}
	return VEIL_OK;
}

int veil_client_subscribe(struct veil_client *c, const char *filter, int qos)
{
	return veil_client_subscribe5(c, filter, qos, NULL, NULL);
}

int veil_client_unsubscribe(struct veil_client *c, const char *filter)
{
	if (!c || !filter)
		return VEIL_ERR_INVAL;
	int prc;
	if (c->s.mqtt_version == VEIL_MQTT_5) {
		MQTTResponse r = MQTTClient_unsubscribe5(c->mc, filter, NULL);
		prc = (int)r.reasonCode; /* Paho: negative codes are its own errors */
		MQTTResponse_free(r);
		/* MQTT 5: below 0x80 is success (0x11, No subscription existed,
		 * included), as veil_async_unsubscribe reports it. */
		if (prc > 0 && prc < 0x80)
			prc = 0;
	} else {
		prc = MQTTClient_unsubscribe(c->mc, filter);
	}
	return veil__mqtt_err(&c->s, prc);
}

int veil_client_disconnect(struct veil_client *c, int timeout_ms)
{
	if (!c || timeout_ms < 0)
		return VEIL_ERR_INVAL;
	int prc = MQTTClient_disconnect(c->mc, timeout_ms);
	veil__shim_save_state(&c->s);
	return veil__mqtt_err(&c->s, prc);
}

int veil_client_wait_keys(struct veil_client *c, unsigned long timeout_ms)
{
	return c ? veil__shim_wait_keys(&c->s, timeout_ms) : VEIL_ERR_INVAL;
}

int veil_client_reload(struct veil_client *c)
{
	return c ? veil__shim_reload(&c->s) : VEIL_ERR_INVAL;
}

void veil_client_stats(struct veil_client *c, struct veil_client_stats *out)
{
	if (!c || !out)
		return;
	veil__stats_copy(&c->s, out);
}

void veil_client_free(struct veil_client **cp)
{
	if (!cp || !*cp)
		return;
	struct veil_client *c = *cp;
	veil__shim_detach(&c->s);
	if (MQTTClient_isConnected(c->mc))
		MQTTClient_disconnect(c->mc, 1000);
	/* Destroy Paho first: after this no callback can touch the shim. */
	MQTTClient_destroy(&c->mc);
	pthread_cond_destroy(&c->delivered_cond);
	veil__shim_fini(&c->s);
	free(c);
	*cp = NULL;
}
