/*
 * What 1-minute epochs cost at 1,000 devices (issue 13, "Document the
 * granularity honestly": within an epoch there is no forward secrecy, the
 * epoch length is the operator's trade-off), measured directly rather than
 * derived from one rekey's cost (bench_keyd_revoke.c).
 *
 * A real Mosquitto with the Veil plugin, veil-keyd as a child process with
 * one shared scope (fleet/#, every device entitled) and 1,000 key-service
 * devices in this process that open every bundle sealed to them and
 * acknowledge it (bench_keyd_fleet.h). Each run starts a fresh broker, keyd
 * and fleet, waits until every device acknowledged its first bundle (the
 * warm-up), then measures a window of WINDOW_S seconds (at least three
 * periods of 60 s). Cases, interleaved and repeated (bench_stats.h):
 *   - idle: `period 3600`, so no rotation falls in the window (keyd's and
 *     the broker's cost of holding the fleet);
 *   - 1-minute epochs: `period 60 lead 60 grace 60` (lead and grace at
 *     least twice token_window, here 30), depth the default (2).
 * Per minute of the window: keyd's and the broker's CPU seconds (utime +
 * stime from /proc), this process's (the devices' own work), the payload
 * bytes of the bundles the devices received and of the acknowledgements
 * they sent, the growth of keyd's store (bytes in use, WAL included),
 * rotations observed (the epoch device d0 seals with changed to a newer
 * one) and bundles per device. The cost of the 1-minute epochs is the
 * difference, taken per repetition (epochs run i - idle run i), also per
 * rotation (the window holds three or four).
 *
 * VEIL_BENCH_REPEAT defaults to 2 here (each run is minutes).
 * VEIL_BENCH_QUICK=1: 100 devices and a QUICK_WINDOW_S window.
 * Binaries from $VEIL_PLUGIN, $VEIL_KEYD (or next to this program).
 */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "veil/veil.h"
#include "bench_keyd_common.h"
#include "bench_keyd_fleet.h"
#include "bench_stats.h"
#include "files.h"

enum { C_IDLE, C_EPOCHS, NCASES };
static const char *case_name[] = { "idle (period 3600)", "1-minute epochs" };
static const char *const case_conf[] = {
	"request_rate 100000\ntoken_window 30\nscope fleet/# period 3600 lead 60 grace 60\n",
	"request_rate 100000\ntoken_window 30\nscope fleet/# period 60 lead 60 grace 60\n",
};
enum { V_KEYD_CPU, V_BROKER_CPU, V_DEV_CPU, V_BUNDLE_MIB, V_ACK_MIB, V_STORE_KIB, V_ROT, V_BUNDLES, NVALUES };
static const char *const value_name[NVALUES] = {
	"keyd CPU seconds", "broker CPU seconds", "devices' CPU seconds (this process)",
	"bundles received (MiB of payload)", "acknowledgements sent (MiB of payload)",
	"keyd store growth (KiB in use, WAL incl.)", "rotations observed (d0's epoch)", "bundles per device",
};

#define WINDOW_S 200.0      /* three periods of 60 s and then some */
#define QUICK_WINDOW_S 70.0 /* VEIL_BENCH_QUICK=1: one rotation or two */

struct ctx {
	size_t n;
	double window_s;
	const char *plugin, *keyd;
	int errors;
};

struct snap {
	double t, keyd, broker, self, store;
	uint64_t bundle_bytes, ack_bytes, rot, bundles;
};

static void snap_take(struct bench_keyd_fleet *f, struct snap *s)
{
	s->t = bench_now_s();
	s->keyd = bench_keyd_cpu_s(f->keyd);
	s->broker = bench_keyd_cpu_s(f->br.pid);
	s->self = bench_keyd_cpu_s(getpid());
	s->store = bench_keyd_fleet_store_used(f);
	pthread_mutex_lock(&f->lock);
	s->bundle_bytes = f->bundle_bytes;
	s->ack_bytes = f->ack_bytes;
	s->rot = f->send_changes;
	s->bundles = f->bundles;
	pthread_mutex_unlock(&f->lock);
}

