/*
 * The CLI as a pipe: `mosquitto_pub -l` (the baseline, a plain password
 * login) against `veil pub -l` (a credential login, every line sealed), on
 * one Mosquitto with mosquitto_veil.so, into the same subscriber: N lines of
 * LINE_BYTES bytes from a file on standard input, QoS 1 and QoS 0. A run
 * lasts from the publisher's start until the subscriber (a raw MQTT 3.1.1
 * connection in this process, acknowledging QoS 1) holds all N messages;
 * the figure is N / that time. The broker queues without limit
 * (max_queued_messages 0), so nothing is dropped and a slow side shows as
 * time. Topics: bench/plain (write for the password user) and bench/veil
 * (write, encrypted: the plugin checks every envelope, as a deployment
 * would).
 *
 * Cases run interleaved (mosquitto_pub QoS 1, veil pub QoS 1, mosquitto_pub
 * QoS 0, veil pub QoS 0, ...) VEIL_BENCH_REPEAT times (default 5); each line
 * is the median [min - max] over the repetitions, and the ratio veil /
 * mosquitto_pub taken per repetition (bench_stats.h). Target (issue 18),
 * reported and never judged: veil pub -l at QoS 1 >= 0.9x mosquitto_pub -l.
 * VEIL_BENCH_QUICK=1: 5,000 lines per run instead of 30,000.
 *
 * The CLI is $VEIL_CLI or <build>/tools/veil; the plugin $VEIL_PLUGIN or
 * <build>/plugin/mosquitto_veil.so.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <spawn.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "veil/veil.h"
#include "broker.h"
#include "bench_stats.h"
#include "files.h"
#include "proc.h" /* test_wait_exit (test_spawn is for Check tests) */
#include "raw_mqtt.h"

#define LINE_BYTES 200
#define N_FULL 30000
#define N_QUICK 5000

enum { C_MOSQ_Q1, C_VEIL_Q1, C_MOSQ_Q0, C_VEIL_Q0, NCASES };
static const char *const case_name[NCASES] = { "mosquitto_pub -l, QoS 1", "veil pub -l, QoS 1",
	                                       "mosquitto_pub -l, QoS 0", "veil pub -l, QoS 0" };
enum { V_RATE, NVALUES };

struct bench {
	struct test_broker broker;
	char dir[256], lines[300], key[300], cred[300], keyring[300], port[16];
	const char *cli;
	long n;
};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- the subscriber: counts PUBLISH packets, acknowledges QoS 1 ---- */

struct sub {
	int fd;
	long want;
	atomic_long got;
	double done_at;           /* now_s() at the want-th message */
	bool failed;
};

/* Parse whole packets from buf[0..*have); acks for QoS 1 go to acks. */
static size_t parse(struct sub *s, uint8_t *buf, size_t have, uint8_t *acks, size_t *nacks)
{
	size_t pos = 0;
	while (have - pos >= 2) {
		size_t len = 0, mul = 1, h = 1;
		bool complete = false;
		while (h < 5 && pos + h < have) {
			uint8_t c = buf[pos + h++];
			len += (size_t)(c & 0x7f) * mul;
			mul *= 128;
			if (!(c & 0x80)) {
				complete = true;
				break;
			}
		}
		if (!complete || have - pos < h + len)
			break;
		const uint8_t *body = buf + pos + h;
		if ((buf[pos] & 0xf0) == RAW_PUBLISH) {
			atomic_fetch_add(&s->got, 1);
			int qos = (buf[pos] >> 1) & 3;
			size_t tl = len >= 2 ? (size_t)body[0] << 8 | body[1] : 0;
			if (qos > 0 && len >= 2 + tl + 2) {
				uint8_t *a = acks + 4 * (*nacks)++;
				a[0] = RAW_PUBACK;
				a[1] = 2;
				a[2] = body[2 + tl];
				a[3] = body[3 + tl];
			}
		}
		pos += h + len;
	}
	return pos;
}

