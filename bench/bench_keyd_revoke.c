/*
 * Revocation to containment with veil-keyd (issue 13, "Revocation triggers
 * rekey", benchmark), for 100 and 1,000 devices on one shared scope
 * (fleet/#), against a real Mosquitto with the Veil plugin and veil-keyd as
 * a child process. The devices are key-service devices in this process
 * (core/bundle.c only, one MQTT 3.1.1 connection each; the test support's
 * keyd_device.c reports through Check, which a benchmark does not run):
 * they open every bundle sealed to them and acknowledge it, as libveil
 * does.
 *
 * Cases, interleaved and repeated (bench_stats.h):
 *   - baseline: a forced rotation of the scope (`veil keys rotate`'s
 *     request row in keyd's store), from the request to keyd's log holding
 *     an acknowledgement from every device (keyd's `ack | record` lines);
 *   - revocation: one more device's client id appended to the revocation
 *     list that the plugin and keyd both read, from the rename to (a) that
 *     device's connection lost (the plugin's kick) and (b) keyd's log
 *     holding an acknowledgement from every remaining device of the
 *     superseding epoch's bundle (the last of them: the maximum).
 * In both cases, (c): one remaining device keeps sending (every 10 ms, on
 * fleet/watch) messages sealed under the epoch it held before the trigger,
 * and a libveil receiver (veil_client with the key service, in this
 * process, not counted in (b)) reads them: from the trigger to the first
 * of them it no longer opens (it holds or refuses it: the epoch was
 * dropped `rekey_grace` seconds after the receiver applied the superseding
 * bundle, keyd's default 5 s here). Old-epoch messages it still opened
 * after the trigger are counted.
 * Each repetition (and the warm-up) revokes another device; the fleet
 * shrinks by one each time. The plugin notices a revocation at its TICK
 * (once a second), so (a) holds up to a second of waiting; keyd reads the
 * list when inotify reports it written (the forced rotation's request is
 * polled every 0.1 s). The devices' own work (open, sign the
 * acknowledgement) runs here on Paho's one callback thread, one device
 * after another, on the machine that runs the broker and keyd.
 *
 * Target, reported and never judged: (b) within 2 s for 1,000 devices.
 * VEIL_BENCH_QUICK=1: 100 devices only. Binaries from $VEIL_PLUGIN,
 * $VEIL_KEYD (or next to this program).
 */
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <MQTTAsync.h>
#include <sodium.h>

#include "veil/client.h"
#include "veil/veil.h"
#include "../core/bundle.h"
#include "bench_keyd_common.h"
#include "bench_keyd_fleet.h"
#include "bench_stats.h"
#include "broker.h"
#include "files.h"
#include "keyd.h"
#include "store.h"

enum { C_ROTATION, C_REVOCATION, NCASES };
static const char *case_name[] = { "forced rotation", "revocation" };
enum { V_ACKED, V_KICK, V_REFUSED, V_OLD_OPENED, V_CPU, V_BUNDLE_KIB, V_ACK_KIB, V_DB_KIB, NVALUES };

#define WATCH_TOPIC "fleet/watch"
#define WATCH_CID "w0"
#define OLD_EVERY_US 10000 /* the superseded-epoch sender's pace */
#define IDLE_S 10U

struct bench {
	struct bench_keyd_fleet f;
	size_t next_revoked; /* f.devs[0 .. next_revoked - 1] are revoked */
	/* (c): the receiver, and the sender of superseded-epoch messages
	 * (under f.lock). */
	struct veil_client *watch;
	pthread_t old_thread;
	bool old_running, old_stop;
	struct veil__grant old;  /* the epoch the sender keeps sealing with */
	uint64_t old_seq;
	double refused_at;       /* first old-epoch message not opened (0: none yet) */
	size_t old_opened;       /* old-epoch messages opened since the trigger */
	bool watch_armed;
	bool old_drained;        /* the receiver opened the sender's closing message */
	double idle_cpu_min;     /* keyd's CPU seconds per minute with nothing to do */
};

/* ---- (c): superseded-epoch messages and a libveil receiver ---------------- */

static void watch_not_opened(struct bench *b)
{
	pthread_mutex_lock(&b->f.lock);
	if (b->watch_armed && b->refused_at == 0) {
		b->refused_at = bench_now_s();
		pthread_cond_broadcast(&b->f.cond);
	}
	pthread_mutex_unlock(&b->f.lock);
}

