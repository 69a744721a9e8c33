/*
 * libveil_preload.so core: makes an unmodified Paho MQTT C application end to
 * end encrypted when loaded with LD_PRELOAD and VEIL_CONFIG=<client.conf>.
 *
 * This file owns the process-wide state: the config (config.c), one client
 * session (session.c: identity, credential, keyring, state, every security
 * rule, shared with libveil), one record per Paho handle (with its
 * receiver), and the seal / open / login adapters over the session.
 * The interposed Paho entry points live in preload_client.c (MQTTClient) and
 * preload_async.c (MQTTAsync).
 *
 * Setup is lazy (first Paho call) rather than in a constructor: LD_PRELOAD is
 * inherited by every child process (shells, helpers) that never touch MQTT,
 * and they must not fail or print. A setup failure is recorded, printed once,
 * and then every create/connect/publish fails: nothing is ever sent in clear.
 */
#define _GNU_SOURCE
#include "preload.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "config.h"

__thread int vpl_depth;
__thread int vpl_in_cb;
__thread const void *vpl_inflight;

static pthread_once_t once = PTHREAD_ONCE_INIT;
/* Guards everything below after setup: Paho delivers on its own threads
 * while the app publishes from others. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static struct {
	bool ready;
	char err[768];
	struct veil_config cfg;
	struct veil__session *ses;
	struct vpl_handle *handles;
	struct veil__recv_stats gone;    /* counters of destroyed handles, for the summary */
} g;

__attribute__((format(printf, 1, 0))) static void vlog(const char *fmt, va_list ap)
{
	char line[1024];
	vsnprintf(line, sizeof(line), fmt, ap);
	fprintf(stderr, "%s: %s\n", VPL_TAG, line);
}

void vpl_loud(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vlog(fmt, ap);
	va_end(ap);
}

void vpl_log(const char *fmt, ...)
{
	if (g.cfg.log == VEIL_CONFIG_LOG_NONE)
		return;
	va_list ap;
	va_start(ap, fmt);
	vlog(fmt, ap);
	va_end(ap);
}

void *vpl_real(const char *name)
{
	void *p = dlsym(RTLD_NEXT, name);
	if (!p)
		vpl_loud("%s not found in the application's Paho library (%s)", name, dlerror());
	return p;
}

__attribute__((format(printf, 1, 2))) static void fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(g.err, sizeof(g.err), fmt, ap);
	va_end(ap);
}

/* The session core's lines: refusals of the app's own actions and setup
 * errors always; what an attacker can trigger (refused incoming messages)
 * only with "log stderr". */
static void session_log(void *ctx, int level, const char *msg)
{
	(void)ctx;
	if (level <= VEIL__LOG_WARNING)
		vpl_loud("%s", msg);
	else
		vpl_log("%s", msg);
}

static int send_service(void *ctx, const char *topic, const uint8_t *payload, size_t len);

static void setup(void)
{
	if (veil_init() != VEIL_OK) {
		fail("libsodium failed to initialise");
		return;
	}
	const char *path = getenv("VEIL_CONFIG");
	if (!path || !*path) {
		fail("VEIL_CONFIG is not set: refusing to run an MQTT client without end-to-end encryption");
		return;
	}
	char err[768] = "";
	int rc = veil_config_load(path, &g.cfg, err, sizeof(err));
	if (rc != VEIL_OK) {
		fail("config: %s (%s)", err, veil_errname(rc));
		return;
	}
	/* Without a client_id line the session takes the credential's. */
	struct veil__session_opts so = {
		.client_id = g.cfg.client_id,
		.audience = g.cfg.audience,
		.identity_path = g.cfg.identity,
		.credential_path = g.cfg.credential,
		.keyring_path = g.cfg.keyring,
		.authority_path = g.cfg.authorities,
		.key_service = g.cfg.key_service == VEIL_CONFIG_KEYS_ON    ? VEIL__KEYS_ON
		               : g.cfg.key_service == VEIL_CONFIG_KEYS_OFF ? VEIL__KEYS_OFF
		                                                           : VEIL__KEYS_AUTO,
		.state_dir = g.cfg.state_dir,
		.token_login = g.cfg.auth == VEIL_CONFIG_AUTH_CREDENTIAL,
		.sign_all = g.cfg.sign == VEIL_CONFIG_SIGN_ALWAYS,
		.log = session_log,
	};
	rc = veil__session_new(&so, &g.ses, err, sizeof(err));
	if (rc != VEIL_OK) {
		fail("%s", err);
		return;
	}
	veil__session_set_send(g.ses, send_service, NULL);
	g.ready = true;
}

