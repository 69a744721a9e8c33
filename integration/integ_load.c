/*
 * veil-integ load: the load and fault generator of the native suite.
 *
 * --clients authenticated connections: P publishers and S subscribers (the
 * dashboards) in this process, and the idle devices in worker processes of
 * at most --idle-per-process clients each, forked before any Paho thread
 * exists. Devices are separate processes in a real fleet, and they have to
 * be here too: Paho's MQTTAsync serves all of a process's connections from
 * one receive thread that polls every socket for each packet, so 1,000
 * connections in one process cap that process near 5,500 QoS 1 msg/s on the
 * 2 CI cores, while the broker idles (docs/INTEGRATION.md, "Load").
 *
 * Each client has its own identity and authority-signed credential, made here
 * from the authority key, so every connection is a real token login through
 * the plugin. Publishers send QoS 1 "p<k>-<i>" on load/<k mod S>/<client id>
 * at --rate messages per second each for --seconds; subscriber s holds
 * load/<s>/#. The veil_async clients reconnect by themselves (fresh token), so
 * the broker can be killed and restarted under the traffic by the calling
 * script.
 *
 * Accounting: a message counts as sent once the broker acknowledged it
 * (PUBACK, the done callback). At the end every acknowledged message must
 * have reached the app exactly once: lost = acked but never delivered,
 * duplicates = delivered twice. Figures go to stdout as "load: k=v ..."; with
 * --broker-pid the broker's RSS is sampled before, during and after traffic.
 * The idle workers report through a shared mapping: connected clients while
 * they run, and at the end connected clients, reconnects and failures.
 */
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "veil/veil.h"
#include "veil/client.h"
#include "integ.h"

struct lpub {
	struct veil_async *a;
	char id[64], topic[96];
	long next;                 /* next index to publish */
	unsigned char *acked;      /* bitmap of PUBACKed indexes */
	_Atomic long n_acked, n_failed;
};

struct lsub {
	struct veil_async *a;
	char id[64], filter[64];
	_Atomic long delivered, refused;
};

struct ack_ctx {
	struct lpub *p;
	long i;
};

static struct {
	pthread_mutex_t mu;
	struct lpub *pubs;
	long n_pubs, cap_msgs;
	unsigned char **rcvd;      /* per publisher: delivered bitmap */
	long duplicates, delivered, unknown, refused;
} G = { .mu = PTHREAD_MUTEX_INITIALIZER };

static _Atomic long connects_ok, connects_failed;
static int mqtt_version = VEIL_MQTT_5;

static void on_done_connect(void *ctx, int rc)
{
	(void)ctx;
	if (rc == VEIL_OK)
		connects_ok++;
	else
		connects_failed++;
}

static void on_ack(void *ctx, int rc)
{
	struct ack_ctx *a = ctx;
	if (rc == VEIL_OK) {
		pthread_mutex_lock(&G.mu);
		a->p->acked[a->i / 8] |= (unsigned char)(1u << (a->i % 8));
		pthread_mutex_unlock(&G.mu);
		a->p->n_acked++;
	} else {
		a->p->n_failed++;
	}
	free(a);
}

static void on_msg(void *ctx, const struct veil_message *m)
{
	struct lsub *s = ctx;
	s->delivered++;
	long k = -1, i = -1;
	if (sscanf((const char *)m->payload, "p%ld-%ld", &k, &i) != 2 || k < 0 || k >= G.n_pubs || i < 0 ||
	    i >= G.cap_msgs) {
		pthread_mutex_lock(&G.mu);
		G.unknown++;
		pthread_mutex_unlock(&G.mu);
		return;
	}
	unsigned char bit = (unsigned char)(1u << (i % 8));
	pthread_mutex_lock(&G.mu);
	if (G.rcvd[k][i / 8] & bit)
		G.duplicates++;
	G.rcvd[k][i / 8] |= bit;
	G.delivered++;
	pthread_mutex_unlock(&G.mu);
}

static void on_refused(void *ctx, const struct veil_refusal *r)
{
	struct lsub *s = ctx;
	s->refused++;
	pthread_mutex_lock(&G.mu);
	G.refused++;
	pthread_mutex_unlock(&G.mu);
}

static long rss_kb(int pid)
{
	char path[64], line[256];
	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	FILE *f = fopen(path, "r");
	long kb = -1;
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, "VmRSS:", 6))
			kb = atol(line + 6);
	}
	fclose(f);
	return kb;
}