static int run_case(void *vctx, size_t c, double *v)
{
	struct ctx *x = vctx;
	struct bench_keyd_fleet f;
	struct snap a, b;
	int rc = bench_keyd_fleet_start(&f, x->n, x->plugin, x->keyd, case_conf[c]);
	if (rc == 0 && bench_keyd_fleet_wait_acks(&f, x->n) < 0)
		rc = -1;
	if (rc != 0) {
		fprintf(stderr, "bench_keyd_epochs: %s: setup failed (broker, keyd or the fleet; %zu of %zu acks)\n",
		        case_name[c], f.acks, x->n);
		test_file_dump("keyd", f.log);
		bench_keyd_fleet_stop(&f);
		return -1;
	}
	snap_take(&f, &a);
	/* The measurement window (not a wait for an event): bounded in time
	 * and in count. */
	for (unsigned i = 0; i < 10U * (unsigned)x->window_s && bench_now_s() - a.t < x->window_s; i++)
		usleep(100000);
	snap_take(&f, &b);
	bench_keyd_fleet_acks(&f); /* keyd's log read on, so it does not grow unread */
	pthread_mutex_lock(&f.lock);
	x->errors += f.errors;
	pthread_mutex_unlock(&f.lock);
	bench_keyd_fleet_stop(&f);
	if (a.keyd < 0 || b.keyd < 0 || a.broker < 0 || b.broker < 0 || a.store < 0 || b.store < 0) {
		fprintf(stderr, "bench_keyd_epochs: %s: keyd's or the broker's /proc figures, or the store, unreadable\n",
		        case_name[c]);
		return -1;
	}
	double per_min = 60.0 / (b.t - a.t);
	v[V_KEYD_CPU] = (b.keyd - a.keyd) * per_min;
	v[V_BROKER_CPU] = (b.broker - a.broker) * per_min;
	v[V_DEV_CPU] = (b.self - a.self) * per_min;
	v[V_BUNDLE_MIB] = (double)(b.bundle_bytes - a.bundle_bytes) / 1048576.0 * per_min;
	v[V_ACK_MIB] = (double)(b.ack_bytes - a.ack_bytes) / 1048576.0 * per_min;
	v[V_STORE_KIB] = (b.store - a.store) / 1024.0 * per_min;
	v[V_ROT] = (double)(b.rot - a.rot) * per_min;
	v[V_BUNDLES] = (double)(b.bundles - a.bundles) / (double)x->n * per_min;
	return 0;
}

/* Value k of epochs run i less idle run i over the completed repetitions;
 * per_rotation: divided by the rotations epochs run i saw (a window of
 * WINDOW_S seconds holds three or four of them: per rotation is the cost
 * per minute of exactly one a minute). */
static char *fmt_diff(char *out, size_t cap, const struct bench_table *t, size_t k, bool per_rotation)
{
	double d[BENCH_REPEAT_MAX];
	size_t n = 0;
	for (size_t r = 0; r < t->done && n < BENCH_REPEAT_MAX; r++) {
		const double *e = t->v + (r * t->ncases + C_EPOCHS) * t->nvalues;
		const double *i = t->v + (r * t->ncases + C_IDLE) * t->nvalues;
		d[n++] = per_rotation ? (e[V_ROT] > 0 ? (e[k] - i[k]) / e[V_ROT] : NAN) : e[k] - i[k];
	}
	struct bench_summary s;
	bench_summarize(d, n, &s);
	snprintf(out, cap, "%.3f [%.3f - %.3f]", s.median, s.min, s.max);
	return out;
}

static void report(const struct bench_table *t, void *vctx)
{
	struct ctx *x = vctx;
	char a[BENCH_FMT_CAP], b[BENCH_FMT_CAP], d[BENCH_FMT_CAP], r[BENCH_FMT_CAP];
	printf("%zu devices, per minute of a %.0f s window: median [min - max] over %zu repetitions\n", x->n,
	       x->window_s, t->done);
	printf("  %-44s %-24s %-24s %-26s %s\n", "figure (per minute)", case_name[C_IDLE], case_name[C_EPOCHS],
	       "epochs - idle", "the same per rotation");
	for (size_t k = 0; k < NVALUES; k++)
		printf("  %-44s %-24s %-24s %-26s %s\n", value_name[k], bench_fmt_value(a, sizeof(a), t, C_IDLE, k),
		       bench_fmt_value(b, sizeof(b), t, C_EPOCHS, k), fmt_diff(d, sizeof(d), t, k, false),
		       k == V_ROT || k == V_BUNDLES ? "-" : fmt_diff(r, sizeof(r), t, k, true));
	if (x->errors)
		printf("note: %d bundles the devices could not open or acknowledge\n", x->errors);
}

int main(void)
{
	struct bench_plan plan;
	if (setenv("VEIL_BENCH_REPEAT", "2", 0) != 0 || bench_plan_init(&plan, 2400, 600) != 0 ||
	    veil_init() != VEIL_OK)
		return 1;
	bench_keyd_fleet_nofile();
	char pbuf[PATH_MAX + 64], kbuf[PATH_MAX + 64];
	struct ctx x = { .n = plan.quick ? 100 : 1000, .window_s = plan.quick ? QUICK_WINDOW_S : WINDOW_S };
	x.plugin = bench_plugin_path(pbuf, sizeof(pbuf));
	x.keyd = bench_build_path("VEIL_KEYD", "keyd/veil-keyd", kbuf, sizeof(kbuf));
	printf("bench_keyd_epochs: the cost of 1-minute epochs (one shared scope, every device entitled, each "
	       "bundle applied and acknowledged) against an idle fleet (no rotation in the window); fresh broker, "
	       "keyd and devices per run\n");
	if (!x.plugin || !x.keyd)
		return 1;
	return bench_measure(&plan, NCASES, NVALUES, run_case, false, report, &x) == 0 ? 0 : 1;
}