static void *sub_main(void *arg)
{
	struct sub *s = arg;
	static _Thread_local uint8_t buf[1 << 17], acks[4 * ((1 << 17) / 4)];
	size_t have = 0;
	while (atomic_load(&s->got) < s->want) {
		struct pollfd p = { s->fd, POLLIN, 0 };
		if (poll(&p, 1, 60000) <= 0) {
			s->failed = true;
			return NULL;
		}
		ssize_t r = read(s->fd, buf + have, sizeof(buf) - have);
		if (r <= 0) {
			s->failed = true;
			return NULL;
		}
		have += (size_t)r;
		size_t nacks = 0;
		size_t used = parse(s, buf, have, acks, &nacks);
		if (atomic_load(&s->got) >= s->want && s->done_at == 0)
			s->done_at = now_s();
		if (nacks && !raw_send(s->fd, acks, 4 * nacks)) {
			s->failed = true;
			return NULL;
		}
		memmove(buf, buf + used, have - used);
		have -= used;
	}
	return NULL;
}

/* ---- one run ---- */

/* argv with stdin from in, stdout to /dev/null, stderr to err. */
static pid_t spawn(const char *const argv[], const char *in, const char *err)
{
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, in, O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 2, err, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	extern char **environ;
	pid_t pid = -1;
	if (posix_spawnp(&pid, argv[0], &fa, NULL, (char *const *)argv, environ) != 0)
		pid = -1;
	posix_spawn_file_actions_destroy(&fa);
	return pid;
}

static int run_case(void *ctx, size_t c, double *values)
{
	struct bench *b = ctx;
	bool veil = c == C_VEIL_Q1 || c == C_VEIL_Q0;
	int q = c == C_MOSQ_Q1 || c == C_VEIL_Q1 ? 1 : 0;
	const char *qos = q ? "1" : "0";
	const char *topic = veil ? "bench/veil" : "bench/plain";
	/* A password login's client id is its username (or broker-assigned):
	 * the plugin keeps other ids for their devices (docs/AUTH.md). */
	struct raw_login l = { .version = 4, .client_id = "bench-sub", .username = "bench-sub", .password = "sub-pw" };
	int code = -1;
	struct sub s = { .want = b->n };
	s.fd = raw_login_keep(b->broker.port, &l, 10000, &code);
	if (s.fd < 0) {
		fprintf(stderr, "bench_cli: subscriber login refused (%d)\n", code);
		return -1;
	}
	int granted = raw_subscribe(s.fd, 4, 1, topic, q, 10000, NULL);
	if (granted < 0 || granted >= 0x80) {
		fprintf(stderr, "bench_cli: subscription refused (%d)\n", granted);
		raw_abort(s.fd);
		return -1;
	}
	pthread_t th;
	pthread_create(&th, NULL, sub_main, &s);
	const char *const mosq[] = { "mosquitto_pub", "-h", "127.0.0.1", "-p", b->port, "-i", "bench-pub", "-u",
		                     "bench-pub", "-P", "pub-pw", "-t", topic, "-q", qos, "-l", NULL };
	const char *const vl[] = { b->cli, "pub", "-h", "127.0.0.1", "-p", b->port, "--identity", b->key,
		                   "--credential", b->cred, "--keyring", b->keyring, "-t", topic, "-q", qos, "-l", NULL };
	char err[400];
	snprintf(err, sizeof(err), "%s/pub.err", b->dir);
	double t0 = now_s();
	pid_t pid = spawn(veil ? vl : mosq, b->lines, err);
	int st = pid > 0 ? test_wait_exit(pid, 120000) : -1;
	pthread_join(th, NULL);
	raw_abort(s.fd);
	if (st != 0 || s.failed || s.done_at == 0) {
		fprintf(stderr, "bench_cli: %s: exit %d, subscriber got %ld of %ld\n", case_name[c], st,
		        atomic_load(&s.got), s.want);
		test_file_dump("publisher stderr", err);
		return -1;
	}
	values[V_RATE] = (double)b->n / (s.done_at - t0);
	return 0;
}

