/*
 * veil-integ: the device and dashboard programs of the native integration
 * scenarios, written against the public libveil API (include/veil/client.h)
 * exactly as an application would use it.
 *
 *   veil-integ pub  DEVICE --topic T --count N [--qos Q] [--rate R] [--prefix P] [--start I]
 *   veil-integ sub  DEVICE --filter F... --expect N [--timeout S] [--print] [--ready FILE]
 *                   [--subscribe-only] [--resume] [--marker PREFIX] [--expect-refused N]
 *   veil-integ load ...   (integ_load.c)
 *
 * DEVICE options: --uri U --id ID --identity K --credential C --keyring KR
 *   [--authorities F (without --keyring: keys from veil-keyd)] [--state-dir D] [--mqtt 3|5] [--persistent] [--cafile F] [--sign] [--step-timeout S]
 *
 * Payloads are "<prefix>-<i>" so the subscriber can tell loss, duplication
 * and reordering apart per (topic, prefix) stream. Every run ends with one
 * machine-readable line ("pub: ..." / "sub: ...") the scripts check; the exit
 * status says whether the run met its expectation.
 *
 * No fixed waits: every wait is on an event (CONNACK, SUBACK, PUBACK,
 * DISCONNECT completion, a message) with a deadline the caller passes
 * (--timeout, --step-timeout; the scenarios scale them by the time factor).
 * "Nothing more arrives" is judged with an end marker: the scenario publishes
 * one message with the --marker prefix after everything else, the subscriber
 * waits for it, and whatever was going to arrive before it has arrived.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "veil/veil.h"
#include "veil/client.h"
#include "integ.h"

/* ---- shared helpers ---- */

double integ_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void integ_sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
	}
}

static void log_cb(void *ctx, int level, const char *msg)
{
	(void)ctx;
	if (level <= VEIL_LOG_WARNING || getenv("VEIL_INTEG_DEBUG"))
		fprintf(stderr, "libveil[%d]: %s\n", level, msg);
}

int integ_device_opt(struct integ_device *d, int c, const char *arg)
{
	switch (c) {
	case 'u': d->uri = arg; return 1;
	case 'i': d->id = arg; return 1;
	case 'k': d->identity = arg; return 1;
	case 'c': d->credential = arg; return 1;
	case 'r': d->keyring = arg; return 1;
	case 'S': d->state_dir = arg; return 1;
	case 'm': d->mqtt = atoi(arg) == 3 ? VEIL_MQTT_311 : VEIL_MQTT_5; return 1;
	case 'P': d->persistent = true; return 1;
	case 'A': d->cafile = arg; return 1;
	case 'g': d->sign = true; return 1;
	case 'O': d->step_s = atof(arg); return 1;
	case 'H': d->authorities = arg; return 1;
	default: return 0;
	}
}

double integ_step_s(const struct integ_device *d)
{
	return d->step_s > 0 ? d->step_s : INTEG_STEP_S;
}

void integ_device_options(const struct integ_device *d, struct veil_client_options *o)
{
	memset(o, 0, sizeof(*o));
	o->version = VEIL_CLIENT_OPTIONS_VERSION;
	o->server_uri = d->uri;
	o->client_id = d->id;
	o->mqtt_version = d->mqtt ? d->mqtt : VEIL_MQTT_5;
	o->identity_path = d->identity;
	o->credential_path = d->credential;
	o->keyring_path = d->keyring;
	o->authority_path = d->authorities;
	o->state_dir = d->state_dir;
	o->auth = VEIL_AUTH_TOKEN;
	o->persistent_session = d->persistent;
	o->sign_all = d->sign;
	o->keepalive_s = 20;
	o->connect_timeout_s = (int)integ_step_s(d);
	o->log = log_cb;
	/* After a lost connection the client logs in again by itself (fresh
	 * token); a persistent session keeps the subscriptions. */
	o->auto_reconnect = true;
	o->tls.ca_file = d->cafile; /* the host name is checked (default) */
}

