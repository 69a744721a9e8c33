/* The front-end fixture (see frontend_fixture.h). */
#define _GNU_SOURCE
#include "frontend_fixture.h"

#include <check.h>
#include <pthread.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <MQTTAsync.h>
#include <MQTTClient.h>
#include <sodium.h>

#include "files.h"
#include "preload_fixture.h"
#include "proc.h"
#include "timing.h"

const char *const ffx_name[FFX_N] = { "veil_client", "veil_async", "preload MQTTClient", "preload MQTTAsync" };
const char *const ffx_id[FFX_N] = { "fe-sync", "fe-async", "fe-psync", "fe-pasync" };

struct cfx ffx_env;
static char self_exe[512]; /* this binary: the app */

void ffx_pathf(char *out, size_t cap, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(out, cap, fmt, ap);
	va_end(ap);
	ck_assert(n >= 0 && (size_t)n < cap);
}

uint64_t ffx_now_us(void)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	return (uint64_t)tv.tv_sec * 1000000U + (uint64_t)tv.tv_usec;
}

/* ---- the preload's app: a plain Paho program, this binary run with --app ---- */

static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int step;   /* async request: 1 done, -1 failed */
	bool ended; /* FFX_END_TOPIC arrived */
} A = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, false };

static void app_got(const char *topic, int tlen, const void *p, int len)
{
	int tl = tlen > 0 ? tlen : (int)strlen(topic);
	printf("got %.*s %.*s\n", tl, topic, len, (const char *)p);
	pthread_mutex_lock(&A.lock);
	if ((size_t)tl == strlen(FFX_END_TOPIC) && !strncmp(topic, FFX_END_TOPIC, (size_t)tl))
		A.ended = true;
	pthread_cond_broadcast(&A.cond);
	pthread_mutex_unlock(&A.lock);
}

static bool app_wait(bool *flag, int *step, int base_ms)
{
	struct veil_deadline d = veil_deadline_in(base_ms);
	pthread_mutex_lock(&A.lock);
	while (!(flag ? *flag : *step != 0) && veil_cond_wait_until(&A.cond, &A.lock, &d))
		;
	bool ok = flag ? *flag : *step == 1;
	A.step = 0;
	pthread_mutex_unlock(&A.lock);
	return ok;
}

static void app_step(int v)
{
	pthread_mutex_lock(&A.lock);
	A.step = v;
	pthread_cond_broadcast(&A.cond);
	pthread_mutex_unlock(&A.lock);
}

static int sync_ma(void *ctx, char *topic, int tlen, MQTTClient_message *m)
{
	(void)ctx;
	app_got(topic, tlen, m->payload, m->payloadlen);
	MQTTClient_freeMessage(&m);
	MQTTClient_free(topic);
	return 1;
}

static int async_ma(void *ctx, char *topic, int tlen, MQTTAsync_message *m)
{
	(void)ctx;
	app_got(topic, tlen, m->payload, m->payloadlen);
	MQTTAsync_freeMessage(&m);
	MQTTAsync_free(topic);
	return 1;
}

static void a_ok(void *ctx, MQTTAsync_successData *d)
{
	(void)ctx;
	(void)d;
	app_step(1);
}

static void a_fail(void *ctx, MQTTAsync_failureData *d)
{
	(void)ctx;
	(void)d;
	app_step(-1);
}

/* argv: --app sync|async start|hold|sub|pub PORT [TOPIC [PAYLOAD]].
 * start: create and destroy; hold: create, then wait to be killed; sub:
 * subscribe TOPIC and FFX_END_TOPIC, print what arrives, exit after
 * FFX_END_TOPIC; pub: publish PAYLOAD on TOPIC at QoS 1. Exit 2: create
 * failed. */