static void report(const struct bench_table *t, void *ctx)
{
	struct bench *b = ctx;
	char v[BENCH_FMT_CAP], r[BENCH_FMT_CAP];
	printf("%-28s %-30s %s\n", "case", "messages/s", "veil / mosquitto_pub");
	for (size_t c = 0; c < NCASES; c++) {
		bool veil = c == C_VEIL_Q1 || c == C_VEIL_Q0;
		printf("  %-26s %-30s %s\n", case_name[c], bench_fmt_value(v, sizeof(v), t, c, V_RATE),
		       veil ? bench_fmt_vs(r, sizeof(r), t, c, V_RATE, c - 1) : "");
	}
	struct bench_summary s;
	bench_table_summary(t, C_VEIL_Q1, V_RATE, C_MOSQ_Q1, &s);
	printf("target veil pub -l at QoS 1 >= 0.9x mosquitto_pub -l: %s (median %.2fx); %ld lines of %d B per run\n",
	       s.median >= 0.9 ? "met" : "not met", s.median, b->n, LINE_BYTES);
}

/* ---- setup ---- */

static int write_text(const char *path, const char *text, unsigned mode)
{
	if (test_write_file(path, text, mode) != 0) {
		fprintf(stderr, "bench_cli: cannot write %s\n", path);
		return -1;
	}
	return 0;
}

/* A password-file line (Argon2id, cheap limits: logins are not measured). */
static int passwd_line(char *out, size_t cap, const char *user, const char *pw)
{
	char hash[crypto_pwhash_STRBYTES];
	if (crypto_pwhash_str(hash, pw, strlen(pw), crypto_pwhash_OPSLIMIT_MIN, crypto_pwhash_MEMLIMIT_MIN) != 0)
		return -1;
	snprintf(out, cap, "%s:%s\n", user, hash);
	return 0;
}