/* Identity + credential files for one client, signed by the authority. */
static int make_device(const struct veil_identity *auth, const char *dir, const char *id, char *key, char *cred,
                       size_t len)
{
	snprintf(key, len, "%s/%s.key", dir, id);
	snprintf(cred, len, "%s/%s.cred", dir, id);
	struct veil_identity *d = NULL;
	int rc = veil_identity_generate(&d);
	if (rc != VEIL_OK)
		return rc;
	remove(key);
	rc = veil_identity_save(d, key);
	struct veil_credential c;
	memset(&c, 0, sizeof(c));
	veil_identity_public(d, c.device_pk);
	veil_identity_free(&d);
	if (rc != VEIL_OK)
		return rc;
	uint64_t now = (uint64_t)time(NULL);
	c.issued_at = now - 60;
	c.expires_at = now + 86400;
	snprintf(c.client_id, sizeof(c.client_id), "%s", id);
	uint8_t buf[VEIL_CREDENTIAL_MAX];
	size_t n = 0;
	rc = veil_credential_issue(auth, &c, buf, sizeof(buf), &n);
	if (rc == VEIL_OK)
		rc = veil_credential_save(buf, n, cred);
	return rc;
}

static int new_client(const struct veil_identity *auth, const char *dir, const char *uri, const char *keyring,
                      const char *id, struct veil_async **out)
{
	char key[512], cred[512];
	int rc = make_device(auth, dir, id, key, cred, sizeof(key));
	if (rc != VEIL_OK) {
		fprintf(stderr, "load: device %s: %s\n", id, veil_strerror(rc));
		return rc;
	}
	struct integ_device d = { .uri = uri, .id = id, .identity = key, .credential = cred, .keyring = keyring,
	                          .persistent = true, .mqtt = mqtt_version };
	struct veil_client_options o;
	MQTTAsync_SSLOptions ssl;
	integ_device_options(&d, &o, &ssl);
	o.connect_timeout_s = 30;
	return veil_async_new(&o, out);
}

/* ---- idle devices in worker processes ---- */

#define IDLE_PER_PROCESS 250

/* Written by the workers, read by this process (MAP_SHARED). */
struct idle_shared {
	_Atomic int stop;          /* set by the parent: report, disconnect, exit */
	_Atomic long errors;       /* clients a worker could not set up */
	_Atomic long reported;     /* workers that added their final figures */
	_Atomic long still, reconnects, connect_failures;
	_Atomic long up[];         /* per worker: clients connected now */
};

struct idle_pool {
	struct idle_shared *sh;
	size_t sh_len;
	long n_workers;
	pid_t *pids;                /* > 0 running, < 0 reaped (-pid) */
	int *status;
};

static long count_connected(struct veil_async **as, long n, uint64_t *reconnects)
{
	long up = 0;
	for (long i = 0; i < n; i++) {
		if (!as[i])
			continue;
		up += veil_async_is_connected(as[i]);
		if (reconnects) {
			struct veil_client_stats st;
			veil_async_stats(as[i], &st);
			*reconnects += st.connects > 1 ? st.connects - 1 : 0;
		}
	}
	return up;
}

static void disconnect_all(struct veil_async **as, long n)
{
	for (long i = 0; i < n; i++) {
		if (as[i])
			veil_async_disconnect(as[i], 1000, NULL, NULL);
	}
	integ_sleep_ms(500);
	for (long i = 0; i < n; i++)
		veil_async_free(&as[i]);
}

/* One worker: idle clients load-idle-<first>..<first+count-1>, kept connected
 * (they reconnect by themselves) until the parent says stop. */
static int idle_worker(struct idle_shared *sh, long w, long first, long count, const struct veil_identity *auth,
                       const char *dir, const char *uri, const char *keyring)
{
	struct veil_async **cl = calloc((size_t)count, sizeof(*cl));
	int rc = cl ? 0 : 1;
	for (long k = 0; cl && k < count; k++) {
		char id[64];
		snprintf(id, sizeof(id), "load-idle-%ld", first + k);
		if (new_client(auth, dir, uri, keyring, id, &cl[k]) != VEIL_OK) {
			sh->errors++;
			rc = 1;
			break;
		}
		veil_async_connect(cl[k], on_done_connect, NULL);
		if (k % 50 == 49)
			integ_sleep_ms(20); /* do not hit the broker's listen backlog with every SYN at once */
	}
	if (!cl)
		sh->errors++;
	while (!sh->stop) {
		sh->up[w] = cl ? count_connected(cl, count, NULL) : 0;
		integ_sleep_ms(50);
	}
	uint64_t rec = 0;
	sh->still += cl ? count_connected(cl, count, &rec) : 0;
	sh->reconnects += (long)rec;
	sh->connect_failures += connects_failed;
	sh->reported++;
	if (cl)
		disconnect_all(cl, count);
	free(cl);
	return rc;
}

