/*
 * What every benchmark shares: how many repetitions to run
 * (VEIL_BENCH_REPEAT, VEIL_BENCH_QUICK), the loop that runs the cases
 * interleaved (baseline, Veil, baseline, Veil, ...) so that background drift
 * on a shared machine hits both sides alike, and the figures printed per
 * case: the median and the spread (min - max) of the absolute value over the
 * repetitions, and of the ratio against the baseline, each ratio taken per
 * repetition pair (case run i / baseline run i). VEIL_BENCH_VERBOSE=1 also
 * prints every run's values as they come.
 *
 * Benchmarks report, they never judge: a figure below its target is printed
 * as such, and the exit status reflects errors only (a broker that did not
 * start, a refused login, a failed seal).
 */
#ifndef VEIL_BENCH_STATS_H
#define VEIL_BENCH_STATS_H

#include <stdbool.h>
#include <stddef.h>

#define BENCH_REPEAT_DEFAULT 5
#define BENCH_REPEAT_MAX 50

struct bench_plan {
	bool quick;      /* VEIL_BENCH_QUICK=1: shorter runs, same repetitions */
	size_t repeat;   /* VEIL_BENCH_REPEAT, 1..BENCH_REPEAT_MAX, default 5 */
	double budget_s; /* no repetition starts after this many seconds */
	bool verbose;    /* VEIL_BENCH_VERBOSE=1: every run's values as they come */
};

/* Reads the environment. The budget (budget_s, or quick_budget_s in quick
 * mode) bounds the whole interleaved loop: the repetition under way is
 * finished, so every ratio keeps its pair. Returns -1, after saying why on
 * stderr, for an invalid VEIL_BENCH_REPEAT. */
int bench_plan_init(struct bench_plan *p, double budget_s, double quick_budget_s);

/* Every value of every case of every repetition (v[rep][case][value]),
 * read through bench_table_summary and bench_table_sum. */
struct bench_table {
	size_t ncases, nvalues, repeat;
	size_t done; /* repetitions completed */
	double *v;
};

/* One run of case c: fills values[0 .. nvalues-1]; returns 0, or -1 on an
 * error (which stops the loop). Each run bounds its own time and count. */
typedef int (*bench_case_fn)(void *ctx, size_t c, double *values);
/* Prints the table's figures. */
typedef void (*bench_report_fn)(const struct bench_table *t, void *ctx);

/*
 * The whole measurement. Prints the plan (repetitions, order, what the
 * spread is); then for each repetition runs every case in order
 * 0 .. ncases-1 (with warmup, one unrecorded run of each case first); then
 * hands the table to report. Stops early, with a line saying so, only when
 * the plan's budget is spent (report then sees t->done < t->repeat).
 * Returns 0, or -1 on the first failed run (report is not called).
 */
int bench_measure(const struct bench_plan *p, size_t ncases, size_t nvalues, bench_case_fn run, bool warmup,
                  bench_report_fn report, void *ctx);

struct bench_summary {
	size_t n;
	double median, min, max;
};

/* Sorts x in place and summarises it (median: linear between ranks). */
void bench_summarize(double *x, size_t n, struct bench_summary *s);
/* Percentile p (0..100) of x[0..n-1], sorted here in place, linear between
 * ranks (NAN when n is 0): latency figures such as a p99. */
double bench_percentile(double *x, size_t n, double p);
/* Value k of case c over the completed repetitions; with base a case
 * (not BENCH_NO_BASE), the per-repetition ratios value(c, i) / value(base, i)
 * instead. */
#define BENCH_NO_BASE ((size_t)-1)
void bench_table_summary(const struct bench_table *t, size_t c, size_t k, size_t base, struct bench_summary *s);
/* Sum of value k of case c over the completed repetitions (counts). */
double bench_table_sum(const struct bench_table *t, size_t c, size_t k);

/* Value k of case c formatted, "155496 [150211 - 158302]" (digits by
 * magnitude), and its ratio against case base, "0.97x [0.94 - 1.01]".
 * Both return out. */
char *bench_fmt_value(char *out, size_t cap, const struct bench_table *t, size_t c, size_t k);
char *bench_fmt_vs(char *out, size_t cap, const struct bench_table *t, size_t c, size_t k, size_t base);

#define BENCH_FMT_CAP 64

/* Monotonic seconds. */
double bench_now_s(void);
/* A built program or library: $env, else <build>/rel, the build directory
 * being the parent of this program's bench/ (buf holds it); NULL if
 * neither can be told. */
const char *bench_build_path(const char *env, const char *rel, char *buf, size_t cap);
/* The plugin to load: $VEIL_PLUGIN, else <build>/plugin/mosquitto_veil.so. */
const char *bench_plugin_path(char *buf, size_t cap);

#endif
