/*
 * keyd's Paho MQTTAsync client (mqtt.h). Every callback here runs on a
 * Paho thread and does one thing: copy what it was given into a kd_ev,
 * append it to the queue under the lock and write one byte to the pipe.
 */
#define _GNU_SOURCE /* pipe2 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <MQTTAsync.h>
#include <sodium.h>
#include <uthash.h>

#include "veil/error.h"
#include "../core/bundle.h"
#include "../core/util.h"
#include "mqtt.h"

#define SESSION_EXPIRY_S 604800 /* a week: requests wait for keyd that long */
/* Publishes handed to Paho at once. Beyond the broker's receive maximum
 * (Mosquitto's max_inflight_messages, 20 by default) Paho keeps them in its
 * own queue and sends them on a timer, tens of milliseconds apart; keyd
 * keeps the window itself and hands over the next one at each PUBACK. */
#define WINDOW 16U

/* A publish kept until its PUBACK. */
struct out {
	char *topic;
	uint8_t *buf;
	size_t len;
	uint8_t cred_id[VEIL_CREDENTIAL_ID_BYTES];
	bool is_bundle;
	uint64_t version;
	bool sent;
	UT_hash_handle hh; /* by topic */
};

/* What a publish's callback needs to name it (freed by the callback). */
struct ticket {
	struct kd_mqtt *m;
	char *topic;
	uint64_t version;
};

struct kd_mqtt {
	MQTTAsync c;
	const struct kd_config *cfg;
	struct veil_identity *id;
	uint8_t cred[VEIL_CREDENTIAL_MAX];
	size_t cred_len;
	int pipe[2];
	pthread_mutex_t mu;
	struct kd_ev *head, *tail;
	bool connected;
	struct out *outs;    /* kept until their PUBACK, in publish order */
	size_t unsent;       /* of them, not handed to Paho yet */
	size_t inflight;     /* handed to Paho, no PUBACK yet */
	size_t window;       /* at most this many in flight (WINDOW) */
};

static void push(struct kd_mqtt *m, struct kd_ev *ev)
{
	pthread_mutex_lock(&m->mu);
	if (m->tail)
		m->tail->next = ev;
	else
		m->head = ev;
	m->tail = ev;
	pthread_mutex_unlock(&m->mu);
	char b = 1;
	ssize_t w = write(m->pipe[1], &b, 1); /* full pipe: the reader is already woken */
	(void)w;
}

static void push_simple(struct kd_mqtt *m, enum kd_ev_type type, int code)
{
	struct kd_ev *ev = calloc(1, sizeof(*ev));
	if (!ev)
		return; /* out of memory on Paho's thread: the state is re-checked at the next connect */
	ev->type = type;
	ev->code = code;
	push(m, ev);
}

void kd_mqtt__ev_free(struct kd_ev *ev)
{
	if (!ev)
		return;
	free(ev->topic);
	free(ev->payload);
	free(ev);
}

struct kd_ev *kd_mqtt__next(struct kd_mqtt *m)
{
	char buf[64];
	while (read(m->pipe[0], buf, sizeof(buf)) > 0)
		;
	pthread_mutex_lock(&m->mu);
	struct kd_ev *ev = m->head;
	if (ev) {
		m->head = ev->next;
		if (!m->head)
			m->tail = NULL;
		ev->next = NULL;
	}
	pthread_mutex_unlock(&m->mu);
	return ev;
}

/* ---- Paho callbacks (Paho's threads: enqueue only) ------------------------ */

static void on_lost(void *ctx, char *cause)
{
	(void)cause;
	push_simple(ctx, KD_EV_LOST, 0);
}

/* MQTT 5: a DISCONNECT from the broker (a kick: keyd's credential revoked
 * or its authority removed, the session taken over) reaches only this
 * callback; Paho does not call connectionLost for it. keyd reconnects as
 * after any loss, with its credential file as it is then. */
static void on_disconnected(void *ctx, MQTTProperties *props, enum MQTTReasonCodes rc)
{
	(void)props;
	push_simple(ctx, KD_EV_LOST, (int)rc);
}