static int app_main(int argc, char **argv)
{
	if (argc < 5)
		return 64;
	setvbuf(stdout, NULL, _IOLBF, 0);
	veil_cond_init(&A.cond);
	bool as = !strcmp(argv[2], "async");
	const char *mode = argv[3], *topic = argc > 5 ? argv[5] : NULL, *pt = argc > 6 ? argv[6] : "";
	bool sub = !strcmp(mode, "sub"), pub = !strcmp(mode, "pub");
	char uri[64];
	snprintf(uri, sizeof(uri), "tcp://127.0.0.1:%s", argv[4]);
	MQTTClient c = NULL;
	MQTTAsync a = NULL;
	int rc = as ? MQTTAsync_create(&a, uri, "app", MQTTCLIENT_PERSISTENCE_NONE, NULL)
	            : MQTTClient_create(&c, uri, "app", MQTTCLIENT_PERSISTENCE_NONE, NULL);
	if (rc != 0) {
		printf("create failed rc=%d\n", rc);
		return 2;
	}
	printf("create ok\n");
	if (!strcmp(mode, "hold")) {
		printf("holding\n");
		for (;;)
			pause(); /* until the test stops us */
	}
	int status = 0;
	if (sub || pub) {
		if (sub)
			rc = as ? MQTTAsync_setCallbacks(a, NULL, NULL, async_ma, NULL)
			        : MQTTClient_setCallbacks(c, NULL, NULL, sync_ma, NULL);
		if (rc == 0 && as) {
			MQTTAsync_connectOptions o = MQTTAsync_connectOptions_initializer;
			o.MQTTVersion = MQTTVERSION_3_1_1;
			o.onSuccess = a_ok;
			o.onFailure = a_fail;
			rc = MQTTAsync_connect(a, &o);
			rc = rc == 0 && app_wait(NULL, &A.step, 10000) ? 0 : -1;
		} else if (rc == 0) {
			MQTTClient_connectOptions o = MQTTClient_connectOptions_initializer;
			o.MQTTVersion = MQTTVERSION_3_1_1;
			rc = MQTTClient_connect(c, &o);
		}
		if (rc != 0) {
			printf("connect failed rc=%d\n", rc);
			status = 3;
		}
	}
	const char *filters[] = { topic, FFX_END_TOPIC };
	for (size_t i = 0; sub && status == 0 && i < 2; i++) {
		MQTTAsync_responseOptions r = MQTTAsync_responseOptions_initializer;
		r.onSuccess = a_ok;
		r.onFailure = a_fail;
		rc = as ? (MQTTAsync_subscribe(a, filters[i], 1, &r) == 0 && app_wait(NULL, &A.step, 10000) ? 0 : -1)
		        : MQTTClient_subscribe(c, filters[i], 1);
		if (rc != 0) {
			printf("subscribe failed rc=%d\n", rc);
			status = 4;
		}
	}
	if (sub && status == 0) {
		printf("subscribed\n");
		if (!app_wait(&A.ended, NULL, 30000)) {
			printf("no end marker\n");
			status = 5;
		}
	}
	if (pub && status == 0) {
		if (as) {
			MQTTAsync_message m = MQTTAsync_message_initializer;
			m.payload = (void *)pt;
			m.payloadlen = (int)strlen(pt);
			m.qos = 1;
			MQTTAsync_responseOptions r = MQTTAsync_responseOptions_initializer;
			r.onSuccess = a_ok;
			r.onFailure = a_fail;
			rc = MQTTAsync_sendMessage(a, topic, &m, &r);
			printf("publish rc=%d\n", rc);
			if (rc == 0 && !app_wait(NULL, &A.step, 10000))
				status = 6;
		} else {
			MQTTClient_message m = MQTTClient_message_initializer;
			m.payload = (void *)pt;
			m.payloadlen = (int)strlen(pt);
			m.qos = 1;
			MQTTClient_deliveryToken dt = 0;
			rc = MQTTClient_publishMessage(c, topic, &m, &dt);
			printf("publish rc=%d\n", rc);
			if (rc == 0 && MQTTClient_waitForCompletion(c, dt, (unsigned long)veil_test_ms(10000)) != 0)
				status = 6;
		}
	}
	if (as) {
		MQTTAsync_disconnectOptions d = MQTTAsync_disconnectOptions_initializer;
		d.onSuccess = a_ok;
		d.onFailure = a_fail;
		if (MQTTAsync_isConnected(a) && MQTTAsync_disconnect(a, &d) == 0)
			(void)app_wait(NULL, &A.step, 10000);
		MQTTAsync_destroy(&a);
	} else {
		if (MQTTClient_isConnected(c))
			MQTTClient_disconnect(c, 1000);
		MQTTClient_destroy(&c);
	}
	return status;
}