bool vpl_ready(void)
{
	pthread_once(&once, setup);
	if (!g.ready) {
		/* Printed on every refused call: a daemon's log may start late. */
		vpl_loud("NOT ACTIVE, refusing MQTT operation: %s", g.err);
	}
	return g.ready;
}

const char *vpl_error(void)
{
	return g.err;
}

struct veil__session *vpl_session(void)
{
	return g.ses;
}

const char *vpl_client_id(const char *app_id)
{
	const char *cred_id = g.cfg.credential ? veil__session_client_id(g.ses) : NULL;
	if (g.cfg.auth == VEIL_CONFIG_AUTH_CREDENTIAL && cred_id) {
		if (!app_id || strcmp(app_id, cred_id) != 0)
			vpl_log("client id '%s' replaced by the credential's '%s'", app_id ? app_id : "(null)", cred_id);
		return cred_id;
	}
	if (g.cfg.client_id)
		return g.cfg.client_id;
	return app_id;
}

/* ---- the key service and held messages ---- */

/* The connection the key service talks on: the latest one that connected
 * as the session's client id. */
static struct vpl_handle *service_handle;
/* Held across a send on service_handle (taken before lock): the app's
 * destroy waits for a send under way before Paho's handle goes. */
static pthread_mutex_t service_lock = PTHREAD_MUTEX_INITIALIZER;

static int send_service(void *ctx, const char *topic, const uint8_t *payload, size_t len)
{
	(void)ctx;
	pthread_mutex_lock(&service_lock);
	pthread_mutex_lock(&lock);
	struct vpl_handle *h = service_handle;
	pthread_mutex_unlock(&lock);
	int rc = h && h->raw_publish ? h->raw_publish(h, topic, payload, len) : VEIL_ERR_INVAL;
	pthread_mutex_unlock(&service_lock);
	return rc;
}

void vpl_handle_forget(void *handle)
{
	pthread_mutex_lock(&service_lock);
	pthread_mutex_lock(&lock);
	bool ours = service_handle && service_handle->handle == handle;
	if (ours)
		service_handle = NULL;
	pthread_mutex_unlock(&lock);
	pthread_mutex_unlock(&service_lock);
	if (ours)
		veil__session_disconnected(g.ses);
}

bool vpl_connected(struct vpl_handle *h)
{
	const char *cid = veil__session_client_id(g.ses);
	if (!h || !veil__session_key_service(g.ses) || !h->client_id || !cid || strcmp(h->client_id, cid) != 0)
		return false;
	pthread_mutex_lock(&lock);
	service_handle = h;
	pthread_mutex_unlock(&lock);
	const char *topics[2];
	int n = (int)veil__session_topics(g.ses, topics);
	if (!h->subscribe_service || h->subscribe_service(h, (char *const *)topics, n) != VEIL_OK)
		vpl_loud("cannot subscribe to the key service's topics: no key updates on '%s'", h->client_id);
	veil__session_connected(g.ses);
	return true;
}

void vpl_disconnected(struct vpl_handle *h)
{
	pthread_mutex_lock(&lock);
	bool ours = service_handle == h;
	pthread_mutex_unlock(&lock);
	if (ours)
		veil__session_disconnected(g.ses);
}

