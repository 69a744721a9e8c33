/*
 * Logins per second through a real Mosquitto with mosquitto_veil.so, in one
 * run against one broker: anonymous (the baseline: the plugin only checks
 * names), credential (MQTT 5 auth method, and the MQTT 3.1.1 password form),
 * and password (Argon2id file; repeated logins hit the verification cache,
 * a first login costs one Argon2id run, measured separately). Each login is
 * a full TCP connect + CONNECT + CONNACK + close, CONC at a time.
 * The kinds run VEIL_BENCH_REPEAT times (default 5), interleaved anonymous,
 * credential, credential, password, anonymous, ...; each line is the median
 * [min - max] over the repetitions, ratios taken per repetition
 * (bench_stats.h). Target, reported and never judged: credential >= 0.5x
 * anonymous. A refused login is an error (exit 1). VEIL_BENCH_QUICK=1:
 * shorter runs.
 * The plugin comes from $VEIL_PLUGIN or <build>/plugin/mosquitto_veil.so.
 */
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "veil/veil.h"
#include "broker.h"
#include "bench_stats.h"
#include "raw_mqtt.h"

#define CONC 16


/* K_ARGON is no login: one Argon2id verification, timed (what an
 * uncached password login costs the broker). */
enum kind { K_ANON, K_CRED5, K_CRED3, K_PASSWORD, K_ARGON, NKINDS };
static const char *kind_name[] = { "anonymous", "credential (MQTT 5 auth)", "credential (3.1.1 password)",
	                           "password (cached)" };
enum { V_RATE, V_FAILED, NVALUES };

struct bench {
	int port;
	struct veil_identity *device;
	uint8_t creds[CONC][VEIL_CREDENTIAL_MAX];
	size_t cred_len[CONC];
	char ids[CONC][32];
	/* pre-made tokens, so the client's signing cost is not measured */
	uint8_t (*toks)[VEIL_TOKEN_MAX];
	size_t *tok_len;
	char (*pws)[VEIL_PASSWORD_MAX];
	size_t n_toks;
	size_t used[CONC];  /* tokens of slot s: s, s + CONC, s + 2 CONC, ... */
	double secs;        /* per run */
	size_t ntok;        /* tokens made before each credential run */
	char hash[crypto_pwhash_STRBYTES];
	double failed;      /* refused or failed logins over all runs */
};

static int fill_login(struct bench *b, enum kind k, int slot, struct raw_login *l)
{
	memset(l, 0, sizeof(*l));
	/* A credential names its client id; anonymous and password logins take
	 * a broker-assigned one (the plugin refuses them other devices' ids,
	 * docs/AUTH.md), so an empty id, unique per connection. */
	l->client_id = k == K_CRED5 || k == K_CRED3 ? b->ids[slot] : "";
	l->version = k == K_CRED5 ? 5 : 4;
	if (k == K_PASSWORD) {
		l->username = "bench";
		l->password = "bench-password";
	} else if (k == K_CRED5 || k == K_CRED3) {
		size_t t = (size_t)slot + CONC * b->used[slot];
		if (t >= b->n_toks)
			return -1;
		b->used[slot]++;
		if (k == K_CRED5) {
			l->auth_method = VEIL_AUTH_METHOD;
			l->auth_data = b->toks[t];
			l->auth_data_len = b->tok_len[t];
		} else {
			l->username = l->client_id;
			l->password = b->pws[t];
		}
	}
	return 0;
}

/* Logins per second over `secs`, CONC in flight; *failed counts refusals
 * and logins without an answer. Sockets close with a reset (raw_abort), not
 * a FIN: the client then keeps no TIME_WAIT socket. With tens of thousands
 * of them (60 s each) every connect() searched the ephemeral ports for a
 * reusable one, and consecutive runs of the same kind alternated between
 * ~18,000 and ~10,000 logins/s. The broker handles a reset as a FIN. */