static int on_arrived(void *ctx, char *topic, int topic_len, MQTTAsync_message *msg)
{
	struct kd_mqtt *m = ctx;
	struct kd_ev *ev = calloc(1, sizeof(*ev));
	size_t tl = topic_len > 0 ? (size_t)topic_len : strlen(topic);
	size_t pl = msg->payloadlen > 0 ? (size_t)msg->payloadlen : 0;
	if (ev) {
		ev->type = KD_EV_MESSAGE;
		ev->topic = malloc(tl + 1);
		ev->payload = malloc(pl ? pl : 1);
		if (ev->topic && ev->payload) {
			memcpy(ev->topic, topic, tl);
			ev->topic[tl] = '\0';
			if (pl)
				memcpy(ev->payload, msg->payload, pl);
			ev->len = pl;
			push(m, ev);
		} else {
			kd_mqtt__ev_free(ev);
		}
	}
	MQTTAsync_freeMessage(&msg);
	MQTTAsync_free(topic);
	return 1;
}

static void on_conn_ok(void *ctx, MQTTAsync_successData5 *r)
{
	(void)r;
	push_simple(ctx, KD_EV_CONNECTED, 0);
}

static void on_conn_fail(void *ctx, MQTTAsync_failureData5 *r)
{
	push_simple(ctx, KD_EV_CONNECT_FAILED, r ? (r->reasonCode ? (int)r->reasonCode : r->code) : -1);
}

static void on_sub_ok(void *ctx, MQTTAsync_successData5 *r)
{
	/* One filter: its reason code is reasonCode (alt.sub is for subscribeMany). */
	int rc = r ? (int)r->reasonCode : 0;
	push_simple(ctx, rc >= 0x80 ? KD_EV_SUBSCRIBE_FAILED : KD_EV_SUBSCRIBED, rc);
}

static void on_sub_fail(void *ctx, MQTTAsync_failureData5 *r)
{
	push_simple(ctx, KD_EV_SUBSCRIBE_FAILED, r ? (r->reasonCode ? (int)r->reasonCode : r->code) : -1);
}

static void ticket_done(struct ticket *t, enum kd_ev_type type, int code)
{
	struct kd_ev *ev = calloc(1, sizeof(*ev));
	if (ev) {
		ev->type = type;
		ev->code = code;
		ev->topic = t->topic;
		ev->version = t->version;
		t->topic = NULL;
		push(t->m, ev);
	}
	free(t->topic);
	free(t);
}

static void on_pub_ok(void *ctx, MQTTAsync_successData5 *r)
{
	int rc = r ? (int)r->reasonCode : 0;
	ticket_done(ctx, rc >= 0x80 ? KD_EV_PUBLISH_FAILED : KD_EV_PUBACK, rc);
}

static void on_pub_fail(void *ctx, MQTTAsync_failureData5 *r)
{
	ticket_done(ctx, KD_EV_PUBLISH_FAILED, r ? (r->reasonCode ? (int)r->reasonCode : r->code) : -1);
}

/* ---- main thread ----------------------------------------------------------- */

int kd_mqtt__new(const struct kd_config *cfg, struct kd_mqtt **out, char *err, size_t errlen)
{
	*out = NULL;
	struct kd_mqtt *m = calloc(1, sizeof(*m));
	if (!m)
		return VEIL_ERR_NOMEM;
	m->cfg = cfg;
	m->window = WINDOW;
	m->pipe[0] = m->pipe[1] = -1;
	pthread_mutex_init(&m->mu, NULL);
	int rc = veil_identity_load(cfg->identity, &m->id, err, errlen);
	if (rc == VEIL_OK)
		rc = veil_credential_load(cfg->credential, m->cred, sizeof(m->cred), &m->cred_len, err, errlen);
	if (rc != VEIL_OK) {
		kd_mqtt__free(&m);
		return rc;
	}
	if (pipe2(m->pipe, O_NONBLOCK | O_CLOEXEC) != 0) {
		veil__errf(err, errlen, "pipe: %s", strerror(errno));
		kd_mqtt__free(&m);
		return VEIL_ERR_IO;
	}
	MQTTAsync_createOptions co = MQTTAsync_createOptions_initializer5;
	co.MQTTVersion = MQTTVERSION_5;
	co.sendWhileDisconnected = 0;
	int prc = MQTTAsync_createWithOptions(&m->c, cfg->broker, cfg->client_id, MQTTCLIENT_PERSISTENCE_NONE, NULL, &co);
	if (prc == MQTTASYNC_SUCCESS)
		prc = MQTTAsync_setCallbacks(m->c, m, on_lost, on_arrived, NULL);
	if (prc == MQTTASYNC_SUCCESS)
		prc = MQTTAsync_setDisconnected(m->c, m, on_disconnected);
	if (prc != MQTTASYNC_SUCCESS) {
		veil__errf(err, errlen, "%s: MQTT client: %s", cfg->broker, MQTTAsync_strerror(prc));
		kd_mqtt__free(&m);
		return VEIL_ERR_MQTT;
	}
	*out = m;
	return VEIL_OK;
}

