/*
 * libveil's shared half (shim.h): loading options into secrets and state,
 * sealing before publish, opening before delivery, login material, stats,
 * logging, and the single Paho-code translation. Both flavours call in here
 * so the security decisions exist once.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "shim.h"

void veil__log(struct veil__shim *s, int level, const char *fmt, ...)
{
	if (!s->log)
		return;
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	s->log(s->log_ctx, level, buf);
}

int veil__mqtt_err(struct veil__shim *s, int rc)
{
	if (rc == 0)
		return VEIL_OK;
	if (s) {
		pthread_mutex_lock(&s->lock);
		s->stats.last_mqtt_rc = rc;
		pthread_mutex_unlock(&s->lock);
	}
	switch (rc) {
	/* MQTT 3.1.1 CONNACK return codes. */
	case 2: /* identifier rejected */
	case 4: /* bad user name or password */
	case 5: /* not authorized */
	/* MQTT 5 reason codes that mean "you may not". */
	case MQTTREASONCODE_CLIENT_IDENTIFIER_NOT_VALID:
	case MQTTREASONCODE_BAD_USER_NAME_OR_PASSWORD:
	case MQTTREASONCODE_NOT_AUTHORIZED:
	case MQTTREASONCODE_BANNED:
	case MQTTREASONCODE_BAD_AUTHENTICATION_METHOD:
	case MQTTREASONCODE_TOPIC_FILTER_INVALID:
	case MQTTREASONCODE_TOPIC_NAME_INVALID:
		return VEIL_ERR_AUTH;
	/* Paho caller errors (same numbers in MQTTClient and MQTTAsync). */
	case MQTTCLIENT_BAD_UTF8_STRING:
	case MQTTCLIENT_NULL_PARAMETER:
	case MQTTCLIENT_TOPICNAME_TRUNCATED:
	case MQTTCLIENT_BAD_STRUCTURE:
	case MQTTCLIENT_BAD_QOS:
	case MQTTASYNC_BAD_MQTT_OPTION:
	case MQTTASYNC_WRONG_MQTT_VERSION:
		return VEIL_ERR_INVAL;
	default:
		return VEIL_ERR_MQTT;
	}
}

/*
 * libveil links both Paho libraries (sync and async flavours). Their common
 * exported functions (MQTTProperties_*, MQTTResponse_free, ...) then resolve
 * to whichever library the process loaded first, and each library's heap
 * tracker only works while a handle of its own kind exists: without one,
 * MQTT 5 property memory handed between the two is never released. One idle,
 * never-connected handle of each kind for the life of the process keeps both
 * initialised; they open no socket and start no thread.
 */
static MQTTAsync anchor_async;
static MQTTClient anchor_sync;

static void anchor_create(void)
{
	if (MQTTAsync_create(&anchor_async, "tcp://127.0.0.1:1", "veil-heap-anchor-a", MQTTCLIENT_PERSISTENCE_NONE,
	                     NULL) != MQTTASYNC_SUCCESS)
		anchor_async = NULL;
	if (MQTTClient_create(&anchor_sync, "tcp://127.0.0.1:1", "veil-heap-anchor-s", MQTTCLIENT_PERSISTENCE_NONE,
	                      NULL) != MQTTCLIENT_SUCCESS)
		anchor_sync = NULL;
}

void veil__paho_anchor(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, anchor_create);
}

static int send_service(void *ctx, const char *topic, const uint8_t *payload, size_t len);
static bool held_again(void *ctx, void *handle, bool expired);

static char *dup_str(const char *p)
{
	return p ? strdup(p) : NULL;
}

static void session_log(void *ctx, int level, const char *msg)
{
	struct veil__shim *s = ctx;
	if (s->log)
		s->log(s->log_ctx, level, msg);
}

/* The options' own consistency; the reason goes to the log callback, so a
 * refusal is never silent. */