int ffx_main(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "--app"))
		return app_main(argc, argv);
	ssize_t n = readlink("/proc/self/exe", self_exe, sizeof(self_exe) - 1U);
	if (n <= 0)
		return EXIT_FAILURE;
	self_exe[n] = '\0';
	return -1;
}

/* ---- what one front end did, in the same words for all four ---- */

void ffx_text_add(struct ffx_text *t, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(t->s + t->n, sizeof(t->s) - t->n, fmt, ap);
	va_end(ap);
	ck_assert(n >= 0 && (size_t)n < sizeof(t->s) - t->n);
	t->n += (size_t)n;
}

/* The session core's lines about messages (the rest is front-end talk). */
static bool session_line(const char *msg)
{
	return strstr(msg, " DROPPED: ") || strstr(msg, " accepted in clear") || strstr(msg, " sent in clear") ||
	       strstr(msg, " REFUSED");
}

void ffx_counts_str(const struct ffx_counts *c, char *out, size_t cap)
{
	size_t o = (size_t)snprintf(out, cap, "received %llu, delivered %llu, refused %llu [",
	                            (unsigned long long)c->received, (unsigned long long)c->delivered,
	                            (unsigned long long)c->refused);
	for (int i = 1; i < VEIL_STATS_ERR_SLOTS && o < cap; i++)
		if (c->by_err[i])
			o += (size_t)snprintf(out + o, cap - o, " %s=%llu", veil_errname(-i), (unsigned long long)c->by_err[i]);
	if (o < cap)
		snprintf(out + o, cap - o, " ]; published %llu, sealed %llu, publishes refused %llu",
		         (unsigned long long)c->published, (unsigned long long)c->sealed,
		         (unsigned long long)c->publish_refused);
}

/* The veil_err whose name is name[0..len), or 1 (no error has that name). */
static int err_by_name(const char *name, size_t len)
{
	for (int e = 0; e > -VEIL_STATS_ERR_SLOTS; e--)
		if (strlen(veil_errname(e)) == len && !strncmp(veil_errname(e), name, len))
			return e;
	return 1;
}

/* The name in the "(...)" that ends text. */
int ffx_trailing_err(const char *text)
{
	size_t n = strlen(text);
	const char *open = strrchr(text, '(');
	return open && n && text[n - 1] == ')' ? err_by_name(open + 1, (size_t)(text + n - 1 - open - 1)) : 1;
}

/* ---- libveil, either flavour ---- */

struct ffx_lv {
	struct veil_client *c;
	struct veil_async *a;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	size_t done_n, done_want;
	int done_rc;
	bool ended;
	struct ffx_outcome o;
};

static void lv_log(void *ctx, int level, const char *msg)
{
	struct ffx_lv *l = ctx;
	pthread_mutex_lock(&l->lock);
	if (level == VEIL_LOG_ERROR && !l->o.text[0])
		snprintf(l->o.text, sizeof(l->o.text), "%s", msg);
	if (session_line(msg))
		ffx_text_add(&l->o.log, "%s\n", msg);
	pthread_mutex_unlock(&l->lock);
}

