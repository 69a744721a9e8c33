/*
 * ACL benchmark: broker throughput, 1 publisher -> 1 subscriber and
 * 1 -> 100 subscribers, QoS 0, 256-byte payloads, all configurations in the
 * same run on real Mosquitto 2.0.11 brokers:
 *   none     no authentication, no ACL
 *   builtin  Mosquitto's acl_file with 10,000 rules
 *   plugin   mosquitto_veil.so with the same 10,000 rules
 *   enforce  the plugin, same rules, the topic marked `encrypted`: the
 *            publisher is a credential device sending real Veil envelopes
 * The clients speak MQTT 3.1.1 over raw sockets so the client library is not
 * what is measured. The publisher keeps at most WINDOW messages ahead of the
 * slowest subscriber, so QoS 0 messages are not dropped by queue limits.
 * The built-in check is ~30 times slower, so its runs send a tenth of the
 * messages (each still lasts seconds). Every configuration runs
 * VEIL_BENCH_REPEAT times (default 5), interleaved none, builtin, plugin,
 * enforce, none, ...; each line is the median [min - max] over the
 * repetitions, ratios taken per repetition (bench_stats.h). Figures are
 * reported, never judged.
 *
 * Usage: bench_acl            (VEIL_BENCH_QUICK=1: shorter runs)
 * The plugin is VEIL_PLUGIN or ../plugin/mosquitto_veil.so next to this binary.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "veil/veil.h"
#include "veil/envelope.h"
#include "veil/identity.h"
#include "broker.h"
#include "bench_stats.h"
#include "raw_mqtt.h"

#define PAYLOAD 256
#define WINDOW 2000
#define MAX_SUBS 100
#define NRULES 10000

enum cfg { CFG_NONE, CFG_BUILTIN, CFG_PLUGIN, CFG_ENFORCE, NCFG };
static const char *const cfg_name[NCFG] = { "none", "builtin", "plugin", "enforce" };

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- minimal MQTT 3.1.1 over a socket: SUBSCRIBE, PUBLISH ---- */

static size_t put_varint(uint8_t *p, size_t v)
{
	size_t n = 0;
	do {
		uint8_t b = (uint8_t)(v % 128);
		v /= 128;
		p[n++] = (uint8_t)(b | (v ? 0x80 : 0));
	} while (v);
	return n;
}

static size_t put_str(uint8_t *p, const char *s, size_t n)
{
	p[0] = (uint8_t)(n >> 8);
	p[1] = (uint8_t)n;
	memcpy(p + 2, s, n);
	return n + 2;
}

static bool write_all(int fd, const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t k = write(fd, p, n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return false;
		p += k;
		n -= (size_t)k;
	}
	return true;
}

static bool read_all(int fd, uint8_t *p, size_t n)
{
	while (n) {
		ssize_t k = read(fd, p, n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return false;
		p += k;
		n -= (size_t)k;
	}
	return true;
}

/* Read one packet's fixed header; returns the type byte, body length in *len. */
static int read_header(int fd, size_t *len)
{
	uint8_t b;
	if (!read_all(fd, &b, 1))
		return -1;
	size_t v = 0, mul = 1;
	for (int i = 0; i < 4; i++) {
		uint8_t c;
		if (!read_all(fd, &c, 1))
			return -1;
		v += (size_t)(c & 0x7f) * mul;
		mul *= 128;
		if (!(c & 0x80))
			break;
	}
	*len = v;
	return b;
}

/* CONNECT (MQTT 3.1.1) and its CONNACK through the shared raw speaker
 * (tests/support/raw_mqtt.h): the fd, or -1 when refused or unanswered. */
static int mqtt_connect(int port, const char *id, const char *user, const char *pass)
{
	struct raw_login l = { .version = 4, .client_id = id, .username = user, .password = pass };
	int fd = raw_connect_send(port, &l);
	if (fd >= 0 && raw_connack(fd, 10000) != 0) {
		close(fd);
		return -1;
	}
	if (fd >= 0) {
		/* A broker that stops answering fails the SUBACK read or the
		 * publisher's write instead of hanging. */
		struct timeval tmo = { 10, 0 };
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tmo, sizeof(tmo));
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tmo, sizeof(tmo));
	}
	return fd;
}