/* A message kept until its key arrives: Paho's own objects, so the app
 * frees them as usual once it gets them. */
struct vpl_held {
	struct vpl_handle *h;
	char *topic;
	int topic_len;
	void *m;
	void *payload;
	int *len;
};

static bool held_again(void *ctx, void *handle, bool expired)
{
	(void)ctx;
	struct vpl_held *k = handle;
	struct vpl_handle *h = k->h;
	bool done = true;
	if (expired) {
		h->free_message(k->m, k->topic); /* the core counted and logged it */
	} else {
		int rc = vpl_open_inplace_again(h, k->topic, k->topic_len, k->payload, k->len);
		if (rc == VEIL__WAIT)
			done = false;
		else if (rc == VEIL_OK)
			h->app_deliver(h, k->topic, k->topic_len, k->m);
		else
			h->free_message(k->m, k->topic);
	}
	if (done)
		free(k);
	return done;
}

int vpl_topic_len(const char *topic, int topic_len)
{
	return topic && topic_len > 0 && (size_t)topic_len == strlen(topic) ? 0 : topic_len;
}

enum vpl_arrival vpl_arrived(struct vpl_handle *h, char *topic, int topic_len, void *m, void *payload, int *len)
{
	topic_len = vpl_topic_len(topic, topic_len);
	/* The key service's own messages are the core's, never the app's. */
	if (topic && topic_len == 0 && veil__session_service_topic(g.ses, topic)) {
		(void)veil__session_service_message(g.ses, topic, payload, *len > 0 ? (size_t)*len : 0);
		h->free_message(m, topic);
		return VPL_TAKEN;
	}
	int rc = vpl_open_inplace(h, topic, topic_len, payload, len);
	if (rc == VEIL_OK)
		return VPL_DELIVER;
	if (rc == VEIL__WAIT) {
		struct vpl_held *k = calloc(1, sizeof(*k));
		if (k) {
			*k = (struct vpl_held){ h, topic, topic_len, m, payload, len };
			if (veil__receiver_hold(h->rcv, k, topic) == VEIL_OK)
				return VPL_TAKEN;
			free(k);
		} else {
			(void)veil__receiver_hold(h->rcv, NULL, topic); /* counts and logs the refusal */
		}
	}
	h->free_message(m, topic);
	return VPL_TAKEN;
}

struct vpl_handle *vpl_handle_new(void *handle, bool async, const char *client_id)
{
	char err[768] = "";
	struct vpl_handle *h = calloc(1, sizeof(*h));
	int rc = h ? VEIL_OK : VEIL_ERR_NOMEM;
	if (h) {
		h->handle = handle;
		h->async = async;
		if (client_id && !(h->client_id = strdup(client_id)))
			rc = VEIL_ERR_NOMEM;
	}
	if (rc == VEIL_OK)
		rc = veil__receiver_new(g.ses, client_id ? client_id : "", &h->rcv, err, sizeof(err));
	if (rc != VEIL_OK) {
		/* This client never runs: said like a setup failure (the text is
		 * libveil's, docs/PRELOAD.md "Errors and counters"). */
		if (!err[0])
			snprintf(err, sizeof(err), "out of memory registering the client (%s)", veil_errname(rc));
		vpl_loud("NOT ACTIVE, refusing MQTT operation: %s", err);
		if (h)
			free(h->client_id);
		free(h);
		return NULL;
	}
	veil__receiver_set_held(h->rcv, held_again, NULL);
	pthread_mutex_init(&h->pump_lock, NULL);
	pthread_mutex_init(&h->q_lock, NULL);
	pthread_mutex_lock(&lock);
	h->next = g.handles;
	g.handles = h;
	pthread_mutex_unlock(&lock);
	return h;
}

struct vpl_handle *vpl_handle_find(void *handle)
{
	pthread_mutex_lock(&lock);
	struct vpl_handle *h = g.handles;
	while (h && h->handle != handle)
		h = h->next;
	pthread_mutex_unlock(&lock);
	return h;
}