static void watch_message(void *ctx, const struct veil_message *m)
{
	struct bench *b = ctx;
	pthread_mutex_lock(&b->f.lock);
	if (m->len == 3 && !memcmp(m->payload, "end", 3)) {
		b->old_drained = true; /* every message sent before it has arrived */
		pthread_cond_broadcast(&b->f.cond);
	} else if (b->watch_armed && m->key_id == b->old.key_id) {
		b->old_opened++;
	}
	pthread_mutex_unlock(&b->f.lock);
}

static void watch_refusal(void *ctx, const struct veil_refusal *r)
{
	(void)r;
	watch_not_opened(ctx);
}

/* libveil holds a message under a key it lacks on a topic of its scopes
 * (and asks keyd for its bundle) before it refuses it for good: for an
 * epoch it dropped, holding it is already not opening it. */
static void watch_log(void *ctx, int level, const char *msg)
{
	(void)level;
	if (strstr(msg, "'" WATCH_TOPIC "' held"))
		watch_not_opened(ctx);
}

/* One message on fleet/watch from the sender device (devs[n - 1]), sealed
 * under g; its sequence numbers only grow. */
static int old_send(struct bench *b, const struct veil__grant *g, const char *text)
{
	struct bench_keyd_dev *v = &b->f.devs[b->f.n - 1];
	uint8_t pk[VEIL_PK_BYTES], out[256];
	struct veil_seal_params p = { .key = g->key, .key_id = g->key_id };
	veil_identity_public(v->id, pk);
	veil_sender_id(pk, p.sender);
	pthread_mutex_lock(&b->f.lock);
	p.seq = ++b->old_seq;
	pthread_mutex_unlock(&b->f.lock);
	size_t n = 0;
	if (veil_envelope_seal(&p, WATCH_TOPIC, (const uint8_t *)text, strlen(text), out, sizeof(out), &n) != VEIL_OK)
		return -1;
	MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
	return MQTTAsync_send(v->c_mqtt, WATCH_TOPIC, (int)n, out, 1, 0, &ro) == MQTTASYNC_SUCCESS ? 0 : -1;
}

static void *old_main(void *arg)
{
	struct bench *b = arg;
	for (;;) {
		pthread_mutex_lock(&b->f.lock);
		bool stop = b->old_stop;
		pthread_mutex_unlock(&b->f.lock);
		if (stop || old_send(b, &b->old, "old") != 0)
			break;
		usleep(OLD_EVERY_US); /* the pace of a sender, not a wait for an event */
	}
	return NULL;
}

/* The sender starts on the epoch it holds now; the receiver is armed. */
static int old_start(struct bench *b)
{
	struct bench_keyd_dev *v = &b->f.devs[b->f.n - 1];
	pthread_mutex_lock(&b->f.lock);
	bool ok = v->has_cur;
	if (ok) {
		b->old = v->cur;
		b->old_stop = false;
		b->refused_at = 0;
		b->old_opened = 0;
		b->watch_armed = true;
	}
	pthread_mutex_unlock(&b->f.lock);
	if (!ok || pthread_create(&b->old_thread, NULL, old_main, b) != 0)
		return -1;
	b->old_running = true;
	return 0;
}

/* Stop the sender, then one message under its newest epoch: once the
 * receiver opened it, every old-epoch one has arrived (one publisher, one
 * topic, QoS 1: in order), none is left for the next case. */
static int old_finish(struct bench *b)
{
	if (!b->old_running)
		return 0;
	pthread_mutex_lock(&b->f.lock);
	b->old_stop = true;
	pthread_mutex_unlock(&b->f.lock);
	pthread_join(b->old_thread, NULL);
	b->old_running = false;
	pthread_mutex_lock(&b->f.lock);
	b->watch_armed = false;
	b->old_drained = false;
	struct veil__grant g = b->f.devs[b->f.n - 1].cur;
	pthread_mutex_unlock(&b->f.lock);
	int rc = old_send(b, &g, "end") == 0 && bench_keyd_fleet_wait_flag(&b->f, &b->old_drained) ? 0 : -1;
	sodium_memzero(&g, sizeof(g));
	return rc;
}