static int check_options(const struct veil_client_options *o)
{
	const char *why = NULL;
	if (!o)
		return VEIL_ERR_INVAL;
	if (o->version < 2 || o->version > VEIL_CLIENT_OPTIONS_VERSION)
		why = "options.version is not VEIL_CLIENT_OPTIONS_VERSION (compiled against another libveil?)";
	else if (!o->server_uri || !o->client_id)
		why = "a server URI and a client id are required";
	else if (!o->keyring_path && o->key_service == VEIL_KEYS_OFF)
		why = "a keyring is required without the key service";
	else if (o->mqtt_version != 0 && o->mqtt_version != VEIL_MQTT_5 && o->mqtt_version != VEIL_MQTT_311)
		why = "mqtt_version must be VEIL_MQTT_5 or VEIL_MQTT_311";
	else if (o->auth == VEIL_AUTH_TOKEN && (!o->identity_path || !o->credential_path))
		why = "token login needs an identity and a credential";
	else if (o->auth == VEIL_AUTH_PASSWORD && !o->username)
		why = "password login needs a username";
	else if (o->auth != VEIL_AUTH_TOKEN && o->auth != VEIL_AUTH_PASSWORD && o->auth != VEIL_AUTH_NONE)
		why = "unknown auth mode";
	else if (o->credential_path && !o->identity_path)
		why = "a credential needs its identity file";
	else if (strlen(o->client_id) > VEIL_CLIENT_ID_MAX)
		why = "client id longer than 128 bytes";
	else if (o->keepalive_s < 0 || o->connect_timeout_s < 0)
		why = "negative keepalive or connect timeout";
	else if (o->key_service < VEIL_KEYS_AUTO || o->key_service > VEIL_KEYS_OFF)
		why = "unknown key_service";
	if (!why)
		return VEIL_OK;
	if (o->log) {
		char msg[256];
		snprintf(msg, sizeof(msg), "options refused: %s (%s)", why, veil_errname(VEIL_ERR_INVAL));
		o->log(o->log_ctx, VEIL_LOG_ERROR, msg);
	}
	return VEIL_ERR_INVAL;
}

int veil__shim_init(struct veil__shim *s, const struct veil_client_options *o)
{
	memset(s, 0, sizeof(*s));
	int rc = check_options(o);
	if (rc != VEIL_OK)
		return rc;
	if (veil_init() != VEIL_OK)
		return VEIL_ERR_NOMEM;
	pthread_mutex_init(&s->lock, NULL);
	s->log = o->log;
	s->log_ctx = o->log_ctx;
	s->mqtt_version = o->mqtt_version ? o->mqtt_version : VEIL_MQTT_5;
	s->auth = o->auth;
	s->password_form = o->password_form;
	s->tls = !strncmp(o->server_uri, "ssl://", 6) || !strncmp(o->server_uri, "mqtts://", 8);
	s->tls_no_hostname_check = o->tls.no_hostname_check;
	if ((o->tls.ca_file && !(s->tls_ca_file = strdup(o->tls.ca_file))) ||
	    (o->tls.cert_file && !(s->tls_cert_file = strdup(o->tls.cert_file))) ||
	    (o->tls.key_file && !(s->tls_key_file = strdup(o->tls.key_file)))) {
		rc = VEIL_ERR_NOMEM;
		goto fail;
	}
	s->keepalive_s = o->keepalive_s ? o->keepalive_s : 60;
	s->connect_timeout_s = o->connect_timeout_s ? o->connect_timeout_s : 10;
	s->persistent_session = o->persistent_session;
	/* MQTT 5 ends a session at disconnect unless it is given an expiry. */
	s->session_expiry_s = o->session_expiry_s ? o->session_expiry_s : (o->persistent_session ? 86400U : 0U);
	if (o->will_topic) {
		if ((!o->will_payload && o->will_len) || o->will_qos < 0 || o->will_qos > 2 ||
		    o->will_len > VEIL_MAX_PLAINTEXT) {
			rc = VEIL_ERR_INVAL;
			goto fail;
		}
		s->will_len = o->will_len;
		s->will_qos = o->will_qos;
		s->will_retained = o->will_retained;
		if (!(s->will_topic = strdup(o->will_topic)) || !(s->will_payload = sodium_malloc(o->will_len + 1))) {
			rc = VEIL_ERR_NOMEM;
			goto fail;
		}
		if (o->will_len)
			memcpy(s->will_payload, o->will_payload, o->will_len);
	}
	s->auto_reconnect = o->auto_reconnect;
	if (!(s->server_uri = dup_str(o->server_uri)) || !(s->client_id = dup_str(o->client_id)) ||
	    (o->username && !(s->username = dup_str(o->username)))) {
		rc = VEIL_ERR_NOMEM;
		goto fail;
	}
	if (o->password) {
		size_t n = strlen(o->password) + 1;
		if (!(s->password = sodium_malloc(n))) {
			rc = VEIL_ERR_NOMEM;
			goto fail;
		}
		memcpy(s->password, o->password, n);
	}
	struct veil__session_opts so = {
		.client_id = o->client_id,
		.audience = o->version >= 3 ? o->audience : NULL, /* version 2 options end before it */
		.identity_path = o->identity_path,
		.credential_path = o->credential_path,
		.keyring_path = o->keyring_path,
		.authority_path = o->authority_path,
		.key_service = o->key_service == VEIL_KEYS_ON    ? VEIL__KEYS_ON
		               : o->key_service == VEIL_KEYS_OFF ? VEIL__KEYS_OFF
		                                                 : VEIL__KEYS_AUTO,
		.state_dir = o->state_dir,
		.token_login = o->auth == VEIL_AUTH_TOKEN,
		.sign_all = o->sign_all,
		.refuse_plaintext_send = o->refuse_plaintext,
		.max_per_key = o->max_senders,
		.log = session_log,
		.log_ctx = s,
	};
	char err[768] = "";
	rc = veil__session_new(&so, &s->ses, err, sizeof(err));
	if (rc == VEIL_OK)
		rc = veil__receiver_new(s->ses, o->client_id, &s->rcv, err, sizeof(err));
	if (rc != VEIL_OK) {
		veil__log(s, VEIL_LOG_ERROR, "%s", err[0] ? err : veil_strerror(rc));
		goto fail;
	}
	veil__session_set_send(s->ses, send_service, s);
	veil__receiver_set_held(s->rcv, held_again, s);
	return VEIL_OK;
fail:
	veil__shim_fini(s);
	return rc;
}