static void stats_add(struct veil__recv_stats *t, const struct veil__recv_stats *st)
{
	t->received += st->received;
	t->delivered += st->delivered;
	t->refused += st->refused;
	for (size_t i = 0; i < sizeof(t->refused_by_err) / sizeof(t->refused_by_err[0]); i++)
		t->refused_by_err[i] += st->refused_by_err[i];
}

void vpl_handle_free(void *handle)
{
	pthread_mutex_lock(&lock);
	struct vpl_handle **pp = &g.handles;
	while (*pp && (*pp)->handle != handle)
		pp = &(*pp)->next;
	struct vpl_handle *h = *pp;
	if (h) {
		*pp = h->next;
		struct veil__recv_stats st;
		veil__receiver_stats(h->rcv, &st);
		stats_add(&g.gone, &st); /* still counted in the exit summary */
	}
	pthread_mutex_unlock(&lock);
	if (!h)
		return;
	veil__receiver_free(&h->rcv); /* saves the windows */
	struct vpl_queued q;
	while (vpl_queue_pop(h, &q))
		h->free_message(q.m, q.topic); /* never received by the app */
	pthread_mutex_destroy(&h->q_lock);
	pthread_mutex_destroy(&h->pump_lock);
	free(h->client_id);
	free(h);
}

void vpl_queue_push(struct vpl_handle *h, char *topic, int topic_len, int rc, void *m, bool opened)
{
	struct vpl_queued *q = calloc(1, sizeof(*q));
	if (!q) {
		vpl_loud("out of memory queueing a message on '%s' for the app: dropped", topic ? topic : "?");
		h->free_message(m, topic);
		return;
	}
	*q = (struct vpl_queued){ NULL, topic, topic_len, rc, m, opened };
	pthread_mutex_lock(&h->q_lock);
	if (h->q_tail)
		h->q_tail->next = q;
	else
		h->q_head = q;
	h->q_tail = q;
	pthread_mutex_unlock(&h->q_lock);
}

bool vpl_queue_pop(struct vpl_handle *h, struct vpl_queued *out)
{
	pthread_mutex_lock(&h->q_lock);
	struct vpl_queued *q = h->q_head;
	if (q) {
		h->q_head = q->next;
		if (!h->q_head)
			h->q_tail = NULL;
	}
	pthread_mutex_unlock(&h->q_lock);
	if (!q)
		return false;
	*out = *q;
	out->next = NULL;
	free(q);
	return true;
}

int vpl_seal(const char *topic, const void *pt, size_t len, bool retained, uint8_t **out, size_t *out_len)
{
	bool sealed = false;
	return veil__session_seal(g.ses, topic, pt, len, retained, NULL, 0, out, out_len, &sealed);
}

int vpl_seal_will(const char *topic, const void *pt, size_t len, bool retained, uint8_t **out, size_t *out_len)
{
	return veil__session_seal_will(g.ses, topic, pt, len, retained, out, out_len);
}

void vpl_sealed_free(uint8_t *buf, size_t len)
{
	veil__sealed_release(buf, len, NULL);
}

static int open_inplace(struct vpl_handle *h, const char *topic, int topic_len, void *payload, int *len, bool again);

int vpl_open_inplace(struct vpl_handle *h, const char *topic, int topic_len, void *payload, int *len)
{
	return open_inplace(h, topic, topic_len, payload, len, false);
}

int vpl_open_inplace_again(struct vpl_handle *h, const char *topic, int topic_len, void *payload, int *len)
{
	return open_inplace(h, topic, topic_len, payload, len, true);
}