static int watch_start(struct bench *b)
{
	char idp[320], crp[320];
	int rc = bench_keyd_device_files(b->f.auth, b->f.dir, WATCH_CID, "fleet", idp, sizeof(idp), crp,
	                                 sizeof(crp)) == VEIL_OK
	                 ? 0
	                 : -1;
	struct veil_client_options o = { .version = VEIL_CLIENT_OPTIONS_VERSION, .server_uri = b->f.uri,
		                         .client_id = WATCH_CID, .identity_path = idp, .credential_path = crp,
		                         .authority_path = b->f.apub, .key_service = VEIL_KEYS_ON, .log = watch_log,
		                         .log_ctx = b };
	if (rc == 0 && (veil_client_new(&o, &b->watch) != VEIL_OK ||
	                veil_client_set_callbacks(b->watch, b, watch_message, watch_refusal, NULL) != VEIL_OK ||
	                veil_client_connect(b->watch) != VEIL_OK ||
	                veil_client_wait_keys(b->watch, (unsigned long)(BENCH_KEYD_WAIT_S * 1000)) != VEIL_OK ||
	                veil_client_subscribe(b->watch, WATCH_TOPIC, 1) != VEIL_OK))
		rc = -1;
	return rc;
}

/* ---- the fleet ----------------------------------------------------------- */

static int setup(struct bench *b, size_t n, const char *plugin, const char *keyd_bin)
{
	int rc = bench_keyd_fleet_start(&b->f, n, plugin, keyd_bin,
	                                "request_rate 100000\nscope fleet/# period 3600 lead 300 grace 600 depth 0\n");
	if (rc == 0)
		rc = watch_start(b);
	/* Every device holds its first bundle and keyd recorded its ack. */
	if (rc == 0 && bench_keyd_fleet_wait_acks(&b->f, n) < 0)
		rc = -1;
	return rc;
}

static void teardown(struct bench *b)
{
	old_finish(b);
	if (b->watch) {
		veil_client_disconnect(b->watch, 100);
		veil_client_free(&b->watch);
	}
	bench_keyd_fleet_stop(&b->f);
}

/* ---- the cases ------------------------------------------------------------ */

static size_t remaining(const struct bench *b)
{
	return b->f.n - b->next_revoked;
}

static int run_rotation(struct bench *b, double *v, double *t0p)
{
	struct kd_store *s = NULL;
	char err[256] = "";
	size_t before = bench_keyd_fleet_acks(&b->f), want = before + remaining(b);
	double t0 = *t0p = bench_now_s();
	if (kd_store__open(b->f.db, NULL, false, &s, err, sizeof(err)) != VEIL_OK ||
	    kd_store__rotate_request(s, "fleet/#", (uint64_t)time(NULL)) != VEIL_OK) {
		fprintf(stderr, "bench_keyd_revoke: rotation request: %s\n", err);
		kd_store__close(&s);
		return -1;
	}
	kd_store__close(&s);
	double t = bench_keyd_fleet_wait_acks(&b->f, want);
	if (t < 0) {
		fprintf(stderr, "bench_keyd_revoke: %zu of %zu acknowledgements after a rotation\n",
		        bench_keyd_fleet_acks(&b->f) - before, remaining(b));
		return -1;
	}
	v[V_ACKED] = t - t0;
	v[V_KICK] = 0;
	return 0;
}

/* The revocation list with one more client id, written beside and renamed
 * (the plugin and keyd never read half of it). */
static int list_revoke(struct bench *b, size_t i)
{
	char tmp[320], line[64];
	size_t len = 0;
	char *was = test_file_read(b->f.revoked, &len);
	if (!was)
		return -1;
	snprintf(tmp, sizeof(tmp), "%s.tmp", b->f.revoked);
	snprintf(line, sizeof(line), "client d%zu\n", i);
	FILE *f = fopen(tmp, "w");
	int rc = f && fwrite(was, 1, len, f) == len && fputs(line, f) >= 0 ? 0 : -1;
	if (f && fclose(f) != 0)
		rc = -1;
	free(was);
	return rc == 0 && rename(tmp, b->f.revoked) == 0 ? 0 : -1;
}

static int run_revocation(struct bench *b, double *v, double *t0p)
{
	if (b->next_revoked + 1 >= b->f.n) /* devs[n - 1] sends the old-epoch messages */
		return -1;
	struct bench_keyd_dev *x = &b->f.devs[b->next_revoked++];
	size_t before = bench_keyd_fleet_acks(&b->f), want = before + remaining(b);
	double t0 = *t0p = bench_now_s();
	if (list_revoke(b, b->next_revoked - 1) != 0) {
		fprintf(stderr, "bench_keyd_revoke: revocation list not written\n");
		return -1;
	}
	double t = bench_keyd_fleet_wait_acks(&b->f, want);
	if (t < 0 || !bench_keyd_fleet_wait_flag(&b->f, &x->lost)) {
		fprintf(stderr, "bench_keyd_revoke: %zu of %zu acknowledgements after a revocation, revoked device %s\n",
		        bench_keyd_fleet_acks(&b->f) - before, remaining(b), x->lost ? "disconnected" : "still connected");
		return -1;
	}
	pthread_mutex_lock(&b->f.lock);
	v[V_KICK] = x->lost_at - t0;
	pthread_mutex_unlock(&b->f.lock);
	v[V_ACKED] = t - t0;
	return 0;
}