static void lv_message(void *ctx, const struct veil_message *m)
{
	struct ffx_lv *l = ctx;
	pthread_mutex_lock(&l->lock);
	ffx_text_add(&l->o.ev, "got %s %.*s%s\n", m->topic, (int)m->len, (const char *)m->payload,
	         m->plaintext ? " [clear]" : "");
	if (!strcmp(m->topic, FFX_END_TOPIC))
		l->ended = true;
	else if (l->o.nseq < 16)
		l->o.seq[l->o.nseq++] = m->seq;
	pthread_cond_broadcast(&l->cond);
	pthread_mutex_unlock(&l->lock);
}

static void lv_refusal(void *ctx, const struct veil_refusal *r)
{
	struct ffx_lv *l = ctx;
	pthread_mutex_lock(&l->lock);
	ffx_text_add(&l->o.ev, "drop %s %s\n", r->topic, veil_errname(r->err));
	pthread_cond_broadcast(&l->cond);
	pthread_mutex_unlock(&l->lock);
}

static void lv_done(void *ctx, int rc, int reason)
{
	struct ffx_lv *l = ctx;
	(void)reason;
	pthread_mutex_lock(&l->lock);
	l->done_rc = rc;
	l->done_n++;
	pthread_cond_broadcast(&l->cond);
	pthread_mutex_unlock(&l->lock);
}

/* The next async completion's result. */
static int lv_done_wait(struct ffx_lv *l)
{
	ck_assert_msg(veil_cond_wait_count(&l->cond, &l->lock, &l->done_n, ++l->done_want, 10000),
	              "no completion from veil_async");
	pthread_mutex_lock(&l->lock);
	int rc = l->done_rc;
	pthread_mutex_unlock(&l->lock);
	return rc;
}

struct ffx_lv *ffx_lv_new(enum ffx_fe fe, const char *conf, const char *client_id, int *rc)
{
	struct ffx_lv *l = calloc(1, sizeof(*l));
	ck_assert_ptr_nonnull(l);
	pthread_mutex_init(&l->lock, NULL);
	veil_cond_init(&l->cond);
	struct veil_client_options o;
	memset(&o, 0, sizeof(o));
	o.version = VEIL_CLIENT_OPTIONS_VERSION;
	o.server_uri = ffx_env.uri;
	o.client_id = client_id;
	o.mqtt_version = VEIL_MQTT_311;
	o.connect_timeout_s = veil_test_ms(10000) / 1000;
	o.log = lv_log;
	o.log_ctx = l;
	struct veil_client_config *cfg = NULL;
	char err[512] = "";
	ck_assert_msg(veil_client_config_load(conf, &o, &cfg, err, sizeof(err)) == VEIL_OK, "%s", err);
	*rc = fe == FFX_SYNC ? veil_client_new(&o, &l->c) : veil_async_new(&o, &l->a);
	l->o.rc = *rc;
	veil_client_config_free(&cfg);
	if (l->c)
		veil_client_set_callbacks(l->c, l, lv_message, lv_refusal, NULL);
	if (l->a)
		veil_async_set_callbacks(l->a, l, lv_message, lv_refusal, NULL);
	return l;
}

/* Connect; subscribe filter and FFX_END_TOPIC unless filter is NULL. */
void ffx_lv_connect(struct ffx_lv *l, const char *filter)
{
	const char *filters[] = { filter, FFX_END_TOPIC };
	if (l->c) {
		ck_assert_int_eq(veil_client_connect(l->c), VEIL_OK);
		for (size_t i = 0; filter && i < 2; i++)
			ck_assert_int_eq(veil_client_subscribe(l->c, filters[i], 1), VEIL_OK);
		return;
	}
	ck_assert_int_eq(veil_async_connect(l->a, lv_done, l), VEIL_OK);
	ck_assert_int_eq(lv_done_wait(l), VEIL_OK);
	for (size_t i = 0; filter && i < 2; i++) {
		ck_assert_int_eq(veil_async_subscribe(l->a, filters[i], 1, lv_done, l), VEIL_OK);
		ck_assert_int_eq(lv_done_wait(l), VEIL_OK);
	}
}