void veil__shim_save_state(struct veil__shim *s)
{
	veil__receiver_save(s->rcv);
}

void veil__shim_detach(struct veil__shim *s)
{
	veil__session_set_send(s->ses, NULL, NULL);
}

void veil__shim_fini(struct veil__shim *s)
{
	veil__receiver_free(&s->rcv);
	veil__session_free(&s->ses);
	if (s->password)
		sodium_free(s->password); /* sodium_free wipes */
	free(s->server_uri);
	free(s->client_id);
	free(s->username);
	free(s->tls_ca_file);
	free(s->tls_cert_file);
	free(s->tls_key_file);
	free(s->will_topic);
	if (s->will_payload)
		sodium_free(s->will_payload);
	pthread_mutex_destroy(&s->lock);
	memset(s, 0, sizeof(*s));
}

/* ---- login ---- */

static int add_auth_props(MQTTProperties *props, const uint8_t *tok, size_t tok_len)
{
	MQTTProperty p;
	memset(&p, 0, sizeof(p));
	p.identifier = MQTTPROPERTY_CODE_AUTHENTICATION_METHOD;
	p.value.data.data = (char *)VEIL_AUTH_METHOD;
	p.value.data.len = (int)strlen(VEIL_AUTH_METHOD);
	if (MQTTProperties_add(props, &p) != 0)
		return VEIL_ERR_NOMEM;
	memset(&p, 0, sizeof(p));
	p.identifier = MQTTPROPERTY_CODE_AUTHENTICATION_DATA;
	p.value.data.data = (char *)tok; /* Paho copies */
	p.value.data.len = (int)tok_len;
	return MQTTProperties_add(props, &p) == 0 ? VEIL_OK : VEIL_ERR_NOMEM;
}