/* Fork the workers before this process starts any Paho thread. A worker dies
 * with its parent (PDEATHSIG), so no test leaves clients behind. */
static int idle_spawn(struct idle_pool *pool, long n_idle, long per_proc, const struct veil_identity *auth,
                      const char *dir, const char *uri, const char *keyring)
{
	pool->n_workers = n_idle > 0 ? (n_idle + per_proc - 1) / per_proc : 0;
	pool->sh_len = sizeof(struct idle_shared) + (size_t)pool->n_workers * sizeof(_Atomic long);
	pool->sh = mmap(NULL, pool->sh_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	pool->pids = calloc((size_t)pool->n_workers + 1, sizeof(pid_t));
	pool->status = calloc((size_t)pool->n_workers + 1, sizeof(int));
	if (pool->sh == MAP_FAILED || !pool->pids || !pool->status) {
		pool->sh = NULL;
		return -1;
	}
	fflush(stdout);
	fflush(stderr);
	pid_t parent = getpid();
	for (long w = 0; w < pool->n_workers; w++) {
		long first = w * per_proc, count = n_idle - first < per_proc ? n_idle - first : per_proc;
		pid_t pid = fork();
		if (pid < 0) {
			perror("load: fork");
			pool->n_workers = w; /* idle_finish stops the ones started */
			return -1;
		}
		if (pid == 0) {
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			if (getppid() != parent)
				_exit(1);
			_exit(idle_worker(pool->sh, w, first, count, auth, dir, uri, keyring));
		}
		pool->pids[w] = pid;
	}
	return 0;
}

/* Reap the workers that have exited; returns how many have. Before the stop
 * any exit is a failure (crash, setup failure). */
static long idle_reap(struct idle_pool *pool)
{
	long gone = 0;
	for (long w = 0; w < pool->n_workers; w++) {
		if (pool->pids[w] > 0 && waitpid(pool->pids[w], &pool->status[w], WNOHANG) == pool->pids[w])
			pool->pids[w] = -pool->pids[w];
		gone += pool->pids[w] < 0;
	}
	return gone;
}

static long idle_up(const struct idle_pool *pool)
{
	long up = 0;
	for (long w = 0; w < pool->n_workers; w++)
		up += pool->sh->up[w];
	return up;
}

/* Tell the workers to stop and reap them (they add their final figures
 * before they exit); a worker that does not exit in time is killed by its
 * PID. Returns false on any worker failure. */
static bool idle_finish(struct idle_pool *pool, long *still, uint64_t *reconnects, long *connect_failures)
{
	if (!pool->sh)
		return false;
	pool->sh->stop = 1;
	double until = integ_now() + 30;
	while (idle_reap(pool) < pool->n_workers && integ_now() < until)
		integ_sleep_ms(20);
	bool ok = pool->sh->errors == 0 && pool->sh->reported == pool->n_workers;
	for (long w = 0; w < pool->n_workers; w++) {
		if (pool->pids[w] > 0) {
			fprintf(stderr, "load: idle worker pid %d did not exit; killed\n", (int)pool->pids[w]);
			kill(pool->pids[w], SIGKILL);
			waitpid(pool->pids[w], &pool->status[w], 0);
			ok = false;
		} else if (!WIFEXITED(pool->status[w]) || WEXITSTATUS(pool->status[w]) != 0) {
			fprintf(stderr, "load: idle worker pid %d failed (status %d)\n", (int)-pool->pids[w],
			        pool->status[w]);
			ok = false;
		}
	}
	*still += pool->sh->still;
	*reconnects += (uint64_t)pool->sh->reconnects;
	*connect_failures += pool->sh->connect_failures;
	munmap(pool->sh, pool->sh_len);
	pool->sh = NULL;
	free(pool->pids);
	free(pool->status);
	return ok;
}

/* Every client connected: this process's own and the workers'. */
static bool wait_connected(struct veil_async **as, long n, struct idle_pool *pool, long n_idle, double timeout)
{
	double until = integ_now() + timeout;
	for (;;) {
		long up = count_connected(as, n, NULL) + idle_up(pool);
		if (up == n + n_idle)
			return true;
		if (pool->sh->errors || idle_reap(pool) || integ_now() > until) {
			fprintf(stderr, "load: only %ld of %ld clients connected\n", up, n + n_idle);
			return false;
		}
		integ_sleep_ms(50);
	}
}

int integ_load_main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "uri", required_argument, NULL, 'u' },        { "authority", required_argument, NULL, 'a' },
		{ "keyring", required_argument, NULL, 'r' },    { "dir", required_argument, NULL, 'd' },
		{ "clients", required_argument, NULL, 'n' },    { "publishers", required_argument, NULL, 'p' },
		{ "subscribers", required_argument, NULL, 's' }, { "rate", required_argument, NULL, 'R' },
		{ "seconds", required_argument, NULL, 't' },    { "broker-pid", required_argument, NULL, 'b' },
		{ "started", required_argument, NULL, 'y' },    { "drain", required_argument, NULL, 'D' },
		{ "mqtt", required_argument, NULL, 'm' },       { "fault", no_argument, NULL, 'F' },
		{ "rounds", required_argument, NULL, 'N' },     { "idle-per-process", required_argument, NULL, 'I' },
		{ NULL, 0, NULL, 0 },
	};
	const char *uri = NULL, *authp = NULL, *keyring = NULL, *dir = NULL, *started = NULL;
	long n_clients = 1000, n_pubs = 100, n_subs = 4, seconds = 60, broker_pid = 0, drain = 60, rounds = 1;
	long idle_per_proc = IDLE_PER_PROCESS;
	double rate = 100;
	bool fault = false; /* broker killed under traffic: QoS 1 resends refused as replays are expected */
	int c;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'u': uri = optarg; break;
		case 'a': authp = optarg; break;
		case 'r': keyring = optarg; break;
		case 'd': dir = optarg; break;
		case 'n': n_clients = atol(optarg); break;
		case 'p': n_pubs = atol(optarg); break;
		case 's': n_subs = atol(optarg); break;
		case 'R': rate = atof(optarg); break;
		case 't': seconds = atol(optarg); break;
		case 'b': broker_pid = atol(optarg); break;
		case 'y': started = optarg; break;
		case 'D': drain = atol(optarg); break;
		case 'F': fault = true; break;
		case 'N': rounds = atol(optarg) > 0 ? atol(optarg) : 1; break;
		case 'I': idle_per_proc = atol(optarg) > 0 ? atol(optarg) : IDLE_PER_PROCESS; break;
		case 'm': mqtt_version = atoi(optarg) == 3 ? VEIL_MQTT_311 : VEIL_MQTT_5; break;
		default: return 2;
		}
	}
	if (!uri || !authp || !keyring || !dir || n_pubs < 1 || n_subs < 1 || n_clients < n_pubs + n_subs)
		return 2;
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	char err[512];
	struct veil_identity *auth = NULL;
	int rc = veil_identity_load(authp, &auth, err, sizeof(err));
	if (rc != VEIL_OK) {
		fprintf(stderr, "load: %s\n", err);
		return 1;
	}
	mkdir(dir, 0700);
	long n_idle = n_clients - n_pubs - n_subs;
	double t_setup = integ_now();
	struct idle_pool pool = { 0 };
	if (idle_spawn(&pool, n_idle, idle_per_proc, auth, dir, uri, keyring) != 0) {
		veil_identity_free(&auth);
		long ignore = 0;
		uint64_t ignore_u = 0;
		idle_finish(&pool, &ignore, &ignore_u, &ignore);
		return 1;
	}
	G.n_pubs = n_pubs;
	G.cap_msgs = (long)(rate * (double)seconds * 1.5) + 1000;
	G.pubs = calloc((size_t)n_pubs, sizeof(*G.pubs));
	G.rcvd = calloc((size_t)n_pubs, sizeof(*G.rcvd));
	struct lsub *subs = calloc((size_t)n_subs, sizeof(*subs));
	/* This process's clients: the dashboards and the publishers. */
	long n_all = 0;
	struct veil_async **all = calloc((size_t)(n_subs + n_pubs), sizeof(*all));

	/* Subscribers first: nothing published may miss them. */
	for (long s = 0; s < n_subs; s++) {
		snprintf(subs[s].id, sizeof(subs[s].id), "load-sub-%ld", s);
		snprintf(subs[s].filter, sizeof(subs[s].filter), "load/%ld/#", s);
		if (new_client(auth, dir, uri, keyring, subs[s].id, &subs[s].a) != VEIL_OK)
			return 1;
		veil_async_set_callbacks(subs[s].a, &subs[s], on_msg, on_refused, NULL);
		veil_async_connect(subs[s].a, on_done_connect, NULL);
		all[n_all++] = subs[s].a;
	}
	for (long k = 0; k < n_pubs; k++) {
		struct lpub *p = &G.pubs[k];
		snprintf(p->id, sizeof(p->id), "load-pub-%ld", k);
		snprintf(p->topic, sizeof(p->topic), "load/%ld/%s", k % n_subs, p->id);
		p->acked = calloc((size_t)G.cap_msgs / 8 + 1, 1);
		G.rcvd[k] = calloc((size_t)G.cap_msgs / 8 + 1, 1);
		if (new_client(auth, dir, uri, keyring, p->id, &p->a) != VEIL_OK)
			return 1;
		veil_async_connect(p->a, on_done_connect, NULL);
		all[n_all++] = p->a;
	}
	veil_identity_free(&auth);
	bool up = wait_connected(all, n_all, &pool, n_idle, 120);
	long connected = count_connected(all, n_all, NULL) + idle_up(&pool);
	printf("load: clients=%ld connected=%ld connect_failures=%ld processes=%ld setup_seconds=%.1f\n",
	       n_all + n_idle, connected, (long)connects_failed, 1 + pool.n_workers, integ_now() - t_setup);
	if (!up) {
		long ignore = 0;
		uint64_t ignore_u = 0;
		idle_finish(&pool, &ignore, &ignore_u, &ignore);
		return 1;
	}
	for (long s = 0; s < n_subs; s++) {
		if (veil_async_subscribe(subs[s].a, subs[s].filter, 1, NULL, NULL) != VEIL_OK) {
			fprintf(stderr, "load: subscribe %s failed\n", subs[s].filter);
			return 1;
		}
	}
	integ_sleep_ms(1000); /* SUBACKs */
	long rss0 = broker_pid ? rss_kb((int)broker_pid) : -1, rss_mid = -1;
	if (started) {
		FILE *f = fopen(started, "w");
		if (f)
			fclose(f);
	}

	/* Traffic in rounds, each followed by a drain: the broker's RSS after the
	 * first drained round against the last one tells a leak from a backlog
	 * (queued messages come and go; leaked memory stays). Every 10 ms each
	 * publisher catches up to rate * elapsed. */
	double t0 = integ_now(), t_traffic = 0, t_drain = 0, round_s = (double)seconds / (double)rounds;
	long not_queued = 0, backlog_at_end = 0, rss_round1 = -1, rss_last = -1, rss_end_traffic = -1;
	long sent = 0, acked = 0, failed = 0;
	double next_report = t0 + 5;
	for (long r = 0; r < rounds; r++) {
		double tr0 = integ_now(), t_end = tr0 + round_s, base = (double)r * round_s * rate;
		while (integ_now() < t_end) {
			double due_n = base + (integ_now() - tr0) * rate;
			for (long k = 0; k < n_pubs; k++) {
				struct lpub *p = &G.pubs[k];
				while ((double)p->next < due_n && p->next < G.cap_msgs) {
					char payload[64];
					int n = snprintf(payload, sizeof(payload), "p%ld-%ld", k, p->next);
					struct ack_ctx *a = malloc(sizeof(*a));
					if (!a)
						break; /* retried next tick */
					a->p = p;
					a->i = p->next;
					if (veil_async_publish(p->a, p->topic, payload, (size_t)n, 1, false, on_ack, a) !=
					    VEIL_OK) {
						free(a); /* not queued (disconnected): the same index is retried */
						not_queued++;
						break;
					}
					p->next++;
				}
			}
			if (rss_mid < 0 && broker_pid && integ_now() > t0 + round_s / 2)
				rss_mid = rss_kb((int)broker_pid);
			if (integ_now() >= next_report) {
				/* One line per 5 s: acked vs delivered shows any backlog. */
				long s_acked = 0;
				for (long k = 0; k < n_pubs; k++)
					s_acked += G.pubs[k].n_acked;
				pthread_mutex_lock(&G.mu);
				long s_deliv = G.delivered;
				pthread_mutex_unlock(&G.mu);
				printf("load: t=%.0f acked=%ld delivered=%ld backlog=%ld broker_rss_kb=%ld\n",
				       integ_now() - t0, s_acked, s_deliv, s_acked - s_deliv,
				       broker_pid ? rss_kb((int)broker_pid) : -1);
				next_report += 5;
			}
			integ_sleep_ms(10);
		}
		t_traffic += integ_now() - tr0;
		long acked_now = 0;
		for (long k = 0; k < n_pubs; k++)
			acked_now += G.pubs[k].n_acked;
		pthread_mutex_lock(&G.mu);
		if (acked_now - G.delivered > backlog_at_end)
			backlog_at_end = acked_now - G.delivered;
		pthread_mutex_unlock(&G.mu);
		rss_end_traffic = broker_pid ? rss_kb((int)broker_pid) : -1;

		/* Drain: every PUBACK in, then every acknowledged message delivered. */
		double t_drain0 = integ_now(), until = integ_now() + (double)drain;
		for (;;) {
			acked = failed = sent = 0;
			for (long k = 0; k < n_pubs; k++) {
				sent += G.pubs[k].next;
				acked += G.pubs[k].n_acked;
				failed += G.pubs[k].n_failed;
			}
			pthread_mutex_lock(&G.mu);
			long delivered = G.delivered;
			pthread_mutex_unlock(&G.mu);
			if ((acked + failed == sent && delivered >= acked) || integ_now() > until)
				break;
			integ_sleep_ms(100);
		}
		t_drain += integ_now() - t_drain0;
		integ_sleep_ms(500);
		rss_last = broker_pid ? rss_kb((int)broker_pid) : -1;
		if (r == 0)
			rss_round1 = rss_last;
		printf("load: round=%ld acked=%ld broker_rss_kb_drained=%ld\n", r + 1, acked, rss_last);
	}
	integ_sleep_ms(1000); /* late duplicates */
	long lost = 0, unacked_delivered = 0;
	pthread_mutex_lock(&G.mu);
	for (long k = 0; k < n_pubs; k++) {
		for (long i = 0; i < G.pubs[k].next; i++) {
			unsigned char bit = (unsigned char)(1u << (i % 8));
			bool a = G.pubs[k].acked[i / 8] & bit, r = G.rcvd[k][i / 8] & bit;
			lost += a && !r;
			unacked_delivered += !a && r;
		}
	}
	long delivered = G.delivered, dups = G.duplicates, unknown = G.unknown, refused = G.refused;
	pthread_mutex_unlock(&G.mu);
	uint64_t reconnects = 0;
	long still = count_connected(all, n_all, &reconnects), idle_failures = 0;
	bool workers_ok = idle_finish(&pool, &still, &reconnects, &idle_failures);
	printf("load: publishers=%ld subscribers=%ld idle=%ld rate=%.0f seconds=%.1f sent=%ld acked=%ld "
	       "failed=%ld not_queued_retried=%ld delivered=%ld lost=%ld duplicates=%ld unacked_delivered=%ld "
	       "unknown=%ld refused=%ld msgs_per_s=%.0f reconnects=%llu connected_at_end=%ld backlog_at_end=%ld "
	       "drain_seconds=%.1f connect_failures=%ld workers_ok=%d\n",
	       n_pubs, n_subs, n_idle, rate, t_traffic, sent, acked, failed, not_queued, delivered, lost, dups,
	       unacked_delivered, unknown, refused, (double)acked / t_traffic, (unsigned long long)reconnects,
	       still, backlog_at_end, t_drain, (long)connects_failed + idle_failures, workers_ok ? 1 : 0);
	if (broker_pid)
		printf("load: broker_rss_kb_before=%ld broker_rss_kb_mid=%ld broker_rss_kb_end_traffic=%ld "
		       "broker_rss_kb_round1_drained=%ld broker_rss_kb_after_drain=%ld\n",
		       rss0, rss_mid, rss_end_traffic, rss_round1, rss_last);
	disconnect_all(all, n_all);
	for (long k = 0; k < n_pubs; k++) {
		free(G.pubs[k].acked);
		free(G.rcvd[k]);
	}
	free(G.pubs);
	free(G.rcvd);
	free(subs);
	free(all);
	return (lost == 0 && dups == 0 && unknown == 0 && (refused == 0 || fault) && acked > 0 && workers_ok) ? 0 : 1;
}