/* The first old-epoch message the receiver did not open: its time, or a
 * negative value after BENCH_KEYD_WAIT_S. */
static double wait_refused(struct bench *b)
{
	struct timespec dl;
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += (time_t)BENCH_KEYD_WAIT_S;
	pthread_mutex_lock(&b->f.lock);
	int rc = 0;
	while (b->refused_at == 0 && rc == 0)
		rc = pthread_cond_timedwait(&b->f.cond, &b->f.lock, &dl);
	double t = b->refused_at > 0 ? b->refused_at : -1;
	pthread_mutex_unlock(&b->f.lock);
	return t;
}

static int run_case(void *ctx, size_t c, double *v)
{
	struct bench *b = ctx;
	double t0 = 0;
	if (old_start(b) != 0) {
		fprintf(stderr, "bench_keyd_revoke: the superseded-epoch sender did not start\n");
		return -1;
	}
	bench_keyd_fleet_acks(&b->f);
	pthread_mutex_lock(&b->f.lock);
	double bytes0 = (double)b->f.log_bundle_bytes, ack0 = (double)b->f.ack_bytes;
	pthread_mutex_unlock(&b->f.lock);
	double cpu0 = bench_keyd_cpu_s(b->f.keyd), db0 = bench_keyd_fleet_store_used(&b->f);
	int rc = c == C_ROTATION ? run_rotation(b, v, &t0) : run_revocation(b, v, &t0);
	/* What the rekey cost keyd, once every device acknowledged it. */
	v[V_CPU] = bench_keyd_cpu_s(b->f.keyd) - cpu0;
	v[V_DB_KIB] = (bench_keyd_fleet_store_used(&b->f) - db0) / 1024.0;
	bench_keyd_fleet_acks(&b->f);
	pthread_mutex_lock(&b->f.lock);
	v[V_BUNDLE_KIB] = ((double)b->f.log_bundle_bytes - bytes0) / 1024.0;
	v[V_ACK_KIB] = ((double)b->f.ack_bytes - ack0) / 1024.0;
	pthread_mutex_unlock(&b->f.lock);
	double refused = rc == 0 ? wait_refused(b) : -1;
	if (rc == 0 && refused < 0) {
		fprintf(stderr, "bench_keyd_revoke: the receiver still opens superseded-epoch messages after %.0f s\n",
		        BENCH_KEYD_WAIT_S);
		rc = -1;
	}
	pthread_mutex_lock(&b->f.lock);
	v[V_REFUSED] = refused - t0;
	v[V_OLD_OPENED] = (double)b->old_opened;
	pthread_mutex_unlock(&b->f.lock);
	if (old_finish(b) != 0 && rc == 0) {
		fprintf(stderr, "bench_keyd_revoke: the sender's closing message never reached the receiver\n");
		rc = -1;
	}
	return rc;
}