/* ---- stream bookkeeping: loss, duplicates, order ---- */

struct stream {
	char key[300];      /* topic '|' prefix */
	unsigned char *seen;
	size_t cap;
	long last;
	long unique;
};

struct sub_state {
	pthread_mutex_t mu;
	struct stream streams[256];
	size_t n_streams;
	long delivered, duplicates, out_of_order, malformed, refused, lost_conn, markers;
	long refused_by[VEIL_STATS_ERR_SLOTS];
	bool print;
	const char *marker; /* --marker: payloads "<marker>-<i>" end the run, counted apart */
};

static struct stream *stream_get(struct sub_state *s, const char *topic, const char *prefix, size_t plen)
{
	char key[300];
	snprintf(key, sizeof(key), "%s|%.*s", topic, (int)plen, prefix);
	for (size_t i = 0; i < s->n_streams; i++) {
		if (!strcmp(s->streams[i].key, key))
			return &s->streams[i];
	}
	if (s->n_streams == sizeof(s->streams) / sizeof(s->streams[0]))
		return NULL;
	struct stream *st = &s->streams[s->n_streams++];
	memset(st, 0, sizeof(*st));
	snprintf(st->key, sizeof(st->key), "%s", key);
	st->last = -1;
	return st;
}

static void on_message(void *ctx, const struct veil_message *m)
{
	struct sub_state *s = ctx;
	pthread_mutex_lock(&s->mu);
	size_t ml = s->marker ? strlen(s->marker) : 0;
	if (ml && m->len > ml && !memcmp(m->payload, s->marker, ml) && ((const char *)m->payload)[ml] == '-') {
		s->markers++;
		if (s->print)
			printf("end marker received\n");
		pthread_mutex_unlock(&s->mu);
		fflush(stdout);
		return;
	}
	s->delivered++;
	if (s->print)
		printf("msg topic=%s len=%zu signed=%d seq=%llu key=%u sender=%s payload=%s\n", m->topic, m->len,
		       m->is_signed, (unsigned long long)m->seq, m->key_id, m->sender_hex, (const char *)m->payload);
	const char *p = (const char *)m->payload;
	const char *dash = NULL; /* the last '-': prefixes may contain dashes */
	for (size_t k = m->len; k > 0; k--) {
		if (p[k - 1] == '-') {
			dash = p + k - 1;
			break;
		}
	}
	char *end = NULL;
	long i = dash ? strtol(dash + 1, &end, 10) : -1;
	struct stream *st = dash ? stream_get(s, m->topic, p, (size_t)(dash - p)) : NULL;
	if (!st || i < 0 || i > 50000000 || !end || *end) {
		s->malformed++;
	} else {
		size_t need = (size_t)i / 8 + 1;
		if (need > st->cap) {
			size_t cap = need * 2;
			unsigned char *n = realloc(st->seen, cap);
			if (!n)
				abort();
			memset(n + st->cap, 0, cap - st->cap);
			st->seen = n;
			st->cap = cap;
		}
		unsigned char bit = (unsigned char)(1u << (i % 8));
		if (st->seen[i / 8] & bit) {
			s->duplicates++;
		} else {
			st->seen[i / 8] |= bit;
			st->unique++;
			if (i < st->last)
				s->out_of_order++;
			st->last = i;
		}
	}
	pthread_mutex_unlock(&s->mu);
	fflush(stdout);
}

static void on_refusal(void *ctx, const struct veil_refusal *r)
{
	struct sub_state *s = ctx;
	pthread_mutex_lock(&s->mu);
	s->refused++;
	if (r->err <= 0 && r->err > -VEIL_STATS_ERR_SLOTS)
		s->refused_by[-r->err]++;
	if (s->print)
		printf("refused topic=%s err=%s len=%zu\n", r->topic, veil_errname(r->err), r->len);
	pthread_mutex_unlock(&s->mu);
	fflush(stdout);
}

