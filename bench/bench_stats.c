/*
 * Repetitions, the interleaved loop and the median/spread summaries every
 * benchmark prints (see bench_stats.h).
 */
#include "bench_stats.h"

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

double bench_now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

const char *bench_build_path(const char *env, const char *rel, char *buf, size_t cap)
{
	const char *p = getenv(env);
	if (p && *p)
		return p;
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return NULL;
	exe[n] = '\0';
	snprintf(buf, cap, "%s/../%s", dirname(exe), rel);
	return buf;
}

const char *bench_plugin_path(char *buf, size_t cap)
{
	return bench_build_path("VEIL_PLUGIN", "plugin/mosquitto_veil.so", buf, cap);
}

int bench_plan_init(struct bench_plan *p, double budget_s, double quick_budget_s)
{
	const char *q = getenv("VEIL_BENCH_QUICK");
	const char *r = getenv("VEIL_BENCH_REPEAT");
	const char *verbose = getenv("VEIL_BENCH_VERBOSE");
	p->quick = q && *q && strcmp(q, "0") != 0;
	p->verbose = verbose && *verbose && strcmp(verbose, "0") != 0;
	p->repeat = BENCH_REPEAT_DEFAULT;
	p->budget_s = p->quick ? quick_budget_s : budget_s;
	if (r && *r) {
		char *end = NULL;
		errno = 0;
		unsigned long v = strtoul(r, &end, 10);
		if (errno || *end || v < 1 || v > BENCH_REPEAT_MAX) {
			fprintf(stderr, "bench: VEIL_BENCH_REPEAT=%s: want 1..%d\n", r, BENCH_REPEAT_MAX);
			return -1;
		}
		p->repeat = (size_t)v;
	}
	return 0;
}

static void plan_print(const struct bench_plan *p)
{
	printf("%zu repetitions%s, cases interleaved (baseline, Veil, baseline, Veil, ...); "
	       "figures are median [min - max] over the repetitions, ratios per repetition pair%s\n",
	       p->repeat, p->repeat < BENCH_REPEAT_DEFAULT ? " (fewer than 5: spread is indicative only)" : "",
	       p->quick ? "; quick mode (shorter runs)" : "");
	fflush(stdout);
}

static int table_new(struct bench_table *t, size_t ncases, size_t nvalues, size_t repeat)
{
	memset(t, 0, sizeof(*t));
	t->v = calloc(ncases * nvalues * repeat, sizeof(*t->v));
	if (!t->v)
		return -1;
	t->ncases = ncases;
	t->nvalues = nvalues;
	t->repeat = repeat;
	return 0;
}

static void table_free(struct bench_table *t)
{
	free(t->v);
	memset(t, 0, sizeof(*t));
}

static double *cell(const struct bench_table *t, size_t rep, size_t c)
{
	return t->v + (rep * t->ncases + c) * t->nvalues;
}

static int run_interleaved(const struct bench_plan *p, struct bench_table *t, bench_case_fn fn, void *ctx,
                           bool warmup)
{
	double t0 = bench_now_s();
	t->done = 0;
	if (warmup) {
		double *scratch = calloc(t->nvalues, sizeof(*scratch));
		if (!scratch)
			return -1;
		for (size_t c = 0; c < t->ncases; c++) {
			if (fn(ctx, c, scratch) != 0) {
				free(scratch);
				return -1;
			}
		}
		free(scratch);
	}
	for (size_t rep = 0; rep < t->repeat; rep++) {
		if (rep > 0 && bench_now_s() - t0 > p->budget_s) {
			printf("(time budget of %.0f s spent: %zu of %zu repetitions)\n", p->budget_s, t->done, t->repeat);
			break;
		}
		for (size_t c = 0; c < t->ncases; c++) {
			double *values = cell(t, rep, c);
			if (fn(ctx, c, values) != 0)
				return -1;
			if (p->verbose) {
				printf("  [repetition %zu, case %zu:", rep + 1, c);
				for (size_t k = 0; k < t->nvalues; k++)
					printf(" %g", values[k]);
				printf("]\n");
				fflush(stdout);
			}
		}
		t->done = rep + 1;
	}
	return 0;
}

int bench_measure(const struct bench_plan *p, size_t ncases, size_t nvalues, bench_case_fn run, bool warmup,
                  bench_report_fn report, void *ctx)
{
	struct bench_table t;
	plan_print(p);
	int rc = table_new(&t, ncases, nvalues, p->repeat);
	if (rc == 0)
		rc = run_interleaved(p, &t, run, ctx, warmup);
	if (rc == 0)
		report(&t, ctx);
	table_free(&t);
	return rc;
}

/* Percentile p (0..100) of sorted x[0..n-1], linear between ranks. */
static double percentile(const double *sorted, size_t n, double p)
{
	if (n == 0)
		return NAN;
	double rank = p / 100.0 * (double)(n - 1);
	size_t lo = (size_t)rank;
	if (lo + 1 >= n)
		return sorted[n - 1];
	double frac = rank - (double)lo;
	return sorted[lo] + (sorted[lo + 1] - sorted[lo]) * frac;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

double bench_percentile(double *x, size_t n, double p)
{
	qsort(x, n, sizeof(*x), cmp_double);
	return percentile(x, n, p);
}

void bench_summarize(double *x, size_t n, struct bench_summary *s)
{
	qsort(x, n, sizeof(*x), cmp_double);
	s->n = n;
	s->median = percentile(x, n, 50);
	s->min = n ? x[0] : NAN;
	s->max = n ? x[n - 1] : NAN;
}

void bench_table_summary(const struct bench_table *t, size_t c, size_t k, size_t base, struct bench_summary *s)
{
	double x[BENCH_REPEAT_MAX];
	size_t n = 0;
	for (size_t rep = 0; rep < t->done && n < BENCH_REPEAT_MAX; rep++) {
		double v = cell(t, rep, c)[k];
		if (base < t->ncases) {
			double b = cell(t, rep, base)[k];
			v = b != 0 ? v / b : NAN;
		}
		x[n++] = v;
	}
	bench_summarize(x, n, s);
}

double bench_table_sum(const struct bench_table *t, size_t c, size_t k)
{
	double sum = 0;
	for (size_t rep = 0; rep < t->done; rep++)
		sum += cell(t, rep, c)[k];
	return sum;
}

static int digits(double v)
{
	double a = fabs(v);
	return a >= 1000 ? 0 : a >= 10 ? 1 : 2;
}

static char *fmt_summary(char *out, size_t cap, const struct bench_summary *s)
{
	int d = digits(s->median);
	snprintf(out, cap, "%.*f [%.*f - %.*f]", d, s->median, d, s->min, d, s->max);
	return out;
}

static char *fmt_ratio(char *out, size_t cap, const struct bench_summary *s)
{
	snprintf(out, cap, "%.2fx [%.2f - %.2f]", s->median, s->min, s->max);
	return out;
}

char *bench_fmt_value(char *out, size_t cap, const struct bench_table *t, size_t c, size_t k)
{
	struct bench_summary s;
	bench_table_summary(t, c, k, BENCH_NO_BASE, &s);
	return fmt_summary(out, cap, &s);
}

char *bench_fmt_vs(char *out, size_t cap, const struct bench_table *t, size_t c, size_t k, size_t base)
{
	struct bench_summary s;
	bench_table_summary(t, c, k, base, &s);
	return fmt_ratio(out, cap, &s);
}
