/*
 * veil-cluster-dev: one device of the cluster scenario (scenario_cluster.sh,
 * docs/SCALING.md), written against the public libveil API as a fleet's
 * device would be: a client config without a keyring (its keys come from
 * veil-keyd), the deployment's audience, a persistent session, reconnects
 * with a fresh token by itself (wherever HAProxy sends it).
 *
 *   veil-cluster-dev --config FILE --uri URI --ctl DIR --out DIR [--rate R] [--run N]
 *
 * It subscribes to fleet/# at every connect (a node that died took the
 * session with it) and publishes "<id>|<run>|<phase>|<i>" at QoS 1 on
 * fleet/<id>/t, R a second, at most WINDOW unacknowledged, only while it is
 * ready (libveil's connected callback: logged in, keys applied). The
 * scenario steers it through files in --ctl: "phase" holds the label put
 * in every payload ("hold": publish nothing; "end": finish, below);
 * "<id>.cmd" may say "offline" (disconnect, keeping the process and so its
 * key-service state, including the receive keys of its pending requests)
 * or "online".
 *
 * Markers settle a phase: when the device leaves phase P (the file names
 * another), it publishes "<id>|<run>|#P|0" after its last message of P, so
 * a receiver that has the marker of P from every sender has every message
 * of P that was going to arrive (one sender's messages keep their order
 * across the bridges). "<id>.markers" lists the markers it has received
 * ("sender phase" lines). At "end" it waits (--end-timeout) for the marker
 * of the last phase from every id listed in "expect" (one a line), writes
 * its report and exits 0.
 *
 * What it writes to --out: "<id>.status" several times a second (connected,
 * connects, sent, acked, failed, delivered, duplicates, refused, the key id
 * of the last message it opened; nokey and nokey_ms: the refusal, no-policy
 * or no-key, of its publishes refused for want of a key since nokey_ms
 * milliseconds, "-" and 0 once one is taken: the scenario fails on it
 * instead of waiting for messages that cannot come), and at the end
 * "<id>.acked" (one line per
 * message the broker acknowledged: run phase index) and "<id>.recv" (one per
 * distinct message it opened: sender run phase index) and "<id>.refused"
 * (errname counts). The scenario joins them: nothing is judged here.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <uthash.h>

#include "veil/veil.h"
#include "veil/client.h"

#define WINDOW 20
#define PHASE_MAX 64
#define END "end"
#define HOLD "hold"
#define MARKERS_MAX 1024

struct seen {
	char key[200]; /* sender|run|phase|index */
	UT_hash_handle hh;
};

struct acked {
	int run, phase;
	long i;
};

static struct {
	pthread_mutex_t mu;
	const char *id;
	int run;
	char phases[16][PHASE_MAX];
	int n_phases;
	struct seen *seen;
	long delivered, dups, refused, inflight, acked, failed, sent, connects;
	bool ready;                /* connected, keys applied (libveil's on_connected), not lost since */
	long refused_by[64];
	int nokey_rc;              /* VEIL_ERR_NO_POLICY or NO_KEY refusing its publishes, 0 when taken */
	double nokey_since;
	uint32_t rx_key;
	struct acked *ack;
	size_t n_ack, cap_ack;
	char markers[MARKERS_MAX][200]; /* "sender phase" */
	int n_markers;
	const char *out;
	struct veil_async *a;
	struct {
		int rc;
		bool done;
	} sub;                     /* the latest SUBSCRIBE of fleet/# */
} G = { .mu = PTHREAD_MUTEX_INITIALIZER };

static volatile sig_atomic_t stop_now;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The main loop's tick: a load generator's pacing and its poll of the
 * scenario's control files (like integ_load.c); no test waits on it, the
 * scenario waits on the files this program writes. */
static void pause_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR && !stop_now) {
	}
}