int veil__shim_login(struct veil__shim *s, struct veil__login *l)
{
	memset(l, 0, sizeof(*l));
	MQTTProperties init = MQTTProperties_initializer;
	l->props = init;
	if (s->will_topic) {
		/* Sealed now, for this connection: a Will is a publish like any
		 * other (its sequence number is used once). */
		uint8_t *env = NULL;
		size_t env_len = 0;
		int rc = veil__session_seal_will(s->ses, s->will_topic, s->will_payload, s->will_len, s->will_retained,
		                                 &env, &env_len);
		if (rc != VEIL_OK)
			return rc;
		l->will = env;
		l->will_len = env_len;
	}
	if (s->mqtt_version == VEIL_MQTT_5 && s->session_expiry_s) {
		MQTTProperty p;
		memset(&p, 0, sizeof(p));
		p.identifier = MQTTPROPERTY_CODE_SESSION_EXPIRY_INTERVAL;
		p.value.integer4 = s->session_expiry_s;
		if (MQTTProperties_add(&l->props, &p) != 0)
			return VEIL_ERR_NOMEM;
	}
	if (s->auth == VEIL_AUTH_NONE)
		return VEIL_OK;
	if (s->auth == VEIL_AUTH_PASSWORD) {
		l->username = s->username;
		l->password = s->password;
		return VEIL_OK;
	}
	int rc = veil__session_token(s->ses, &l->tok);
	if (rc == VEIL_OK) {
		if (s->mqtt_version == VEIL_MQTT_5 && !s->password_form) {
			rc = add_auth_props(&l->props, l->tok.tok, l->tok.len);
		} else {
			l->username = s->client_id;
			l->password = l->tok.password;
		}
	}
	if (rc != VEIL_OK)
		veil__shim_login_wipe(l);
	return rc;
}

void veil__shim_login_wipe(struct veil__login *l)
{
	/* A token is single-use but valid for the freshness window: do not leave it around. */
	for (int i = 0; i < l->props.count; i++) {
		MQTTProperty *p = &l->props.array[i];
		if (p->identifier == MQTTPROPERTY_CODE_AUTHENTICATION_DATA && p->value.data.data)
			sodium_memzero(p->value.data.data, (size_t)p->value.data.len);
	}
	MQTTProperties_free(&l->props);
	veil__token_wipe(&l->tok);
	l->password = NULL;
	veil__sealed_release(l->will, l->will_len, NULL);
	l->will = NULL;
}

/* ---- seal and open ---- */

int veil__shim_seal(struct veil__shim *s, const char *topic, const void *payload, size_t len, bool retained,
                    uint8_t *stackbuf, size_t stackcap, uint8_t **out, size_t *out_len)
{
	bool sealed = false;
	return veil__session_seal(s->ses, topic, payload, len, retained, stackbuf, stackcap, out, out_len, &sealed);
}

static void hex(const uint8_t *in, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * n] = '\0';
}

/* A message kept until the key service grants its key (veil__receiver_hold). */
struct held {
	char *topic;
	uint8_t *payload;
	size_t len;
	int qos;
	bool retained, dup;
	MQTTProperties props;
};

static void held_free(struct held *h)
{
	if (!h)
		return;
	free(h->topic);
	free(h->payload); /* an envelope: ciphertext */
	MQTTProperties_free(&h->props);
	free(h);
}

static struct held *held_new(const char *topic, size_t topic_len, const void *payload, size_t len, int qos,
                             bool retained, bool dup, const MQTTProperties *props)
{
	struct held *h = calloc(1, sizeof(*h));
	if (!h)
		return NULL;
	h->topic = topic_len ? strndup(topic, topic_len) : strdup(topic);
	h->payload = malloc(len ? len : 1);
	h->len = len;
	h->qos = qos;
	h->retained = retained;
	h->dup = dup;
	MQTTProperties init = MQTTProperties_initializer;
	h->props = props ? MQTTProperties_copy(props) : init;
	if (!h->topic || !h->payload) {
		held_free(h);
		return NULL;
	}
	if (len)
		memcpy(h->payload, payload, len);
	return h;
}

static bool deliver(struct veil__shim *s, const char *topic, size_t topic_len, const void *payload, size_t len,
                    int qos, bool retained, bool dup, const MQTTProperties *props, bool again);

/* The core's held_fn: the key may have come (open again) or the deadline
 * passed (the core counted and logged the refusal). */
static bool held_again(void *ctx, void *handle, bool expired)
{
	struct veil__shim *s = ctx;
	struct held *h = handle;
	if (expired) {
		pthread_mutex_lock(&s->lock);
		veil_refusal_cb on_refusal = s->on_refusal;
		void *cb_ctx = s->cb_ctx;
		pthread_mutex_unlock(&s->lock);
		struct veil_refusal r = { h->topic, VEIL_ERR_UNKNOWN_KEY, h->len, h->qos, h->retained };
		if (on_refusal)
			on_refusal(cb_ctx, &r);
		held_free(h);
		return true;
	}
	/* Still waiting: the core keeps the handle; else delivered or refused. */
	if (!deliver(s, h->topic, 0, h->payload, h->len, h->qos, h->retained, h->dup,
	             h->props.count ? &h->props : NULL, true))
		return false;
	held_free(h);
	return true;
}