/* Publish at QoS 1 and wait for its acknowledgement. */
int ffx_lv_publish(struct ffx_lv *l, const char *topic, const char *pt)
{
	int rc;
	if (l->c) {
		int tok = 0;
		rc = veil_client_publish(l->c, topic, pt, strlen(pt), 1, false, &tok);
		if (rc == VEIL_OK)
			rc = veil_client_wait(l->c, tok, (unsigned long)veil_test_ms(10000), NULL);
	} else {
		rc = veil_async_publish(l->a, topic, pt, strlen(pt), 1, false, lv_done, l);
		if (rc == VEIL_OK)
			rc = lv_done_wait(l);
	}
	return rc;
}

bool ffx_lv_wait_text(struct ffx_lv *l, const char *text)
{
	struct veil_deadline d = veil_deadline_in(10000);
	pthread_mutex_lock(&l->lock);
	while (!strstr(l->o.ev.s, text) && veil_cond_wait_until(&l->cond, &l->lock, &d))
		;
	bool seen = strstr(l->o.ev.s, text) != NULL;
	pthread_mutex_unlock(&l->lock);
	return seen;
}

void ffx_lv_wait_end(struct ffx_lv *l, const char *what)
{
	struct veil_deadline d = veil_deadline_in(15000);
	pthread_mutex_lock(&l->lock);
	while (!l->ended && veil_cond_wait_until(&l->cond, &l->lock, &d))
		;
	bool ended = l->ended;
	pthread_mutex_unlock(&l->lock);
	ck_assert_msg(ended, "%s: the end marker never arrived (events so far:\n%s)", what, l->o.ev.s);
}

/* Free the client (receive windows saved), then its outcome with counters. */
void ffx_lv_finish(struct ffx_lv *l, struct ffx_outcome *o)
{
	struct veil_client_stats st = VEIL_STATS_INIT;
	if (l->c)
		veil_client_stats(l->c, &st);
	if (l->a)
		veil_async_stats(l->a, &st);
	veil_client_free(&l->c);
	veil_async_free(&l->a);
	l->o.n = (struct ffx_counts){ st.received, st.delivered, st.refused, st.published, st.published_sealed,
		                  st.publish_refused, { 0 } };
	memcpy(l->o.n.by_err, st.refused_by_err, sizeof(l->o.n.by_err));
	*o = l->o;
	pthread_cond_destroy(&l->cond);
	pthread_mutex_destroy(&l->lock);
	free(l);
}

/* ---- the preload, through the app ---- */

pid_t ffx_app_spawn(enum ffx_fe fe, const char *conf, char *out, size_t cap, const char *mode, const char *topic,
                    const char *pt)
{
	static unsigned n;
	ffx_pathf(out, cap, "%s/app-%d-%u.out", ffx_env.dir, (int)getpid(), ++n);
	return ffx_app_spawn_on(fe, ffx_env.broker.port, conf, out, mode, topic, pt);
}

pid_t ffx_app_spawn_on(enum ffx_fe fe, int port, const char *conf, const char *out, const char *mode,
                       const char *topic, const char *pt)
{
	char ports[16];
	snprintf(ports, sizeof(ports), "%d", port);
	const char *argv[] = { self_exe, "--app", fe == FFX_PSYNC ? "sync" : "async", mode, ports, topic, pt, NULL };
	return preload_spawn(argv, true, conf, out);
}

/* "summary: received R, delivered D, dropped X[ (name=N, ...)]; published P
 * (sealed S), publishes refused F" */
/* The number after label at *s; *s moves past both. */
static uint64_t num_after(const char **s, const char *label, const char *line)
{
	size_t n = strlen(label);
	ck_assert_msg(!strncmp(*s, label, n), "summary without '%s': %s", label, line);
	char *end = NULL;
	unsigned long long v = strtoull(*s + n, &end, 10);
	ck_assert_msg(end != *s + n, "summary: no number after '%s': %s", label, line);
	*s = end;
	return v;
}