/* The first word of a small control file, or "" when it is absent. */
static void read_word(const char *dir, const char *name, char out[64])
{
	char path[1024];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	out[0] = '\0';
	FILE *f = fopen(path, "r");
	if (!f)
		return;
	if (fscanf(f, "%63s", out) != 1)
		out[0] = '\0';
	fclose(f);
}

static int phase_index(const char *p)
{
	for (int k = 0; k < G.n_phases; k++) {
		if (!strcmp(G.phases[k], p))
			return k;
	}
	if (G.n_phases == 16)
		return 15;
	snprintf(G.phases[G.n_phases], PHASE_MAX, "%s", p);
	return G.n_phases++;
}

static void log_cb(void *ctx, int level, const char *msg)
{
	(void)ctx;
	if (level <= VEIL_LOG_INFO || getenv("VEIL_CLUSTER_DEBUG"))
		fprintf(stderr, "%.3f %s libveil[%d]: %s\n", now_s(), G.id, level, msg);
}

static void on_msg(void *ctx, const struct veil_message *m)
{
	(void)ctx;
	char from[128], phase[PHASE_MAX];
	int run;
	long i;
	/* "<sender>|<run>|<phase>|<i>", the sender's own words, then checked
	 * against the topic it was sealed for. */
	if (sscanf((const char *)m->payload, "%127[^|]|%d|%63[^|]|%ld", from, &run, phase, &i) != 4)
		return;
	char topic[200];
	snprintf(topic, sizeof(topic), "fleet/%s/t", from);
	if (strcmp(topic, m->topic) != 0)
		return;
	pthread_mutex_lock(&G.mu);
	G.rx_key = m->key_id;
	if (phase[0] == '#') {
		char key[200];
		snprintf(key, sizeof(key), "%s %s", from, phase + 1);
		bool known = false;
		for (int k = 0; k < G.n_markers && !known; k++)
			known = !strcmp(G.markers[k], key);
		if (!known && G.n_markers < MARKERS_MAX) {
			snprintf(G.markers[G.n_markers++], sizeof(G.markers[0]), "%s", key);
			char path[1024];
			snprintf(path, sizeof(path), "%s/%s.markers", G.out, G.id);
			FILE *f = fopen(path, "a");
			if (f) {
				fprintf(f, "%s\n", key);
				fclose(f);
			}
		}
		pthread_mutex_unlock(&G.mu);
		return;
	}
	struct seen *s = NULL;
	char key[200];
	snprintf(key, sizeof(key), "%s|%d|%s|%ld", from, run, phase, i);
	HASH_FIND_STR(G.seen, key, s);
	if (s) {
		G.dups++;
	} else if ((s = calloc(1, sizeof(*s)))) {
		snprintf(s->key, sizeof(s->key), "%s", key);
		HASH_ADD_STR(G.seen, key, s);
		G.delivered++;
	}
	pthread_mutex_unlock(&G.mu);
}

static void on_refused(void *ctx, const struct veil_refusal *r)
{
	(void)ctx;
	pthread_mutex_lock(&G.mu);
	G.refused++;
	if (r->err <= 0 && r->err > -64)
		G.refused_by[-r->err]++;
	pthread_mutex_unlock(&G.mu);
}

static void on_sub(void *ctx, int rc, int reason_code)
{
	(void)ctx;
	(void)reason_code;
	pthread_mutex_lock(&G.mu);
	G.sub.rc = rc;
	G.sub.done = true;
	pthread_mutex_unlock(&G.mu);
}

/* Every connect, the first and each reconnect: a session that died with its
 * node is gone, and the node we reach now may never have seen us. */
static void on_connected(void *ctx, int rc, int reason_code)
{
	(void)ctx;
	(void)reason_code;
	if (rc != VEIL_OK)
		return;
	pthread_mutex_lock(&G.mu);
	G.connects++;
	G.ready = true;
	G.sub.done = false;
	pthread_mutex_unlock(&G.mu);
	veil_async_subscribe(G.a, "fleet/#", 1, on_sub, NULL);
}