static double run(struct bench *b, enum kind k, double secs, int *failed)
{
	int fds[CONC];
	struct raw_login l;
	int done = 0;
	*failed = 0;
	for (int i = 0; i < CONC; i++)
		fds[i] = -1;
	double t0 = bench_now_s(), end = t0 + secs;
	bool stop = false;
	for (;;) {
		int active = 0;
		for (int i = 0; i < CONC; i++) {
			if (fds[i] < 0 && !stop) {
				/* Ids never repeat among the logins in flight: none takes over another. */
				if (fill_login(b, k, i, &l) != 0) {
					stop = true;
					continue;
				}
				fds[i] = raw_connect_send(b->port, &l);
				if (fds[i] < 0)
					(*failed)++;
			}
			active += fds[i] >= 0;
		}
		if (!active)
			break;
		struct pollfd p[CONC];
		int map[CONC], n = 0;
		for (int i = 0; i < CONC; i++) {
			if (fds[i] >= 0) {
				p[n].fd = fds[i];
				p[n].events = POLLIN;
				p[n].revents = 0;
				map[n++] = i;
			}
		}
		if (poll(p, (nfds_t)n, 5000) <= 0) {
			*failed += n; /* no answer in 5 s */
			break;
		}
		for (int j = 0; j < n; j++) {
			if (!p[j].revents)
				continue;
			int i = map[j];
			int rc = raw_connack(fds[i], 1000);
			raw_abort(fds[i]);
			fds[i] = -1;
			if (rc == 0)
				done++;
			else
				(*failed)++;
		}
		if (bench_now_s() >= end)
			stop = true;
	}
	for (int i = 0; i < CONC; i++) {
		if (fds[i] >= 0)
			raw_abort(fds[i]);
	}
	return done / (bench_now_s() - t0);
}

static void make_tokens(struct bench *b, size_t n)
{
	free(b->toks);
	free(b->tok_len);
	free(b->pws);
	b->toks = calloc(n, sizeof(*b->toks));
	b->tok_len = calloc(n, sizeof(*b->tok_len));
	b->pws = calloc(n, sizeof(*b->pws));
	if (!b->toks || !b->tok_len || !b->pws)
		abort();
	uint64_t now = (uint64_t)time(NULL);
	for (size_t t = 0; t < n; t++) {
		size_t s = t % CONC;
		if (veil_token_create(b->device, b->creds[s], b->cred_len[s], b->ids[s], now, b->toks[t], VEIL_TOKEN_MAX,
		                      &b->tok_len[t]) != VEIL_OK ||
		    veil_token_to_password(b->toks[t], b->tok_len[t], b->pws[t], VEIL_PASSWORD_MAX) != VEIL_OK)
			abort();
	}
	b->n_toks = n;
	memset(b->used, 0, sizeof(b->used));
}


/* One run of kind c: logins/s and refusals (or Argon2id ms). */
static int run_case(void *arg, size_t c, double *v)
{
	struct bench *b = arg;
	int failed = 0;
	v[V_FAILED] = 0;
	if (c == K_ARGON) {
		double h0 = bench_now_s();
		int hv = crypto_pwhash_str_verify(b->hash, "bench-password", 14);
		v[V_RATE] = (bench_now_s() - h0) * 1e3;
		return hv == 0 ? 0 : -1;
	}
	if (c == K_CRED5 || c == K_CRED3)
		make_tokens(b, b->ntok); /* fresh tokens: the plugin remembers nonces */
	v[V_RATE] = run(b, (enum kind)c, b->secs, &failed);
	v[V_FAILED] = failed;
	if (failed)
		fprintf(stderr, "bench_connect: %s: %d logins refused or failed\n", kind_name[c], failed);
	return 0; /* refusals are counted and fail the program at the end */
}

static void report(const struct bench_table *t, void *ctx)
{
	struct bench *b = ctx;
	char a[BENCH_FMT_CAP], r[BENCH_FMT_CAP];
	printf("%-32s %-28s %-24s %s\n", "kind", "logins/s", "vs anonymous", "refused or failed (sum)");
	for (size_t k = K_ANON; k < K_ARGON; k++) {
		double failed = bench_table_sum(t, k, V_FAILED);
		b->failed += failed;
		printf("  %-30s %-28s %-24s %.0f\n", kind_name[k], bench_fmt_value(a, sizeof(a), t, k, V_RATE),
		       k == K_ANON ? "" : bench_fmt_vs(r, sizeof(r), t, k, V_RATE, K_ANON), failed);
	}
	printf("  Argon2id verify (what an uncached password login costs): %s ms\n",
	       bench_fmt_value(a, sizeof(a), t, K_ARGON, V_RATE));
	struct bench_summary s;
	bench_table_summary(t, K_CRED5, V_RATE, K_ANON, &s);
	printf("target credential (MQTT 5) >= 0.5x anonymous: %s (median %.2fx); %d in flight, %.1f s per run\n",
	       s.median >= 0.5 ? "met" : "not met", s.median, CONC, b->secs);
}