static bool mqtt_subscribe(int fd, const char *filter)
{
	uint8_t pkt[512];
	size_t tl = strlen(filter), k = 0;
	pkt[k++] = 0x82;
	k += put_varint(pkt + k, 2 + 2 + tl + 1);
	pkt[k++] = 0;
	pkt[k++] = 1;
	k += put_str(pkt + k, filter, tl);
	pkt[k++] = 0;
	size_t len = 0;
	uint8_t ack[8];
	return write_all(fd, pkt, k) && read_header(fd, &len) == 0x90 && len == 3 && read_all(fd, ack, 3) &&
	       ack[2] == 0;
}

/* ---- one run ---- */

struct run {
	int port;
	int nsubs;
	long nmsgs;
	const uint8_t *payload;
	size_t payload_len;
	const char *pub_id, *pub_user, *pub_pass;
	_Atomic long received;  /* deliveries over all subscribers */
	int subs[MAX_SUBS];
	atomic_bool failed;   /* set by either thread, read by both */
};

static void *sub_reader(void *arg)
{
	struct run *r = arg;
	struct pollfd pf[MAX_SUBS];
	for (int i = 0; i < r->nsubs; i++) {
		pf[i].fd = r->subs[i];
		pf[i].events = POLLIN;
	}
	long want = r->nmsgs * r->nsubs;
	static _Thread_local uint8_t buf[1 << 16];
	/* Each subscriber stream is parsed incrementally: only PUBLISH arrives. */
	size_t have[MAX_SUBS] = { 0 };
	static _Thread_local uint8_t pend[MAX_SUBS][1024];
	while (atomic_load(&r->received) < want) {
		int k = poll(pf, (nfds_t)r->nsubs, 30000);
		if (k <= 0) {
			atomic_store(&r->failed, true);
			return NULL;
		}
		for (int i = 0; i < r->nsubs; i++) {
			if (!(pf[i].revents & POLLIN))
				continue;
			ssize_t got = read(pf[i].fd, buf, sizeof(buf));
			if (got <= 0) {
				atomic_store(&r->failed, true);
				return NULL;
			}
			long count = 0;
			size_t off = 0;
			while (off < (size_t)got) {
				/* Fill the pending header+body for this stream. */
				size_t take = (size_t)got - off;
				if (have[i] + take > sizeof(pend[i]))
					take = sizeof(pend[i]) - have[i];
				memcpy(pend[i] + have[i], buf + off, take);
				have[i] += take;
				off += take;
				size_t pos = 0;
				for (;;) {
					if (have[i] - pos < 2)
						break;
					size_t v = 0, mul = 1, h = 1;
					bool complete = false;
					while (h < 5 && pos + h < have[i]) {
						uint8_t c = pend[i][pos + h];
						v += (size_t)(c & 0x7f) * mul;
						mul *= 128;
						h++;
						if (!(c & 0x80)) {
							complete = true;
							break;
						}
					}
					if (!complete || have[i] - pos < h + v)
						break;
					if ((pend[i][pos] & 0xf0) == 0x30)
						count++;
					pos += h + v;
				}
				memmove(pend[i], pend[i] + pos, have[i] - pos);
				have[i] -= pos;
			}
			atomic_fetch_add(&r->received, count);
		}
	}
	return NULL;
}