static void on_lost(void *ctx, const char *cause)
{
	(void)ctx;
	(void)cause;
	pthread_mutex_lock(&G.mu);
	G.ready = false;
	G.nokey_rc = 0; /* a streak of refusals counts while it publishes */
	pthread_mutex_unlock(&G.mu);
}

static void on_ack(void *ctx, int rc, int reason_code)
{
	(void)reason_code;
	struct acked *a = ctx;
	pthread_mutex_lock(&G.mu);
	G.inflight--;
	if (rc == VEIL_OK) {
		G.acked++;
		if (G.n_ack == G.cap_ack) {
			size_t nc = G.cap_ack ? G.cap_ack * 2 : 256;
			struct acked *p = realloc(G.ack, nc * sizeof(*p));
			if (p) {
				G.ack = p;
				G.cap_ack = nc;
			}
		}
		if (G.n_ack < G.cap_ack)
			G.ack[G.n_ack++] = *a;
	} else {
		G.failed++;
	}
	pthread_mutex_unlock(&G.mu);
	free(a);
}

static void write_status(const char *out, bool done)
{
	char path[1024], tmp[1100];
	snprintf(path, sizeof(path), "%s/%s.status", out, G.id);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	FILE *f = fopen(tmp, "w");
	if (!f)
		return;
	/* Not under G.mu: libveil may hold its own lock while it calls ours. */
	int connected = veil_async_is_connected(G.a) ? 1 : 0;
	pthread_mutex_lock(&G.mu);
	fprintf(f, "connected=%d connects=%ld subscribed=%d sent=%ld acked=%ld failed=%ld delivered=%ld dups=%ld "
	           "refused=%ld rx_key=0x%08x markers=%d done=%d nokey=%s nokey_ms=%ld\n",
	        connected, G.connects, G.sub.done && G.sub.rc == VEIL_OK ? 1 : 0, G.sent,
	        G.acked, G.failed, G.delivered, G.dups, G.refused, (unsigned)G.rx_key, G.n_markers, done ? 1 : 0,
	        G.nokey_rc ? veil_errname(G.nokey_rc) : "-",
	        G.nokey_rc ? (long)((now_s() - G.nokey_since) * 1000) : 0L);
	pthread_mutex_unlock(&G.mu);
	if (fclose(f) == 0)
		rename(tmp, path);
}

static void write_reports(const char *out)
{
	char path[1024];
	pthread_mutex_lock(&G.mu);
	snprintf(path, sizeof(path), "%s/%s.acked", out, G.id);
	FILE *f = fopen(path, "w");
	for (size_t k = 0; f && k < G.n_ack; k++)
		fprintf(f, "%d %s %ld\n", G.ack[k].run, G.phases[G.ack[k].phase], G.ack[k].i);
	if (f)
		fclose(f);
	snprintf(path, sizeof(path), "%s/%s.recv", out, G.id);
	f = fopen(path, "w");
	struct seen *s, *tmp;
	HASH_ITER(hh, G.seen, s, tmp) {
		if (f) {
			char *p = s->key;
			for (char *q = p; *q; q++)
				*q = *q == '|' ? ' ' : *q;
			fprintf(f, "%s\n", p);
		}
	}
	if (f)
		fclose(f);
	snprintf(path, sizeof(path), "%s/%s.refused", out, G.id);
	f = fopen(path, "w");
	for (int k = 0; f && k < 64; k++) {
		if (G.refused_by[k])
			fprintf(f, "%s %ld\n", veil_errname(-k), G.refused_by[k]);
	}
	if (f)
		fclose(f);
	pthread_mutex_unlock(&G.mu);
}

/* Every id of ctl/expect but ours has sent its marker of phase. */
static bool markers_in(const char *ctl, const char *phase)
{
	char path[1024], line[256];
	snprintf(path, sizeof(path), "%s/expect", ctl);
	FILE *f = fopen(path, "r");
	if (!f)
		return true;
	bool all = true;
	while (all && fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\r\n")] = '\0';
		if (!line[0] || !strcmp(line, G.id))
			continue;
		char key[400];
		snprintf(key, sizeof(key), "%s %s", line, phase);
		bool got = false;
		pthread_mutex_lock(&G.mu);
		for (int k = 0; k < G.n_markers && !got; k++)
			got = !strcmp(G.markers[k], key);
		pthread_mutex_unlock(&G.mu);
		all = got;
	}
	fclose(f);
	return all;
}