int main(void)
{
	struct bench_plan plan;
	if (bench_plan_init(&plan, 900, 300) != 0 || veil_init() != VEIL_OK)
		return 1;
	char pbuf[PATH_MAX + 64];
	const char *plugin = bench_plugin_path(pbuf, sizeof(pbuf));
	struct bench b;
	memset(&b, 0, sizeof(b));
	b.secs = plan.quick ? 0.5 : 2.0;
	b.ntok = plan.quick ? 12000 : 40000; /* more than CONC logins take in b.secs here */
	struct veil_identity *authority = NULL;
	if (veil_identity_generate(&authority) != VEIL_OK || veil_identity_generate(&b.device) != VEIL_OK)
		return 1;
	char dir[256], apub[300], pwfile[300], conf[PATH_MAX + 1024];
	if (test_mkdtemp(dir, sizeof(dir)) != 0 || chmod(dir, 0755) != 0)
		return 1;
	uint8_t apk[VEIL_PK_BYTES];
	veil_identity_public(authority, apk);
	snprintf(apub, sizeof(apub), "%s/authority.pub", dir);
	if (veil_public_key_save(apk, apub) != VEIL_OK || chmod(apub, 0644) != 0)
		return 1;
	for (int i = 0; i < CONC; i++) {
		struct veil_credential c;
		memset(&c, 0, sizeof(c));
		snprintf(b.ids[i], sizeof(b.ids[i]), "bench-%02d", i);
		snprintf(c.client_id, sizeof(c.client_id), "%s", b.ids[i]);
		veil_identity_public(b.device, c.device_pk);
		c.issued_at = (uint64_t)time(NULL) - 60;
		c.expires_at = (uint64_t)time(NULL) + 3600;
		if (veil_credential_issue(authority, &c, b.creds[i], VEIL_CREDENTIAL_MAX, &b.cred_len[i]) != VEIL_OK)
			return 1;
	}
	char line[300];
	if (crypto_pwhash_str(b.hash, "bench-password", 14, crypto_pwhash_OPSLIMIT_INTERACTIVE,
	                      crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0)
		return 1;
	snprintf(line, sizeof(line), "bench:%s\n", b.hash);
	snprintf(pwfile, sizeof(pwfile), "%s/passwd", dir);
	if (test_write_file(pwfile, line, 0644) != 0)
		return 1;
	snprintf(conf, sizeof(conf),
	         "allow_anonymous false\n"
	         "plugin %s\nplugin_opt_authority_file %s\nplugin_opt_password_file %s\n"
	         "plugin_opt_allow_anonymous true\n"
	         /* every nonce of the whole run stays live: room for all of them */
	         "plugin_opt_replay_cache_size 1048576\n",
	         plugin ? plugin : "mosquitto_veil.so", apub, pwfile);
	struct test_broker broker;
	if (test_broker_start(&broker, conf) != 0) {
		fprintf(stderr, "bench_connect: broker did not start\n");
		return 1;
	}
	b.port = broker.port;
	/* One uncached password login warms the cache, as a reconnecting client would. */
	struct raw_login warm = { .version = 4, .client_id = "", .username = "bench", .password = "bench-password" };
	int warm_rc = raw_login_once(b.port, &warm, 5000);

	printf("bench_connect: logins/s through mosquitto + mosquitto_veil.so (%d in flight, %.1f s per run)\n", CONC,
	       b.secs);
	int rc = bench_measure(&plan, NKINDS, NVALUES, run_case, false, report, &b);
	printf("  warm-up login (uncached password) rc %d\n", warm_rc);

	test_broker_stop(&broker);
	test_broker_cleanup(&broker);
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "bench_connect: could not remove %s\n", dir);
	veil_identity_free(&authority);
	veil_identity_free(&b.device);
	free(b.toks);
	free(b.tok_len);
	free(b.pws);
	return rc != 0 || b.failed > 0 || warm_rc != 0 ? 1 : 0;
}