/* Messages (deliveries) per second, or -1 on failure. */
static double run_once(struct run *r)
{
	atomic_store(&r->received, 0);
	atomic_store(&r->failed, false);
	for (int i = 0; i < r->nsubs; i++) {
		/* Anonymous clients: an empty, broker-assigned id (the plugin
		 * refuses anonymous logins any other, docs/AUTH.md). */
		r->subs[i] = mqtt_connect(r->port, "", NULL, NULL);
		if (r->subs[i] < 0 || !mqtt_subscribe(r->subs[i], "bench/data")) {
			fprintf(stderr, "subscriber %d failed\n", i);
			return -1;
		}
	}
	int pub = mqtt_connect(r->port, r->pub_id, r->pub_user, r->pub_pass);
	if (pub < 0) {
		fprintf(stderr, "publisher connect failed\n");
		return -1;
	}
	uint8_t pkt[1024];
	size_t k = 0;
	pkt[k++] = 0x30;
	k += put_varint(pkt + k, 2 + 10 + r->payload_len);
	k += put_str(pkt + k, "bench/data", 10);
	memcpy(pkt + k, r->payload, r->payload_len);
	k += r->payload_len;
	/* Batch packets into one write while inside the window. */
	enum { BATCH = 32 };
	static uint8_t batch[BATCH * 1024];
	for (int i = 0; i < BATCH; i++)
		memcpy(batch + (size_t)i * k, pkt, k);
	pthread_t th;
	pthread_create(&th, NULL, sub_reader, r);
	double t0 = now_s();
	long sent = 0;
	while (sent < r->nmsgs && !atomic_load(&r->failed)) {
		long slowest = atomic_load(&r->received) / r->nsubs;
		if (sent - slowest > WINDOW) {
			struct timespec ts = { 0, 20000 };
			nanosleep(&ts, NULL);
			continue;
		}
		long n = r->nmsgs - sent < BATCH ? r->nmsgs - sent : BATCH;
		if (!write_all(pub, batch, (size_t)n * k)) {
			atomic_store(&r->failed, true);
			break;
		}
		sent += n;
	}
	pthread_join(th, NULL);
	double dt = now_s() - t0;
	close(pub);
	for (int i = 0; i < r->nsubs; i++)
		close(r->subs[i]);
	if (atomic_load(&r->failed))
		return -1;
	return (double)atomic_load(&r->received) / dt;
}

/* ---- setup ---- */

static void write_rules(const char *path, bool protect)
{
	/* 10,000 rules for the anonymous clients, the matching ones last, the
	 * way a large deployment's gateway account looks to the built-in check
	 * (it scans the list; the plugin walks a trie). */
	FILE *f = fopen(path, "w");
	if (!f)
		exit(1);
	for (int i = 0; i < NRULES / 2 - 1; i++)
		fprintf(f, "topic write site/%d/+/cmd\n", i);
	fprintf(f, "topic write bench/#\n");
	for (int i = 0; i < NRULES / 2 - 1; i++)
		fprintf(f, "topic read site/%d/status/#\n", i);
	fprintf(f, "topic read bench/#\n");
	if (protect)
		fprintf(f, "user benchpub\ntopic write,encrypted bench/#\n");
	fclose(f);
	chmod(path, 0644);
}

static const char *plugin_path(const char *argv0)
{
	const char *p = getenv("VEIL_PLUGIN");
	if (p && *p)
		return p;
	static char buf[PATH_MAX + 64];
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0)
		return argv0;
	self[n] = '\0';
	char *slash = strrchr(self, '/');
	if (slash)
		*slash = '\0';
	snprintf(buf, sizeof(buf), "%s/../plugin/mosquitto_veil.so", self);
	return buf;
}

/* ---- the cases: each configuration at fan-out 1, then at 100 ---- */

static const int fan[] = { 1, 100 };
#define NFAN 2
#define NCASES (NFAN * NCFG)

struct acl_bench {
	long nmsgs;
	int port[NCFG];
	const struct veil_identity *dev;
	const uint8_t *cred;
	size_t cred_len;
	const uint8_t *plain, *envelope;
};