static int send_service(void *ctx, const char *topic, const uint8_t *payload, size_t len)
{
	struct veil__shim *s = ctx;
	return s->raw_publish ? s->raw_publish(s, topic, payload, len) : VEIL_ERR_INVAL;
}

void veil__shim_connected(struct veil__shim *s)
{
	if (!veil__session_key_service(s->ses) || !s->subscribe_service)
		return;
	const char *topics[2];
	int n = (int)veil__session_topics(s->ses, topics);
	int rc = s->subscribe_service(s, (char *const *)topics, n);
	if (rc != VEIL_OK)
		veil__log(s, VEIL_LOG_ERROR, "cannot subscribe to the key service's topics (%s): no key updates",
		          veil_errname(rc));
	veil__session_connected(s->ses);
}

void veil__shim_disconnected(struct veil__shim *s)
{
	veil__session_disconnected(s->ses);
}

__thread int veil__in_callback;

int veil__shim_wait_keys(struct veil__shim *s, unsigned long timeout_ms)
{
	if (veil__session_ready(s->ses))
		return VEIL_OK;
	if (veil__in_callback) {
		veil__log(s, VEIL_LOG_ERROR, "waiting for the key service's keys inside a libveil callback would block "
		          "the thread that delivers them: refused (%s)", veil_errname(VEIL_ERR_INVAL));
		return VEIL_ERR_INVAL;
	}
	unsigned ms = timeout_ms > UINT32_MAX ? UINT32_MAX : (unsigned)timeout_ms;
	return veil__session_wait_ready(s->ses, ms, NULL, false) ? VEIL_OK : VEIL_ERR_TIMEOUT;
}

void veil__shim_deliver(struct veil__shim *s, const char *topic, size_t topic_len, const void *payload,
                        size_t len, int qos, bool retained, bool dup, const MQTTProperties *props)
{
	/* Paho gives the topic's length (0 in some paths): 0 means NUL
	 * terminated to the core, as long as the topic has no NUL in it. */
	if (topic_len && strlen(topic) == topic_len)
		topic_len = 0;
	/* The key service's own messages are the core's, never the app's. */
	if (!topic_len && veil__session_service_topic(s->ses, topic)) {
		(void)veil__session_service_message(s->ses, topic, payload, len);
		return;
	}
	(void)deliver(s, topic, topic_len, payload, len, qos, retained, dup, props, false);
}

/* Open and hand to the app; false only when a held message still waits. */
static bool deliver(struct veil__shim *s, const char *topic, size_t topic_len, const void *payload, size_t len,
                    int qos, bool retained, bool dup, const MQTTProperties *props, bool again)
{
	uint8_t stackbuf[1024];
	uint8_t *pt = len + 1 <= sizeof(stackbuf) ? stackbuf : malloc(len + 1);
	struct veil_open_info info;
	memset(&info, 0, sizeof(info));
	size_t pt_len = 0;
	int rc = !pt   ? VEIL_ERR_NOMEM
	         : again ? veil__receiver_open_again(s->rcv, topic, topic_len, payload, len, pt, len + 1, &pt_len, &info)
	               : veil__receiver_open(s->rcv, topic, topic_len, payload, len, pt, len + 1, &pt_len, &info);
	if (rc == VEIL__WAIT) {
		if (pt && pt != stackbuf)
			free(pt);
		if (again)
			return false; /* still waiting: the core keeps the handle */
		struct held *h = held_new(topic, topic_len, payload, len, qos, retained, dup, props);
		if (h && veil__receiver_hold(s->rcv, h, h->topic) == VEIL_OK)
			return true;
		held_free(h);
		rc = VEIL_ERR_UNKNOWN_KEY; /* counted and logged by the core */
		pt = NULL;
	}
	pthread_mutex_lock(&s->lock);
	veil_message_cb on_message = s->on_message;
	veil_refusal_cb on_refusal = s->on_refusal;
	void *ctx = s->cb_ctx;
	pthread_mutex_unlock(&s->lock);

	if (rc == VEIL_OK) {
		struct veil_message m;
		memset(&m, 0, sizeof(m));
		m.topic = topic;
		m.payload = pt;
		m.len = pt_len;
		m.qos = qos;
		m.retained = retained;
		m.dup = dup;
		m.is_signed = info.is_signed;
		m.plaintext = info.plaintext;
		memcpy(m.sender, info.sender, sizeof(m.sender));
		hex(info.sender, sizeof(info.sender), m.sender_hex);
		m.sender_client_id = info.client_id;
		m.seq = info.seq;
		m.key_id = info.key_id;
		m.properties = props;
		if (on_message)
			on_message(ctx, &m);
	} else {
		bool bad_topic = topic_len && strnlen(topic, topic_len) != topic_len;
		struct veil_refusal r = { bad_topic ? "" : topic, rc, len, qos, retained };
		if (on_refusal)
			on_refusal(ctx, &r);
	}
	if (pt) {
		sodium_memzero(pt, len + 1);
		if (pt != stackbuf)
			free(pt);
	}
	return true;
}