int kd_mqtt__fd(const struct kd_mqtt *m)
{
	return m->pipe[0];
}

bool kd_mqtt__connected(const struct kd_mqtt *m)
{
	return m->connected;
}

size_t kd_mqtt__unacked(const struct kd_mqtt *m)
{
	return HASH_COUNT(m->outs);
}

void kd_mqtt__set_window(struct kd_mqtt *m, size_t n)
{
	m->window = n ? n : 1;
}

/* The identity and credential files as they are now: a credential
 * re-issued (by a new authority, say) is used from the next connect, so
 * the plugin's disconnect when the old one stops being valid costs one
 * reconnect, not a restart. Files that do not load keep the previous ones. */
static void login_reload(struct kd_mqtt *m)
{
	struct veil_identity *id = NULL;
	uint8_t cred[VEIL_CREDENTIAL_MAX];
	size_t len = 0;
	char err[256] = "";
	int rc = veil_identity_load(m->cfg->identity, &id, err, sizeof(err));
	if (rc == VEIL_OK)
		rc = veil_credential_load(m->cfg->credential, cred, sizeof(cred), &len, err, sizeof(err));
	if (rc != VEIL_OK) {
		veil_identity_free(&id);
		kd_log__audit("mqtt", "login-files", "kept=previous error=%s", err);
		return;
	}
	if (len != m->cred_len || memcmp(cred, m->cred, len) != 0)
		kd_log__audit("mqtt", "login-files", "credential=changed");
	veil_identity_free(&m->id);
	m->id = id;
	memcpy(m->cred, cred, len);
	m->cred_len = len;
}

int kd_mqtt__connect(struct kd_mqtt *m, uint64_t now)
{
	login_reload(m);
	uint8_t tok[VEIL_TOKEN_MAX];
	char pw[VEIL_PASSWORD_MAX];
	size_t tlen;
	/* With the deployment's name, version 2 (a broker may refuse version 1:
	 * plugin_opt_token_v1 refuse); without it, version 1. */
	int rc = veil_token_create_for(m->id, m->cred, m->cred_len, m->cfg->client_id, m->cfg->audience, now, tok,
	                               sizeof(tok), &tlen);
	if (rc == VEIL_OK)
		rc = veil_token_to_password(tok, tlen, pw, sizeof(pw));
	sodium_memzero(tok, sizeof(tok));
	if (rc != VEIL_OK)
		return rc;
	MQTTProperties props = MQTTProperties_initializer;
	MQTTProperty p = { .identifier = MQTTPROPERTY_CODE_SESSION_EXPIRY_INTERVAL, .value.integer4 = SESSION_EXPIRY_S };
	MQTTProperties_add(&props, &p);
	MQTTAsync_SSLOptions ssl = MQTTAsync_SSLOptions_initializer;
	ssl.trustStore = m->cfg->tls_ca_file;
	MQTTAsync_connectOptions o = MQTTAsync_connectOptions_initializer5;
	o.keepAliveInterval = (int)m->cfg->keepalive;
	o.cleanstart = 0; /* persistent: requests sent while keyd is away wait for it */
	o.connectTimeout = 10;
	o.username = m->cfg->client_id;
	o.password = pw;
	o.connectProperties = &props;
	o.ssl = m->cfg->tls_ca_file || !strncmp(m->cfg->broker, "ssl://", 6) || !strncmp(m->cfg->broker, "mqtts://", 8)
		        ? &ssl
		        : NULL;
	o.onSuccess5 = on_conn_ok;
	o.onFailure5 = on_conn_fail;
	o.context = m;
	int prc = MQTTAsync_connect(m->c, &o);
	MQTTProperties_free(&props);
	sodium_memzero(pw, sizeof(pw));
	return prc == MQTTASYNC_SUCCESS ? VEIL_OK : VEIL_ERR_MQTT;
}