/* Case c: configuration c % NCFG at fan-out fan[c / NCFG]; deliveries/s. */
static int run_case(void *arg, size_t c, double *v)
{
	const struct acl_bench *a = arg;
	size_t cfg = c % NCFG;
	int nsubs = fan[c / NCFG];
	char pw[VEIL_PASSWORD_MAX];
	struct run r;
	memset(&r, 0, sizeof(r));
	r.port = a->port[cfg];
	r.nsubs = nsubs;
	r.nmsgs = nsubs == 1 ? a->nmsgs : a->nmsgs / 100;
	if (cfg == CFG_BUILTIN)
		r.nmsgs /= 10; /* ~30 times slower: runs of seconds, not minutes */
	r.payload = a->plain;
	r.payload_len = PAYLOAD;
	r.pub_id = "";
	if (cfg == CFG_ENFORCE) {
		/* A fresh token per connection (the plugin keeps a nonce cache). */
		uint8_t tok[VEIL_TOKEN_MAX];
		size_t tn = 0;
		if (veil_token_create(a->dev, a->cred, a->cred_len, "benchpub", (uint64_t)time(NULL), tok, sizeof(tok),
		                      &tn) != VEIL_OK ||
		    veil_token_to_password(tok, tn, pw, sizeof(pw)) != VEIL_OK) {
			fprintf(stderr, "bench_acl: token failed\n");
			return -1;
		}
		r.pub_id = "benchpub";
		r.pub_user = "benchpub";
		r.pub_pass = pw;
		r.payload = a->envelope;
	}
	v[0] = run_once(&r);
	if (v[0] < 0) {
		fprintf(stderr, "bench_acl: run %s, fan-out %d failed\n", cfg_name[cfg], nsubs);
		return -1;
	}
	return 0;
}

static void report(const struct bench_table *t, void *ctx)
{
	(void)ctx;
	static const char *const label[NCFG] = { "no auth, no ACL", "built-in acl_file", "plugin, same rules",
		                                 "plugin + enforcement" };
	char a[BENCH_FMT_CAP], rn[BENCH_FMT_CAP], rb[BENCH_FMT_CAP];
	for (size_t f = 0; f < NFAN; f++) {
		char head[32];
		snprintf(head, sizeof(head), "fan-out 1 -> %d:", fan[f]);
		printf("%-37s %-28s %-24s %s\n", head, "deliveries/s", "vs none", "vs builtin");
		for (size_t cfg = 0; cfg < NCFG; cfg++) {
			size_t c = f * NCFG + cfg;
			printf("  %-8s %-26s %-28s %-24s %s\n", cfg_name[cfg], label[cfg], bench_fmt_value(a, sizeof(a), t, c, 0),
			       cfg == CFG_NONE ? "" : bench_fmt_vs(rn, sizeof(rn), t, c, 0, f * NCFG + CFG_NONE),
			       cfg == CFG_BUILTIN ? "" : bench_fmt_vs(rb, sizeof(rb), t, c, 0, f * NCFG + CFG_BUILTIN));
		}
	}
	struct bench_summary none, builtin;
	bench_table_summary(t, CFG_PLUGIN, 0, CFG_NONE, &none);
	bench_table_summary(t, CFG_PLUGIN, 0, CFG_BUILTIN, &builtin);
	printf("targets, fan-out 1: plugin >= 0.90x none: %s (%.2fx); >= 3x built-in: %s (%.1fx)\n",
	       none.median >= 0.9 ? "met" : "not met", none.median, builtin.median >= 3 ? "met" : "not met",
	       builtin.median);
}