static int open_inplace(struct vpl_handle *h, const char *topic, int topic_len, void *payload, int *len, bool again)
{
	if (!h || *len < 0 || (*len > 0 && !payload))
		return VEIL_ERR_INVAL;
	size_t in_len = (size_t)*len;
	/* Not in place: the AEAD output would overlap its input at an offset. */
	uint8_t *tmp = malloc(in_len + 1);
	if (!tmp)
		return VEIL_ERR_NOMEM;
	size_t out_len = 0;
	struct veil_open_info info;
	size_t tl = topic_len > 0 ? (size_t)topic_len : 0;
	int rc = again ? veil__receiver_open_again(h->rcv, topic, tl, payload, in_len, tmp, in_len + 1, &out_len, &info)
	               : veil__receiver_open(h->rcv, topic, tl, payload, in_len, tmp, in_len + 1, &out_len, &info);
	if (rc == VEIL_OK) {
		memcpy(payload, tmp, out_len);
		/* Apps often print payloads as C strings; the envelope was longer, so
		 * this byte is inside Paho's buffer unless the message was plaintext. */
		if (out_len < in_len)
			((uint8_t *)payload)[out_len] = 0;
		*len = (int)out_len;
	}
	sodium_memzero(tmp, in_len + 1);
	free(tmp);
	return rc;
}

bool vpl_login(const char *client_id, char *pw, size_t pwcap, int *rc)
{
	(void)client_id; /* the session's: vpl_client_id gave Paho the credential's id */
	*rc = VEIL_OK;
	if (g.cfg.auth != VEIL_CONFIG_AUTH_CREDENTIAL)
		return false;
	struct veil__token t;
	*rc = veil__session_token(g.ses, &t);
	if (*rc == VEIL_OK && snprintf(pw, pwcap, "%s", t.password) >= (int)pwcap)
		*rc = VEIL_ERR_INVAL;
	veil__token_wipe(&t);
	if (*rc != VEIL_OK)
		sodium_memzero(pw, pwcap);
	return true;
}

/* The counters of struct veil_client_stats, for an app that cannot ask:
 * "summary: received R, delivered D, dropped X (name=N, ...); published P
 * (sealed S), publishes refused F". Printed with "log stderr" when anything
 * was received or published; tests/broker/check_frontends.c reads it. */
static void summary(const struct veil__recv_stats *t)
{
	struct veil__seal_stats ss;
	veil__session_seal_stats(g.ses, &ss);
	if (!t->received && !ss.published && !ss.publish_refused)
		return;
	char why[1024] = "";
	size_t o = 0;
	for (size_t i = 1; i < sizeof(t->refused_by_err) / sizeof(t->refused_by_err[0]) && o < sizeof(why); i++) {
		if (t->refused_by_err[i])
			o += (size_t)snprintf(why + o, sizeof(why) - o, "%s%s=%llu", o ? ", " : " (",
			                      veil_errname(-(int)i), (unsigned long long)t->refused_by_err[i]);
	}
	if (o && o < sizeof(why))
		snprintf(why + o, sizeof(why) - o, ")");
	vpl_log("summary: received %llu, delivered %llu, dropped %llu%s; published %llu (sealed %llu), publishes "
	        "refused %llu", (unsigned long long)t->received, (unsigned long long)t->delivered,
	        (unsigned long long)t->refused, why, (unsigned long long)ss.published,
	        (unsigned long long)ss.published_sealed, (unsigned long long)ss.publish_refused);
}

__attribute__((destructor)) static void vpl_fini(void)
{
	if (!g.ready)
		return;
	/* Persist the receive windows; Paho threads may still run, so keep
	 * the structures themselves (the OS reclaims them). The sequence mark
	 * is persisted ahead of use, block by block. */
	pthread_mutex_lock(&lock);
	struct veil__recv_stats t = g.gone;
	for (struct vpl_handle *h = g.handles; h; h = h->next) {
		struct veil__recv_stats st;
		veil__receiver_save(h->rcv);
		veil__receiver_stats(h->rcv, &st);
		stats_add(&t, &st);
	}
	pthread_mutex_unlock(&lock);
	summary(&t);
}