static int send_out(struct kd_mqtt *m, struct out *o)
{
	struct ticket *t = calloc(1, sizeof(*t));
	if (!t || !(t->topic = strdup(o->topic))) {
		free(t);
		return VEIL_ERR_NOMEM;
	}
	t->m = m;
	t->version = o->version;
	MQTTAsync_message msg = MQTTAsync_message_initializer;
	msg.payload = o->buf;
	msg.payloadlen = (int)o->len;
	msg.qos = 1;
	msg.retained = 1;
	MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
	ro.onSuccess5 = on_pub_ok;
	ro.onFailure5 = on_pub_fail;
	ro.context = t;
	int prc = MQTTAsync_sendMessage(m->c, o->topic, &msg, &ro);
	if (prc != MQTTASYNC_SUCCESS) {
		free(t->topic);
		free(t);
		return VEIL_ERR_MQTT;
	}
	o->sent = true;
	m->inflight++;
	return VEIL_OK;
}

static void out_free(struct out *o)
{
	free(o->topic);
	free(o->buf);
	free(o);
}

int kd_mqtt__publish(void *ctx, const char *topic, const uint8_t *buf, size_t len, const uint8_t *cred_id,
                     uint64_t version)
{
	struct kd_mqtt *m = ctx;
	if (len > INT32_MAX)
		return VEIL_ERR_TOO_LARGE;
	struct out *o = NULL;
	HASH_FIND_STR(m->outs, topic, o);
	if (o) { /* superseded before its PUBACK: only the newest matters */
		if (!o->sent && m->unsent)
			m->unsent--;
		HASH_DEL(m->outs, o);
		out_free(o);
	}
	o = calloc(1, sizeof(*o));
	if (!o || !(o->topic = strdup(topic)) || !(o->buf = malloc(len ? len : 1))) {
		if (o)
			out_free(o);
		return VEIL_ERR_NOMEM;
	}
	memcpy(o->buf, buf, len);
	o->len = len;
	o->version = version;
	o->is_bundle = cred_id != NULL;
	if (cred_id)
		memcpy(o->cred_id, cred_id, VEIL_CREDENTIAL_ID_BYTES);
	HASH_ADD_KEYPTR(hh, m->outs, o->topic, strlen(o->topic), o);
	if (m->connected && m->unsent == 0 && m->inflight < m->window && send_out(m, o) == VEIL_OK)
		return VEIL_OK;
	m->unsent++; /* Paho's in-flight window is full (or we are offline): kd_mqtt__flush sends it */
	return VEIL_OK;
}

void kd_mqtt__flush(struct kd_mqtt *m)
{
	if (!m->connected || m->unsent == 0)
		return;
	struct out *o, *tmp;
	size_t left = 0;
	bool full = false;
	HASH_ITER(hh, m->outs, o, tmp) {
		if (o->sent)
			continue;
		if (full || m->inflight >= m->window || send_out(m, o) != VEIL_OK) {
			full = true; /* keep the order: the rest waits for the next PUBACK */
			left++;
		}
	}
	m->unsent = left;
}