static void on_lost(void *ctx, const char *cause)
{
	struct sub_state *s = ctx;
	pthread_mutex_lock(&s->mu);
	s->lost_conn++;
	pthread_mutex_unlock(&s->mu);
}

void integ_waiter_init(struct integ_waiter *w)
{
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	w->done = false;
	w->rc = VEIL_ERR_TIMEOUT;
}

void integ_waiter_done(void *ctx, int rc, int reason_code)
{
	struct integ_waiter *w = ctx;
	pthread_mutex_lock(&w->mu);
	w->rc = rc;
	w->done = true;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

/* One wait on cv of at most ms (the caller re-checks its condition and its
 * monotonic deadline: the condition variable's clock is the wall clock). */
static void cond_wait_ms(pthread_cond_t *cv, pthread_mutex_t *mu, long ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_nsec += ms * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_cond_timedwait(cv, mu, &ts);
}

int integ_waiter_wait(struct integ_waiter *w, double timeout_s)
{
	double until = integ_now() + timeout_s;
	pthread_mutex_lock(&w->mu);
	while (!w->done && integ_now() < until)
		cond_wait_ms(&w->cv, &w->mu, 20);
	int rc = w->done ? w->rc : VEIL_ERR_TIMEOUT;
	pthread_mutex_unlock(&w->mu);
	return rc;
}

/* ---- pub ---- */

/* The publisher uses veil_async: Paho's synchronous waitForCompletion polls
 * in 100 ms steps, which would turn every QoS 1 message into a 100 ms wait. */
struct pub_state {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	long outstanding, acked, failed;
	int connect_rc;
	bool connect_done;
};

/* One bounded wait on p->cv; false once `until` (integ_now) has passed. */
static bool pub_wait_step(struct pub_state *p, double until)
{
	if (integ_now() >= until)
		return false;
	cond_wait_ms(&p->cv, &p->mu, 50);
	return true;
}

static void pub_connected(void *ctx, int rc, int reason_code)
{
	struct pub_state *p = ctx;
	pthread_mutex_lock(&p->mu);
	p->connect_rc = rc;
	p->connect_done = true;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
}

static void pub_done(void *ctx, int rc, int reason_code)
{
	struct pub_state *p = ctx;
	pthread_mutex_lock(&p->mu);
	p->outstanding--;
	if (rc == VEIL_OK)
		p->acked++;
	else
		p->failed++;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
}

/* Until at most n messages await their PUBACK; false if none came for
 * timeout_s (the deadline restarts with every acknowledgement). */
static bool pub_wait_below(struct pub_state *p, long n, double timeout_s)
{
	pthread_mutex_lock(&p->mu);
	double until = integ_now() + timeout_s;
	long last = p->outstanding;
	while (p->outstanding > n) {
		if (p->outstanding < last) {
			last = p->outstanding;
			until = integ_now() + timeout_s;
		}
		if (!pub_wait_step(p, until))
			break;
	}
	bool ok = p->outstanding <= n;
	pthread_mutex_unlock(&p->mu);
	return ok;
}

/* After a lost connection the client logs in again by itself: until it has,
 * or the deadline. */
static bool pub_wait_reconnected(struct veil_async *a, double timeout_s)
{
	double until = integ_now() + timeout_s;
	while (!veil_async_is_connected(a)) {
		if (integ_now() >= until)
			return false;
		integ_sleep_ms(10);
	}
	return true;
}

static int cmd_pub(struct integ_device *d, int argc, char **argv)
{
	static const struct option lo[] = {
		INTEG_DEVICE_LONGOPTS,
		{ "topic", required_argument, NULL, 't' }, { "count", required_argument, NULL, 'n' },
		{ "qos", required_argument, NULL, 'q' },   { "rate", required_argument, NULL, 'R' },
		{ "prefix", required_argument, NULL, 'x' }, { "start", required_argument, NULL, 's' },
		{ "retain", no_argument, NULL, 'T' },      { "window", required_argument, NULL, 'W' },
		{ NULL, 0, NULL, 0 },
	};
	const char *topic = NULL, *prefix = "m";
	long count = 1, start = 0, window = 32;
	int qos = 1;
	double rate = 0;
	bool retain = false;
	int c;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		if (integ_device_opt(d, c, optarg))
			continue;
		switch (c) {
		case 't': topic = optarg; break;
		case 'n': count = atol(optarg); break;
		case 'q': qos = atoi(optarg); break;
		case 'R': rate = atof(optarg); break;
		case 'x': prefix = optarg; break;
		case 's': start = atol(optarg); break;
		case 'T': retain = true; break;
		case 'W': window = atol(optarg) > 0 ? atol(optarg) : 1; break;
		default: return 2;
		}
	}
	if (!topic || !d->uri || !d->id)
		return 2;
	double step = integ_step_s(d);
	struct veil_client_options o;
	integ_device_options(d, &o);
	static struct pub_state p = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };
	struct veil_async *a = NULL;
	int rc = veil_async_new(&o, &a);
	if (rc != VEIL_OK) {
		fprintf(stderr, "pub: veil_async_new: %s\n", veil_strerror(rc));
		return 1;
	}
	rc = veil_async_connect(a, pub_connected, &p);
	pthread_mutex_lock(&p.mu);
	double until = integ_now() + step;
	while (rc == VEIL_OK && !p.connect_done && pub_wait_step(&p, until)) {
	}
	if (rc == VEIL_OK)
		rc = p.connect_done ? p.connect_rc : VEIL_ERR_TIMEOUT;
	pthread_mutex_unlock(&p.mu);
	if (rc != VEIL_OK) {
		fprintf(stderr, "pub: connect %s as %s: %s\n", d->uri, d->id, veil_strerror(rc));
		printf("pub: sent=0 failed=%ld connect=%s\n", count, veil_errname(rc));
		veil_async_free(&a);
		return 1;
	}
	long refused = 0;
	double t0 = integ_now();
	for (long i = start; i < start + count; i++) {
		char payload[256];
		int n = snprintf(payload, sizeof(payload), "%s-%ld", prefix, i);
		if (!pub_wait_below(&p, window - 1, step))
			fprintf(stderr, "pub: no PUBACK for %.0f s with %ld outstanding\n", step, p.outstanding);
		pthread_mutex_lock(&p.mu);
		p.outstanding++;
		pthread_mutex_unlock(&p.mu);
		rc = veil_async_publish(a, topic, payload, (size_t)n, qos, retain, pub_done, &p);
		if (rc != VEIL_OK) {
			pthread_mutex_lock(&p.mu);
			p.outstanding--;
			pthread_mutex_unlock(&p.mu);
			if (!veil_async_is_connected(a) && pub_wait_reconnected(a, step)) {
				i--; /* reconnected: the same message again */
				continue;
			}
			fprintf(stderr, "pub: publish %s #%ld: %s\n", topic, i, veil_strerror(rc));
			refused++;
			continue;
		}
		if (rate > 0) {
			double due = t0 + (double)(i - start + 1) / rate;
			double wait = due - integ_now();
			if (wait > 0)
				integ_sleep_ms((long)(wait * 1000)); /* pacing at --rate */
		}
	}
	pub_wait_below(&p, 0, step);
	struct veil_client_stats st;
	veil_async_stats(a, &st);
	pthread_mutex_lock(&p.mu);
	long acked = p.acked, failed = p.failed + refused + p.outstanding;
	pthread_mutex_unlock(&p.mu);
	printf("pub: sent=%ld failed=%ld sealed=%llu publish_refused=%llu connects=%llu seconds=%.2f\n", acked, failed,
	       (unsigned long long)st.published_sealed, (unsigned long long)st.publish_refused,
	       (unsigned long long)st.connects, integ_now() - t0);
	static struct integ_waiter wd;
	integ_waiter_init(&wd);
	if (veil_async_disconnect(a, 2000, integ_waiter_done, &wd) == VEIL_OK)
		(void)integ_waiter_wait(&wd, step);
	veil_async_free(&a);
	return failed ? 1 : 0;
}