static void report(const struct bench_table *t, void *ctx)
{
	struct bench *b = ctx;
	char x[BENCH_FMT_CAP], y[BENCH_FMT_CAP], q[BENCH_FMT_CAP];
	printf("%zu devices: %-40s %-28s %-28s %s\n", b->f.n, "figure (seconds)", case_name[C_ROTATION],
	       case_name[C_REVOCATION], "revocation vs rotation");
	printf("  %-50s %-28s %-28s %s\n", "(b) trigger to every device's ack (keyd's log)",
	       bench_fmt_value(x, sizeof(x), t, C_ROTATION, V_ACKED), bench_fmt_value(y, sizeof(y), t, C_REVOCATION, V_ACKED),
	       bench_fmt_vs(q, sizeof(q), t, C_REVOCATION, V_ACKED, C_ROTATION));
	printf("  %-50s %-28s %-28s %s\n", "(a) revocation to the revoked device disconnected", "-",
	       bench_fmt_value(y, sizeof(y), t, C_REVOCATION, V_KICK), "-");
	printf("  %-50s %-28s %-28s %s\n", "(c) trigger to the first old-epoch message refused",
	       bench_fmt_value(x, sizeof(x), t, C_ROTATION, V_REFUSED),
	       bench_fmt_value(y, sizeof(y), t, C_REVOCATION, V_REFUSED),
	       bench_fmt_vs(q, sizeof(q), t, C_REVOCATION, V_REFUSED, C_ROTATION));
	printf("  %-50s %-28s %-28s %s\n", "    old-epoch messages opened before it (count)",
	       bench_fmt_value(x, sizeof(x), t, C_ROTATION, V_OLD_OPENED),
	       bench_fmt_value(y, sizeof(y), t, C_REVOCATION, V_OLD_OPENED), "-");
	static const struct { size_t k; const char *name; } cost[] = {
		{ V_CPU, "keyd's CPU seconds (utime + stime), trigger to (b)" },
		{ V_BUNDLE_KIB, "bundles keyd published (KiB of payload)" },
		{ V_ACK_KIB, "acknowledgements the devices sent (KiB of payload)" },
		{ V_DB_KIB, "keyd's store growth (KiB in use)" },
	};
	for (size_t i = 0; i < sizeof(cost) / sizeof(cost[0]); i++)
		printf("  %-50s %-28s %-28s %s\n", cost[i].name, bench_fmt_value(x, sizeof(x), t, C_ROTATION, cost[i].k),
		       bench_fmt_value(y, sizeof(y), t, C_REVOCATION, cost[i].k),
		       bench_fmt_vs(q, sizeof(q), t, C_REVOCATION, cost[i].k, C_ROTATION));
	printf("  keyd idle (no rotation): %.3f CPU seconds per minute\n", b->idle_cpu_min);
	printf("  (c) includes the receiver's rekey_grace (keyd's default, %u s) after it applied the superseding bundle\n",
	       (unsigned)KD_DEFAULT_REKEY_GRACE);
	struct bench_summary s;
	bench_table_summary(t, C_REVOCATION, V_ACKED, BENCH_NO_BASE, &s);
	if (b->f.n >= 1000)
		printf("target: (b) for %zu devices within 2 s: %s (median %.3f s over %zu repetitions)\n", b->f.n,
		       s.median <= 2.0 ? "met" : "NOT met", s.median, s.n);
	if (b->f.errors)
		printf("note: %d bundles the devices could not open or acknowledge\n", b->f.errors);
}

static int measure(const struct bench_plan *plan, size_t n, const char *plugin, const char *keyd)
{
	struct bench b = { .next_revoked = 0 };
	int rc = setup(&b, n, plugin, keyd);
	if (rc != 0) {
		fprintf(stderr, "bench_keyd_revoke: setup failed for %zu devices (broker, keyd or the fleet)\n", n);
		test_file_dump("keyd", b.f.log);
	} else {
		/* keyd's cost between rotations, over a window with nothing to do
		 * (a measurement window, not a wait for an event). */
		double c0 = bench_keyd_cpu_s(b.f.keyd), t0 = bench_now_s();
		sleep(IDLE_S);
		b.idle_cpu_min = (bench_keyd_cpu_s(b.f.keyd) - c0) * 60.0 / (bench_now_s() - t0);
		rc = bench_measure(plan, NCASES, NVALUES, run_case, true, report, &b);
	}
	teardown(&b);
	return rc;
}

int main(void)
{
	struct bench_plan plan;
	if (bench_plan_init(&plan, 900, 300) != 0 || veil_init() != VEIL_OK)
		return 1;
	bench_keyd_fleet_nofile();
	char pbuf[PATH_MAX + 64], kbuf[PATH_MAX + 64];
	const char *plugin = bench_plugin_path(pbuf, sizeof(pbuf));
	const char *keyd = bench_build_path("VEIL_KEYD", "keyd/veil-keyd", kbuf, sizeof(kbuf));
	printf("bench_keyd_revoke: revocation of one device to (a) its disconnection and (b) every remaining device's "
	       "acknowledgement of the superseding epoch, against a forced rotation of the same scope; one shared "
	       "scope, devices in this process\n");
	int rc = plugin && keyd ? 0 : -1;
	const size_t sizes[] = { 100, 1000 };
	for (size_t i = 0; rc == 0 && i < (plan.quick ? 1U : 2U); i++)
		rc = measure(&plan, sizes[i], plugin, keyd);
	return rc == 0 ? 0 : 1;
}