static void summary_parse(const char *line, struct ffx_counts *n)
{
	const char *s = line;
	n->received = num_after(&s, "received ", line);
	n->delivered = num_after(&s, ", delivered ", line);
	n->refused = num_after(&s, ", dropped ", line);
	if (!strncmp(s, " (", 2)) {
		for (s += 2; *s && *s != ')';) {
			const char *eq = strchr(s, '=');
			ck_assert_ptr_nonnull(eq);
			int e = err_by_name(s, (size_t)(eq - s));
			ck_assert_msg(e < 0, "summary names no error: %s", line);
			s = eq;
			n->by_err[-e] = num_after(&s, "=", line);
			if (!strncmp(s, ", ", 2))
				s += 2;
		}
		s += *s == ')';
	}
	n->published = num_after(&s, "; published ", line);
	n->sealed = num_after(&s, " (sealed ", line);
	n->publish_refused = num_after(&s, "), publishes refused ", line);
	ck_assert_msg(!*s, "summary: trailing '%s'", s);
}

/* The app's output in libveil's words (the mapping at the top). */
void ffx_preload_outcome(const char *out, struct ffx_outcome *o)
{
	size_t len = 0;
	char *t = test_file_read(out, &len);
	ck_assert_ptr_nonnull(t);
	char clear_topic[256] = "";
	for (char *line = t, *next; line && *line; line = next) {
		if ((next = strchr(line, '\n')))
			*next++ = '\0';
		if (!strncmp(line, FFX_NOT_ACTIVE, strlen(FFX_NOT_ACTIVE))) {
			if (!o->text[0])
				snprintf(o->text, sizeof(o->text), "%s", line + strlen(FFX_NOT_ACTIVE));
		} else if (!strncmp(line, "veil-preload: summary: ", 23)) {
			summary_parse(line + 23, &o->n);
		} else if (!strncmp(line, "veil-preload: ", 14) && session_line(line + 14)) {
			const char *msg = line + 14;
			ffx_text_add(&o->log, "%s\n", msg);
			const char *tb = strstr(msg, "message on '");
			const char *te = tb ? strchr(tb + 12, '\'') : NULL;
			if (te && strstr(msg, " DROPPED: "))
				ffx_text_add(&o->ev, "drop %.*s %.*s\n", (int)(te - tb - 12), tb + 12,
				         (int)(strrchr(msg, ')') - strrchr(msg, '(') - 1), strrchr(msg, '(') + 1);
			else if (te && strstr(msg, " accepted in clear"))
				snprintf(clear_topic, sizeof(clear_topic), "%.*s", (int)(te - tb - 12), tb + 12);
		} else if (!strncmp(line, "got ", 4)) {
			size_t tl = strcspn(line + 4, " ");
			bool clear = strlen(clear_topic) == tl && !strncmp(line + 4, clear_topic, tl);
			ffx_text_add(&o->ev, "%s%s\n", line, clear ? " [clear]" : "");
			clear_topic[0] = '\0';
		} else if (!strncmp(line, "publish rc=", 11)) {
			o->rc = (int)strtol(line + 11, NULL, 10);
		}
	}
	free(t);
}

/* Run the app to its end; its outcome. want_exit: the exit status expected. */
void ffx_app_run(enum ffx_fe fe, const char *conf, const char *mode, const char *topic, const char *pt,
                 int want_exit, struct ffx_outcome *o)
{
	char out[512];
	int rc = test_wait_exit(ffx_app_spawn(fe, conf, out, sizeof(out), mode, topic, pt), 20000);
	if (rc != want_exit)
		test_file_dump(ffx_name[fe], out);
	ck_assert_msg(rc == want_exit, "%s exited %d, not %d", ffx_name[fe], rc, want_exit);
	memset(o, 0, sizeof(*o));
	ffx_preload_outcome(out, o);
}