/* One QoS 1 publish of the next message; false when libveil did not take
 * it (not connected, no key yet, Paho's queue full): the same index is
 * tried again on the next tick. */
static bool publish_next(const char *topic, const char *phase, long *next)
{
	struct acked *a = malloc(sizeof(*a));
	if (!a)
		return false;
	char payload[256];
	int n = snprintf(payload, sizeof(payload), "%s|%d|%s|%ld", G.id, G.run, phase, *next);
	pthread_mutex_lock(&G.mu);
	a->run = G.run;
	a->phase = phase_index(phase);
	a->i = *next;
	G.inflight++;
	pthread_mutex_unlock(&G.mu);
	int rc = veil_async_publish(G.a, topic, payload, (size_t)n, 1, false, on_ack, a);
	bool nokey = rc == VEIL_ERR_NO_POLICY || rc == VEIL_ERR_NO_KEY;
	pthread_mutex_lock(&G.mu);
	if (nokey && G.nokey_rc != rc) {
		/* Once a streak: no key covers our own topic (keyd granted none). */
		fprintf(stderr, "%.3f %s: publish on %s refused: %s (%s)\n", now_s(), G.id, topic, veil_errname(rc),
		        veil_strerror(rc));
		G.nokey_rc = rc;
		G.nokey_since = now_s();
	} else if (rc == VEIL_OK) {
		G.nokey_rc = 0;
	}
	if (rc != VEIL_OK) {
		G.inflight--;
		pthread_mutex_unlock(&G.mu);
		free(a);
		return false;
	}
	G.sent++;
	pthread_mutex_unlock(&G.mu);
	(*next)++;
	return true;
}

static bool ready_now(void)
{
	pthread_mutex_lock(&G.mu);
	bool r = G.ready;
	pthread_mutex_unlock(&G.mu);
	return r;
}