int main(int argc, char **argv)
{
	(void)argc;
	struct bench_plan plan;
	if (bench_plan_init(&plan, 900, 300) != 0 || veil_init() != VEIL_OK)
		return 1;
	struct acl_bench ab;
	memset(&ab, 0, sizeof(ab));
	ab.nmsgs = plan.quick ? 20000 : 200000;
	const char *plugin = plugin_path(argv[0]);
	char dir[256], rules[300], rules_enf[300], authpub[300], conf[8192];
	if (test_mkdtemp(dir, sizeof(dir)) != 0 || chmod(dir, 0755) != 0)
		return 1;
	snprintf(rules, sizeof(rules), "%s/rules.acl", dir);
	snprintf(rules_enf, sizeof(rules_enf), "%s/rules-enforce.acl", dir);
	snprintf(authpub, sizeof(authpub), "%s/authority.pub", dir);
	write_rules(rules, false);
	write_rules(rules_enf, true);

	/* A device with a credential, and a 256-byte envelope from it. */
	struct veil_identity *authority = NULL, *dev = NULL;
	uint8_t apk[VEIL_PK_BYTES];
	struct veil_credential c;
	memset(&c, 0, sizeof(c));
	uint8_t cred[VEIL_CREDENTIAL_MAX];
	size_t cred_len = 0;
	if (veil_identity_generate(&authority) != VEIL_OK || veil_identity_generate(&dev) != VEIL_OK)
		return 1;
	veil_identity_public(authority, apk);
	veil_identity_public(dev, c.device_pk);
	snprintf(c.client_id, sizeof(c.client_id), "benchpub");
	c.issued_at = (uint64_t)time(NULL) - 60;
	c.expires_at = (uint64_t)time(NULL) + 86400;
	if (veil_public_key_save(apk, authpub) != VEIL_OK || chmod(authpub, 0644) != 0 ||
	    veil_credential_issue(authority, &c, cred, sizeof(cred), &cred_len) != VEIL_OK)
		return 1;
	uint8_t key[VEIL_KEY_BYTES];
	randombytes_buf(key, sizeof(key));
	struct veil_seal_params sp;
	memset(&sp, 0, sizeof(sp));
	sp.key = key;
	sp.key_id = 1;
	veil_sender_id(c.device_pk, sp.sender);
	sp.seq = 1;
	uint8_t envelope[PAYLOAD + 64], plain[PAYLOAD];
	size_t env_len = 0;
	randombytes_buf(plain, sizeof(plain));
	int rc = veil_envelope_seal(&sp, "bench/data", plain, PAYLOAD - VEIL_OVERHEAD, envelope, sizeof(envelope),
	                            &env_len);
	sodium_memzero(key, sizeof(key));
	if (rc != VEIL_OK || env_len != PAYLOAD) {
		fprintf(stderr, "bench_acl: seal failed\n");
		return 1;
	}
	ab.dev = dev;
	ab.cred = cred;
	ab.cred_len = cred_len;
	ab.plain = plain;
	ab.envelope = envelope;

	struct test_broker b[NCFG];
	memset(b, 0, sizeof(b));
	rc = 0;
	for (int i = 0; i < NCFG && rc == 0; i++) {
		switch (i) {
		case CFG_NONE:
			snprintf(conf, sizeof(conf), "allow_anonymous true\nmax_queued_messages 100000\n");
			break;
		case CFG_BUILTIN:
			snprintf(conf, sizeof(conf), "allow_anonymous true\nmax_queued_messages 100000\nacl_file %s\n", rules);
			break;
		default:
			snprintf(conf, sizeof(conf),
			         "allow_anonymous true\nmax_queued_messages 100000\nplugin %s\nplugin_opt_allow_anonymous true\n"
			         "plugin_opt_authority_file %s\nplugin_opt_acl_file %s\n",
			         plugin, authpub, i == CFG_ENFORCE ? rules_enf : rules);
			break;
		}
		/* Quiet brokers: logging every connection is not what we measure. */
		char full[sizeof(conf) + 64];
		snprintf(full, sizeof(full), "%slog_type error\n", conf);
		rc = test_broker_start(&b[i], full);
		if (rc != 0)
			fprintf(stderr, "bench_acl: broker %s failed to start\n", cfg_name[i]);
		ab.port[i] = b[i].port;
	}
	if (rc == 0) {
		printf("bench_acl: %ld msgs (built-in: %ld) per fan-out 1 run, a hundredth of that per fan-out 100 run; "
		       "QoS 0, %d B payload, %d rules, window %d\n",
		       ab.nmsgs, ab.nmsgs / 10, PAYLOAD, NRULES, WINDOW);
		rc = bench_measure(&plan, NCASES, 1, run_case, false, report, &ab);
	}
	for (int i = 0; i < NCFG; i++)
		test_broker_cleanup(&b[i]);
	veil_identity_free(&authority);
	veil_identity_free(&dev);
	unlink(rules);
	unlink(rules_enf);
	unlink(authpub);
	rmdir(dir);
	return rc == 0 ? 0 : 1;
}