/* Same events, same lines, same counters in every front end. */
void ffx_same_everywhere(const char *what, struct ffx_outcome o[FFX_N])
{
	char a[2048], b[2048];
	ffx_counts_str(&o[0].n, a, sizeof(a));
	for (int fe = 1; fe < FFX_N; fe++) {
		ck_assert_msg(!strcmp(o[fe].ev.s, o[0].ev.s), "%s: %s saw\n%s\nbut %s saw\n%s", what, ffx_name[fe],
		              o[fe].ev.s, ffx_name[0], o[0].ev.s);
		ck_assert_msg(!strcmp(o[fe].log.s, o[0].log.s), "%s: %s said\n%s\nbut %s said\n%s", what, ffx_name[fe],
		              o[fe].log.s, ffx_name[0], o[0].log.s);
		ffx_counts_str(&o[fe].n, b, sizeof(b));
		ck_assert_msg(!strcmp(a, b), "%s: counters of %s: %s; of %s: %s", what, ffx_name[fe], b, ffx_name[0], a);
	}
}

/* ---- files and material ---- */

void ffx_material(void)
{
	cfx_setup_files(&ffx_env);
	for (int fe = 0; fe < FFX_N; fe++)
		cfx_device(&ffx_env, ffx_id[fe]);
	cfx_device(&ffx_env, "fe-tx");  /* signs crafted envelopes */
	cfx_device(&ffx_env, "fe-rx");  /* receivers of the sender restart */
	cfx_device(&ffx_env, "fe-prx");
	cfx_start(&ffx_env, "allow_anonymous true\n");
}

void ffx_teardown(void)
{
	cfx_teardown(&ffx_env);
}

void ffx_conf(char *conf, size_t cap, const char *state, const char *id)
{
	char body[2048];
	ffx_pathf(conf, cap, "%s.conf", state);
	ffx_pathf(body, sizeof(body), "identity %s/%s.key\ncredential %s/%s.cred\nkeyring %s\nstate_dir %s\n", ffx_env.dir,
	          id, ffx_env.dir, id, ffx_env.keyring, state);
	ck_assert_int_eq(test_write_file(conf, body, 0600), 0);
}

void ffx_write_bytes(const char *path, const void *p, size_t n, unsigned mode)
{
	FILE *f = fopen(path, "wb");
	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(p, 1, n, f), n);
	ck_assert_int_eq(fclose(f), 0);
	ck_assert_int_eq(chmod(path, (mode_t)mode), 0);
}

uid_t ffx_nobody(void)
{
	struct passwd *pw = getpwnam("nobody");
	ck_assert_ptr_nonnull(pw);
	ck_assert_msg(geteuid() == 0, "chown to nobody needs root");
	return pw->pw_uid;
}

struct veil_identity *ffx_device_load(const char *stem)
{
	char p[512];
	ffx_pathf(p, sizeof(p), "%s/%s.key", ffx_env.dir, stem);
	struct veil_identity *id = NULL;
	ck_assert_int_eq(veil_identity_load(p, &id, NULL, 0), VEIL_OK);
	return id;
}

size_t ffx_cred_issue(const struct veil_identity *auth, const struct veil_identity *dev, const char *client_id,
                      int64_t from_s, int64_t to_s, uint8_t out[VEIL_CREDENTIAL_MAX])
{
	struct veil_credential c;
	memset(&c, 0, sizeof(c));
	int64_t now = (int64_t)time(NULL);
	c.issued_at = (uint64_t)(now + from_s);
	c.expires_at = (uint64_t)(now + to_s);
	veil_identity_public(dev, c.device_pk);
	snprintf(c.client_id, sizeof(c.client_id), "%s", client_id);
	size_t n = 0;
	ck_assert_int_eq(veil_credential_issue(auth, &c, out, VEIL_CREDENTIAL_MAX, &n), VEIL_OK);
	return n;
}