static void on_signal(int sig)
{
	(void)sig;
	stop_now = 1;
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "config", required_argument, NULL, 'c' }, { "uri", required_argument, NULL, 'u' },
		{ "ctl", required_argument, NULL, 'C' },    { "out", required_argument, NULL, 'o' },
		{ "rate", required_argument, NULL, 'r' },   { "run", required_argument, NULL, 'n' },
		{ "end-timeout", required_argument, NULL, 'e' }, { "connect-timeout", required_argument, NULL, 't' },
		{ NULL, 0, NULL, 0 },
	};
	const char *config = NULL, *uri = NULL, *ctl = NULL, *out = NULL;
	double rate = 5, end_timeout = 60;
	int connect_timeout = 15, c;
	G.run = 1;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'c': config = optarg; break;
		case 'u': uri = optarg; break;
		case 'C': ctl = optarg; break;
		case 'o': out = optarg; break;
		case 'r': rate = atof(optarg); break;
		case 'n': G.run = atoi(optarg); break;
		case 'e': end_timeout = atof(optarg); break;
		case 't': connect_timeout = atoi(optarg); break;
		default: return 2;
		}
	}
	if (!config || !uri || !ctl || !out || rate <= 0) {
		fprintf(stderr, "usage: veil-cluster-dev --config FILE --uri URI --ctl DIR --out DIR [--rate R] [--run N]\n");
		return 2;
	}
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	if (veil_init() != VEIL_OK)
		return 1;
	struct veil_client_options o;
	memset(&o, 0, sizeof(o));
	o.version = VEIL_CLIENT_OPTIONS_VERSION;
	struct veil_client_config *cfg = NULL;
	char err[512] = "";
	if (veil_client_config_load(config, &o, &cfg, err, sizeof(err)) != VEIL_OK) {
		fprintf(stderr, "veil-cluster-dev: %s\n", err);
		return 1;
	}
	G.id = o.client_id;
	o.server_uri = uri;
	o.mqtt_version = VEIL_MQTT_5;
	o.persistent_session = true;
	o.auto_reconnect = true;
	o.keepalive_s = 10;
	o.connect_timeout_s = connect_timeout;
	o.log = log_cb;
	int rc = veil_async_new(&o, &G.a);
	if (rc != VEIL_OK) {
		fprintf(stderr, "veil-cluster-dev: %s: %s\n", G.id, veil_strerror(rc));
		veil_client_config_free(&cfg);
		return 1;
	}
	veil_async_set_callbacks(G.a, NULL, on_msg, on_refused, on_lost);
	veil_async_set_connected(G.a, on_connected, NULL);
	veil_async_connect(G.a, NULL, NULL);

	G.out = out;
	char topic[200], phase[64], cmd[64], id_cmd[200], cur[64] = "";
	snprintf(topic, sizeof(topic), "fleet/%s/t", G.id);
	snprintf(id_cmd, sizeof(id_cmd), "%s.cmd", G.id);
	long next = 0;
	bool online = true, pacing = false;
	double t0 = 0, end_by = 0;
	int status_tick = 0;
	while (!stop_now) {
		read_word(ctl, "phase", phase);
		read_word(ctl, id_cmd, cmd);
		if (!strcmp(cmd, "offline") && online) {
			veil_async_disconnect(G.a, 1000, NULL, NULL);
			pthread_mutex_lock(&G.mu);
			G.ready = false;
			G.nokey_rc = 0;
			pthread_mutex_unlock(&G.mu);
			online = false;
		} else if (strcmp(cmd, "offline") != 0 && !online) {
			veil_async_connect(G.a, NULL, NULL);
			online = true;
		}
		bool ready = online && ready_now();
		/* Leaving a phase: its marker, after its last message (retried
		 * until libveil takes it; only while ready). */
		if (ready && phase[0] && strcmp(phase, cur) != 0) {
			char payload[200];
			int n = cur[0] ? snprintf(payload, sizeof(payload), "%s|%d|#%s|0", G.id, G.run, cur) : 0;
			if (!cur[0] || veil_async_publish(G.a, topic, payload, (size_t)n, 1, false, NULL, NULL) == VEIL_OK) {
				if (!strcmp(phase, END)) {
					if (end_by == 0)
						end_by = now_s() + end_timeout;
				} else {
					snprintf(cur, sizeof(cur), "%s", phase);
					pacing = false;
				}
			}
		}
		if (end_by > 0) {
			if (markers_in(ctl, cur) || now_s() > end_by)
				break;
		} else if (ready && cur[0] && !strcmp(phase, cur) && strcmp(cur, HOLD) != 0) {
			/* Paced at `rate` from the phase's first message; after a gap
			 * (offline, reconnecting) it goes on at the rate, no burst. */
			if (!pacing) {
				pacing = true;
				t0 = now_s() - (double)next / rate;
			}
			double due = (now_s() - t0) * rate;
			while ((double)next < due + 1) {
				pthread_mutex_lock(&G.mu);
				bool room = G.inflight < WINDOW;
				pthread_mutex_unlock(&G.mu);
				if (!room || !publish_next(topic, cur, &next))
					break;
			}
			if ((double)next < due - rate)
				t0 = now_s() - (double)next / rate;
		}
		if (++status_tick % 10 == 0)
			write_status(out, false);
		pause_ms(20);
	}
	write_reports(out);
	write_status(out, true);
	veil_async_disconnect(G.a, 1000, NULL, NULL);
	veil_async_free(&G.a);
	veil_client_config_free(&cfg);
	struct seen *s, *tmp;
	HASH_ITER(hh, G.seen, s, tmp) {
		HASH_DEL(G.seen, s);
		free(s);
	}
	free(G.ack);
	return 0;
}