/* ---- sub ---- */

static int cmd_sub(struct integ_device *d, int argc, char **argv)
{
	static const struct option lo[] = {
		INTEG_DEVICE_LONGOPTS,
		{ "filter", required_argument, NULL, 'f' },  { "expect", required_argument, NULL, 'e' },
		{ "timeout", required_argument, NULL, 'w' }, { "print", no_argument, NULL, 'p' },
		{ "ready", required_argument, NULL, 'y' },   { "subscribe-only", no_argument, NULL, 'o' },
		{ "marker", required_argument, NULL, 'M' },  { "qos", required_argument, NULL, 'q' },
		{ "expect-refused", required_argument, NULL, 'E' }, { "resume", no_argument, NULL, 'Z' },
		{ NULL, 0, NULL, 0 },
	};
	const char *filters[16];
	size_t nf = 0;
	long expect = 0, expect_refused = -1;
	double timeout = 20;
	const char *ready = NULL;
	bool only = false, resume = false;
	int qos = 1;
	static struct sub_state s;
	pthread_mutex_init(&s.mu, NULL);
	int c;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		if (integ_device_opt(d, c, optarg))
			continue;
		switch (c) {
		case 'f':
			if (nf < 16)
				filters[nf++] = optarg;
			break;
		case 'e': expect = atol(optarg); break;
		case 'E': expect_refused = atol(optarg); break;
		case 'w': timeout = atof(optarg); break;
		case 'p': s.print = true; break;
		case 'y': ready = optarg; break;
		case 'o': only = true; break;
		case 'Z': resume = true; break;
		case 'M': s.marker = optarg; break;
		case 'q': qos = atoi(optarg); break;
		default: return 2;
		}
	}
	if (!nf || !d->uri || !d->id)
		return 2;
	double step = integ_step_s(d);
	struct veil_client_options o;
	integ_device_options(d, &o);
	struct veil_async *cl = NULL;
	int rc = veil_async_new(&o, &cl);
	if (rc != VEIL_OK) {
		fprintf(stderr, "sub: veil_async_new: %s\n", veil_strerror(rc));
		return 1;
	}
	veil_async_set_callbacks(cl, &s, on_message, on_refusal, on_lost);
	/* The broker may be restarting: retry the first connect until the step
	 * deadline (the pause is the retry interval of a loop that re-checks). */
	static struct integ_waiter wc[64];
	size_t nwc = 0;
	double connect_until = integ_now() + step;
	do {
		struct integ_waiter *w = &wc[nwc++];
		integ_waiter_init(w);
		rc = veil_async_connect(cl, integ_waiter_done, w);
		if (rc == VEIL_OK)
			rc = integ_waiter_wait(w, step);
		if (rc == VEIL_OK || rc == VEIL_ERR_AUTH)
			break;
		integ_sleep_ms(250);
	} while (integ_now() < connect_until && nwc < 64);
	if (rc != VEIL_OK) {
		fprintf(stderr, "sub: connect %s as %s: %s\n", d->uri, d->id, veil_strerror(rc));
		printf("sub: delivered=0 connect=%s\n", veil_errname(rc));
		veil_async_free(&cl);
		return 1;
	}
	int sub_failed = 0;
	/* --resume: the persistent session holds the subscriptions; subscribing
	 * again would make the broker resend retained messages. */
	for (size_t i = 0; i < nf && !resume; i++) {
		static struct integ_waiter ws[16];
		integ_waiter_init(&ws[i]);
		rc = veil_async_subscribe(cl, filters[i], qos, integ_waiter_done, &ws[i]);
		if (rc == VEIL_OK)
			rc = integ_waiter_wait(&ws[i], step);
		if (rc != VEIL_OK) {
			fprintf(stderr, "sub: subscribe %s: %s\n", filters[i], veil_strerror(rc));
			printf("sub: subscribe_refused=%s err=%s\n", filters[i], veil_errname(rc));
			sub_failed++;
		}
	}
	if (ready) {
		FILE *f = fopen(ready, "w");
		if (f)
			fclose(f);
	}
	if (sub_failed || only) {
		static struct integ_waiter wd;
		integ_waiter_init(&wd);
		if (veil_async_disconnect(cl, 2000, integ_waiter_done, &wd) == VEIL_OK)
			(void)integ_waiter_wait(&wd, step);
		veil_async_free(&cl);
		if (only && !sub_failed)
			printf("sub: subscribed=%zu\n", nf);
		return sub_failed ? 3 : 0;
	}
	/* Until the expected messages and, with --marker, the end marker have
	 * arrived (anything published before the marker arrives before it), or
	 * the deadline. */
	double until = integ_now() + timeout;
	while (integ_now() < until) {
		pthread_mutex_lock(&s.mu);
		bool done = s.delivered >= expect && (!s.marker || s.markers > 0);
		pthread_mutex_unlock(&s.mu);
		if (done && (expect > 0 || s.marker))
			break;
		integ_sleep_ms(20);
	}
	struct veil_client_stats st;
	veil_async_stats(cl, &st);
	long reconnects = st.connects > 1 ? (long)st.connects - 1 : 0;
	pthread_mutex_lock(&s.mu);
	long unique = 0;
	for (size_t i = 0; i < s.n_streams; i++)
		unique += s.streams[i].unique;
	printf("sub: delivered=%ld unique=%ld duplicates=%ld out_of_order=%ld malformed=%ld refused=%ld "
	       "received=%llu lib_refused=%llu reconnects=%ld streams=%zu markers=%ld",
	       s.delivered, unique, s.duplicates, s.out_of_order, s.malformed, s.refused,
	       (unsigned long long)st.received, (unsigned long long)st.refused, reconnects, s.n_streams, s.markers);
	for (int e = 1; e < VEIL_STATS_ERR_SLOTS; e++) {
		if (s.refused_by[e])
			printf(" refused_%s=%ld", veil_errname(-e), s.refused_by[e]);
	}
	printf("\n");
	bool ok = unique == expect && s.duplicates == 0 && s.out_of_order == 0 && s.malformed == 0 &&
	          (expect_refused < 0 || s.refused == expect_refused) && (!s.marker || s.markers > 0);
	if (s.marker && !s.markers)
		fprintf(stderr, "sub: the end marker '%s' did not arrive within %.0f s\n", s.marker, timeout);
	pthread_mutex_unlock(&s.mu);
	static struct integ_waiter wd;
	integ_waiter_init(&wd);
	if (veil_async_disconnect(cl, 2000, integ_waiter_done, &wd) == VEIL_OK)
		(void)integ_waiter_wait(&wd, step);
	veil_async_free(&cl);
	for (size_t i = 0; i < s.n_streams; i++)
		free(s.streams[i].seen);
	return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: veil-integ pub|sub|load [options]\n");
		return 2;
	}
	if (veil_init() != VEIL_OK)
		return 1;
	setvbuf(stdout, NULL, _IOLBF, 0);
	struct integ_device d;
	memset(&d, 0, sizeof(d));
	if (!strcmp(argv[1], "pub"))
		return cmd_pub(&d, argc - 1, argv + 1);
	if (!strcmp(argv[1], "sub"))
		return cmd_sub(&d, argc - 1, argv + 1);
	if (!strcmp(argv[1], "load"))
		return integ_load_main(argc - 1, argv + 1);
	fprintf(stderr, "veil-integ: unknown command %s\n", argv[1]);
	return 2;
}