void veil__shim_tls(const struct veil__shim *s, MQTTClient_SSLOptions *o)
{
	MQTTClient_SSLOptions init = MQTTClient_SSLOptions_initializer;
	*o = init;
	o->trustStore = s->tls_ca_file;
	o->keyStore = s->tls_cert_file;
	o->privateKey = s->tls_key_file;
	o->enableServerCertAuth = 1;
	o->verify = s->tls_no_hostname_check ? 0 : 1;
}

void veil__shim_tls_async(const struct veil__shim *s, MQTTAsync_SSLOptions *o)
{
	MQTTAsync_SSLOptions init = MQTTAsync_SSLOptions_initializer;
	*o = init;
	o->trustStore = s->tls_ca_file;
	o->keyStore = s->tls_cert_file;
	o->privateKey = s->tls_key_file;
	o->enableServerCertAuth = 1;
	o->verify = s->tls_no_hostname_check ? 0 : 1;
}

int veil__shim_reload(struct veil__shim *s)
{
	char err[768] = "";
	int rc = veil__session_reload(s->ses, err, sizeof(err));
	if (rc != VEIL_OK)
		veil__log(s, VEIL_LOG_ERROR, "keyring reload failed, the old keyring stays: %s", err);
	else
		veil__log(s, VEIL_LOG_INFO, "keyring reloaded");
	return rc;
}

const char *veil_mqtt_reason_text(int reason_code)
{
	/* Paho's table of MQTT 5 reason codes; SUBACK 0x80 of 3.1.1 reads as
	 * "Unspecified error", as MQTT 5 numbers it. */
	const char *t = MQTTReasonCode_toString((enum MQTTReasonCodes)reason_code);
	return t ? t : "unknown reason code";
}

void veil__disconnect_cause(int reason_code, char *out, size_t cap)
{
	snprintf(out, cap, "the broker disconnected this client: reason code 0x%02x, %s", (unsigned)reason_code,
	         veil_mqtt_reason_text(reason_code));
}

void veil__stats_copy(struct veil__shim *s, struct veil_client_stats *user)
{
	/* The caller's struct may be older (smaller) than ours: fill what it has. */
	size_t want = user->size;
	struct veil_client_stats all;
	struct veil_client_stats *out = &all;
	pthread_mutex_lock(&s->lock);
	*out = s->stats;
	pthread_mutex_unlock(&s->lock);
	struct veil__seal_stats ss;
	struct veil__recv_stats rs;
	veil__session_seal_stats(s->ses, &ss);
	veil__receiver_stats(s->rcv, &rs);
	out->published = ss.published;
	out->published_sealed = ss.published_sealed;
	out->publish_refused = ss.publish_refused;
	out->received = rs.received;
	out->delivered = rs.delivered;
	out->refused = rs.refused;
	for (size_t i = 0; i < VEIL_STATS_ERR_SLOTS; i++)
		out->refused_by_err[i] = rs.refused_by_err[i];
	out->size = sizeof(all);
	if (want > sizeof(all) || want < sizeof(size_t))
		want = sizeof(all);
	memcpy(user, &all, want);
	user->size = want;
}