static int setup(struct bench *b, const char *plugin)
{
	if (test_mkdtemp_readable(b->dir, sizeof(b->dir)) != 0)
		return -1;
	struct veil_identity *auth = NULL, *dev = NULL;
	if (veil_identity_generate(&auth) != VEIL_OK || veil_identity_generate(&dev) != VEIL_OK)
		return -1;
	uint8_t apk[VEIL_PK_BYTES], cred[VEIL_CREDENTIAL_MAX], key[VEIL_KEY_BYTES];
	veil_identity_public(auth, apk);
	struct veil_credential c = { 0 };
	veil_identity_public(dev, c.device_pk);
	snprintf(c.client_id, sizeof(c.client_id), "bench-veil");
	c.issued_at = (uint64_t)time(NULL) - 60;
	c.expires_at = c.issued_at + 86400;
	size_t cl = 0;
	char apub[300], acl[300], passwd[300];
	snprintf(b->key, sizeof(b->key), "%s/dev.key", b->dir);
	snprintf(b->cred, sizeof(b->cred), "%s/dev.cred", b->dir);
	snprintf(b->keyring, sizeof(b->keyring), "%s/keyring", b->dir);
	snprintf(b->lines, sizeof(b->lines), "%s/lines", b->dir);
	snprintf(apub, sizeof(apub), "%s/authority.pub", b->dir);
	snprintf(acl, sizeof(acl), "%s/acl", b->dir);
	snprintf(passwd, sizeof(passwd), "%s/passwd", b->dir);
	int rc = veil_credential_issue(auth, &c, cred, sizeof(cred), &cl);
	if (rc == VEIL_OK)
		rc = veil_credential_save(cred, cl, b->cred);
	if (rc == VEIL_OK)
		rc = veil_identity_save(dev, b->key);
	if (rc == VEIL_OK)
		rc = veil_public_key_save(apk, apub);
	veil_identity_free(&auth);
	veil_identity_free(&dev);
	if (rc != VEIL_OK || chmod(apub, 0644) != 0)
		return -1;
	char a64[64], k64[64], text[1024], l1[256], l2[256];
	veil_topic_key_generate(key);
	sodium_bin2base64(a64, sizeof(a64), apk, sizeof(apk), sodium_base64_VARIANT_ORIGINAL);
	sodium_bin2base64(k64, sizeof(k64), key, sizeof(key), sodium_base64_VARIANT_ORIGINAL);
	sodium_memzero(key, sizeof(key));
	snprintf(text, sizeof(text), "authority %s\nkey bench/# 1 %s send\n", a64, k64);
	sodium_memzero(k64, sizeof(k64));
	if (write_text(b->keyring, text, 0600) != 0 ||
	    write_text(acl, "pattern write bench/plain\npattern write,encrypted bench/veil\npattern read bench/#\n",
	               0644) != 0 ||
	    passwd_line(l1, sizeof(l1), "bench-pub", "pub-pw") != 0 ||
	    passwd_line(l2, sizeof(l2), "bench-sub", "sub-pw") != 0)
		return -1;
	snprintf(text, sizeof(text), "%s%s", l1, l2);
	if (write_text(passwd, text, 0644) != 0)
		return -1;
	/* The lines: printable, different from each other. */
	FILE *f = fopen(b->lines, "w");
	if (!f)
		return -1;
	for (long i = 0; i < b->n; i++) {
		char line[LINE_BYTES + 1];
		int k = snprintf(line, sizeof(line), "%08ld ", i);
		for (int j = k; j < LINE_BYTES; j++)
			line[j] = (char)('a' + (i + j) % 26);
		line[LINE_BYTES] = '\0';
		fprintf(f, "%s\n", line);
	}
	if (fclose(f) != 0)
		return -1;
	char conf[2048];
	/* Unlimited queues: a slow side shows as time, never as loss. Quiet
	 * log: a line per PUBLISH is not what is measured. */
	snprintf(conf, sizeof(conf),
	         "allow_anonymous false\nmax_queued_messages 0\nmax_inflight_messages 0\n"
	         "plugin %s\nplugin_opt_authority_file %s\nplugin_opt_acl_file %s\nplugin_opt_password_file %s\n"
	         "log_type none\nlog_type error\n",
	         plugin, apub, acl, passwd);
	if (test_broker_start(&b->broker, conf) != 0)
		return -1;
	snprintf(b->port, sizeof(b->port), "%d", b->broker.port);
	return 0;
}

static const char *built(const char *env, const char *rel, char *buf, size_t cap)
{
	const char *p = getenv(env);
	if (p && *p)
		return p;
	snprintf(buf, cap, "%s/%s", VEIL_BINARY_DIR, rel);
	return buf;
}

int main(void)
{
	struct bench_plan plan;
	if (bench_plan_init(&plan, 900, 300) != 0 || veil_init() != VEIL_OK)
		return 1;
	static struct bench b;
	static char cli[512], plugin[512];
	b.cli = built("VEIL_CLI", "tools/veil", cli, sizeof(cli));
	const char *plugin_path = built("VEIL_PLUGIN", "plugin/mosquitto_veil.so", plugin, sizeof(plugin));
	b.n = plan.quick ? N_QUICK : N_FULL;
	if (access(b.cli, X_OK) != 0 || access(plugin_path, R_OK) != 0) {
		fprintf(stderr, "bench_cli: need %s and %s (build them first)\n", b.cli, plugin_path);
		return 1;
	}
	int rc = setup(&b, plugin_path);
	if (rc != 0) {
		fprintf(stderr, "bench_cli: setup failed\n");
	} else {
		printf("bench_cli: %ld lines of %d B per run on standard input; subscriber: raw MQTT 3.1.1 in this "
		       "process; broker: Mosquitto with mosquitto_veil.so\n",
		       b.n, LINE_BYTES);
		rc = bench_measure(&plan, NCASES, NVALUES, run_case, true, report, &b);
	}
	test_broker_stop(&b.broker);
	test_broker_cleanup(&b.broker);
	if (b.dir[0])
		test_rmtree(b.dir);
	return rc == 0 ? 0 : 1;
}