bool kd_mqtt__on_event(struct kd_mqtt *m, const struct kd_ev *ev, uint8_t cred_id[VEIL_CREDENTIAL_ID_BYTES],
                       bool *is_bundle, uint64_t *version)
{
	struct out *o = NULL, *tmp;
	switch (ev->type) {
	case KD_EV_CONNECTED: {
		m->connected = true;
		MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
		ro.onSuccess5 = on_sub_ok;
		ro.onFailure5 = on_sub_fail;
		ro.context = m;
		MQTTAsync_subscribe(m->c, VEIL__TOPIC_REQ_PREFIX "+", 1, &ro);
		m->unsent = HASH_COUNT(m->outs);
		m->inflight = 0;
		kd_mqtt__flush(m);
		return false;
	}
	case KD_EV_LOST:
	case KD_EV_CONNECT_FAILED:
		m->connected = false;
		HASH_ITER(hh, m->outs, o, tmp) {
			o->sent = false;
		}
		m->unsent = HASH_COUNT(m->outs);
		m->inflight = 0;
		return false;
	case KD_EV_PUBACK: {
		bool done = false;
		if (m->inflight)
			m->inflight--;
		HASH_FIND_STR(m->outs, ev->topic, o);
		if (o && o->version == ev->version) { /* else an older version, already replaced */
			memcpy(cred_id, o->cred_id, VEIL_CREDENTIAL_ID_BYTES);
			*is_bundle = o->is_bundle;
			*version = o->version;
			HASH_DEL(m->outs, o);
			out_free(o);
			done = true;
		}
		return done; /* a slot is free: the caller flushes once it handled this */
	}
	case KD_EV_PUBLISH_FAILED:
		if (m->inflight)
			m->inflight--;
		HASH_FIND_STR(m->outs, ev->topic, o);
		if (o && o->version == ev->version) {
			o->sent = false; /* sent again at the next connect */
			m->unsent++;
		}
		return false;
	default:
		return false;
	}
}

static void on_disc(void *ctx, MQTTAsync_successData5 *r)
{
	(void)r;
	push_simple(ctx, KD_EV_LOST, 0);
}

static void on_disc_fail(void *ctx, MQTTAsync_failureData5 *r)
{
	(void)r;
	push_simple(ctx, KD_EV_LOST, -1);
}

void kd_mqtt__disconnect(struct kd_mqtt *m, int timeout_ms)
{
	if (!m->c || !MQTTAsync_isConnected(m->c))
		return;
	MQTTAsync_disconnectOptions o = MQTTAsync_disconnectOptions_initializer5;
	o.timeout = timeout_ms;
	o.onSuccess5 = on_disc;
	o.onFailure5 = on_disc_fail;
	o.context = m;
	if (MQTTAsync_disconnect(m->c, &o) != MQTTASYNC_SUCCESS)
		return;
	/* Wait for the callback's event (or the deadline); drop whatever else
	 * arrives meanwhile: keyd is stopping. */
	struct timespec t0, t;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		clock_gettime(CLOCK_MONOTONIC, &t);
		long left = timeout_ms - ((t.tv_sec - t0.tv_sec) * 1000L + (t.tv_nsec - t0.tv_nsec) / 1000000L);
		struct pollfd pf = { m->pipe[0], POLLIN, 0 };
		if (left <= 0 || poll(&pf, 1, (int)left) <= 0)
			return;
		struct kd_ev *ev;
		bool done = false;
		while ((ev = kd_mqtt__next(m)) != NULL) {
			done = done || ev->type == KD_EV_LOST;
			kd_mqtt__ev_free(ev);
		}
		if (done)
			return;
	}
}

void kd_mqtt__free(struct kd_mqtt **mp)
{
	if (!mp || !*mp)
		return;
	struct kd_mqtt *m = *mp;
	if (m->c)
		MQTTAsync_destroy(&m->c);
	struct kd_ev *ev;
	while ((ev = m->head)) {
		m->head = ev->next;
		kd_mqtt__ev_free(ev);
	}
	struct out *o, *tmp;
	HASH_ITER(hh, m->outs, o, tmp) {
		HASH_DEL(m->outs, o);
		out_free(o);
	}
	for (int i = 0; i < 2; i++)
		if (m->pipe[i] >= 0)
			close(m->pipe[i]);
	pthread_mutex_destroy(&m->mu);
	veil_identity_free(&m->id);
	free(m);
	*mp = NULL;
}
