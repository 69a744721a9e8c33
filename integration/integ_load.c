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
 * the plugin. Subscriber s holds load/<s>/#.
 *
 * Fixed work, not fixed time: the publishers send --messages QoS 1 messages
 * in total, "p<k>-<i>" on load/<k mod S>/<client id>, split over --rounds.
 * Each publisher paces itself at most at --rate messages per second (a real
 * device's rate: the broker is not flooded beyond what a fleet would offer)
 * with at most --window unacknowledged, and all of them pause while
 * --max-backlog messages are published but not yet delivered: on a machine
 * where the dashboards get little CPU the broker's queue (and RSS) stays
 * bounded, so the drained rounds' RSS compares like with like. On a slower
 * machine the run is simply slower. The rate achieved and the time taken
 * are reported, never judged.
 * A round is bounded by --round-timeout and by --stall-timeout without any
 * message acknowledged or delivered: past either, the run "made no progress"
 * and fails. The veil_async clients reconnect by themselves (fresh token), so
 * the broker can be killed and restarted under the traffic by the calling
 * script (--progress tells it how far the traffic is).
 *
 * Accounting: a message counts as sent once the broker acknowledged it
 * (PUBACK, the done callback). Each round ends drained: every message
 * acknowledged and delivered, then every subscriber's SUBACK to a fresh
 * SUBSCRIBE (the broker has handled all of its PUBACKs) before the broker's
 * RSS is read (--broker-pid). At the end every publisher sends one end marker
 * and the run waits for all of them: any late duplicate would have arrived
 * before them. Every acknowledged message must have reached the app exactly
 * once: lost = acked but never delivered, duplicates = delivered twice.
 * Figures go to stdout as "load: k=v ...". The idle workers report through a
 * shared mapping: connected clients while they run, and at the end connected
 * clients, reconnects and failures.
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
	long quota;                /* messages this publisher sends in all rounds */
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
	unsigned char *marked;     /* per publisher: end marker delivered */
	long duplicates, delivered, unknown, refused, markers;
} G = { .mu = PTHREAD_MUTEX_INITIALIZER };

static _Atomic long connects_ok, connects_failed, disconnects_done;
static int mqtt_version = VEIL_MQTT_5;
static double step_s = 30; /* one broker reply: CONNACK, SUBACK, DISCONNECT */

static void on_done_connect(void *ctx, int rc, int reason_code)
{
	(void)ctx;
	if (rc == VEIL_OK)
		connects_ok++;
	else
		connects_failed++;
}

static void on_done_disconnect(void *ctx, int rc, int reason_code)
{
	(void)ctx;
	(void)rc;
	disconnects_done++;
}

static void on_ack(void *ctx, int rc, int reason_code)
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
	if (sscanf((const char *)m->payload, "mark%ld", &k) == 1 && k >= 0 && k < G.n_pubs) {
		pthread_mutex_lock(&G.mu);
		G.markers += !G.marked[k];
		G.marked[k] = 1;
		pthread_mutex_unlock(&G.mu);
		return;
	}
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
	(void)r;
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
	                          .persistent = true, .mqtt = mqtt_version, .step_s = step_s };
	struct veil_client_options o;
	integ_device_options(&d, &o);
	return veil_async_new(&o, out);
}

/* ---- idle devices in worker processes ---- */

#define IDLE_PER_PROCESS 250
/* Connects a worker has in flight at once: the broker's listen backlog is
 * not hit with every SYN at once. */
#define CONNECTS_IN_FLIGHT 50

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

/* Disconnect every client, wait for the DISCONNECTs to complete (the step
 * deadline), free them. */
static void disconnect_all(struct veil_async **as, long n)
{
	long asked = 0;
	long before = disconnects_done;
	for (long i = 0; i < n; i++) {
		if (as[i] && veil_async_disconnect(as[i], 1000, on_done_disconnect, NULL) == VEIL_OK)
			asked++;
	}
	double until = integ_now() + step_s;
	while (disconnects_done - before < asked && integ_now() < until)
		integ_sleep_ms(10);
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
		/* At most CONNECTS_IN_FLIGHT CONNACKs outstanding. */
		double until = integ_now() + step_s;
		while (k - (connects_ok + connects_failed) >= CONNECTS_IN_FLIGHT && integ_now() < until)
			integ_sleep_ms(5);
		if (new_client(auth, dir, uri, keyring, id, &cl[k]) != VEIL_OK) {
			sh->errors++;
			rc = 1;
			break;
		}
		veil_async_connect(cl[k], on_done_connect, NULL);
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
	for (long w = 0; pool->sh && w < pool->n_workers; w++)
		up += pool->sh->up[w];
	return up;
}

/* Tell the workers to stop and reap them (they add their final figures
 * before they exit); a worker that does not exit by the deadline is killed
 * by its PID. Returns false on any worker failure. */
static bool idle_finish(struct idle_pool *pool, double timeout, long *still, uint64_t *reconnects,
                        long *connect_failures)
{
	if (!pool->sh)
		return false;
	pool->sh->stop = 1;
	double until = integ_now() + timeout;
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

/* SUBSCRIBE (again) on every subscriber and wait for each SUBACK: the broker
 * handles a connection's packets in order, so once it answers, it has
 * handled every PUBACK the subscriber sent before. */
static bool subscribe_all(struct lsub *subs, long n_subs, struct integ_waiter *ws)
{
	for (long s = 0; s < n_subs; s++) {
		integ_waiter_init(&ws[s]);
		int rc = veil_async_subscribe(subs[s].a, subs[s].filter, 1, integ_waiter_done, &ws[s]);
		if (rc != VEIL_OK)
			integ_waiter_done(&ws[s], rc, 0);
	}
	bool ok = true;
	for (long s = 0; s < n_subs; s++) {
		int rc = integ_waiter_wait(&ws[s], step_s);
		if (rc != VEIL_OK) {
			fprintf(stderr, "load: subscribe %s: %s\n", subs[s].filter, veil_strerror(rc));
			ok = false;
		}
	}
	return ok;
}

/* Totals over the publishers; delivered under the lock. */
static void totals(long *sent, long *acked, long *failed, long *delivered)
{
	*sent = *acked = *failed = 0;
	for (long k = 0; k < G.n_pubs; k++) {
		*sent += G.pubs[k].next;
		*acked += G.pubs[k].n_acked;
		*failed += G.pubs[k].n_failed;
	}
	pthread_mutex_lock(&G.mu);
	*delivered = G.delivered;
	pthread_mutex_unlock(&G.mu);
}

static void write_progress(const char *path, long acked, long delivered, long up)
{
	char tmp[1024];
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	FILE *f = fopen(tmp, "w");
	if (!f)
		return;
	fprintf(f, "acked=%ld delivered=%ld up=%ld\n", acked, delivered, up);
	if (fclose(f) == 0)
		rename(tmp, path);
}

/* One publish of publisher k's message i; false if not queued (the client
 * is reconnecting: the same index is tried again on the next tick). */
static bool publish_one(struct lpub *p, long k)
{
	char payload[64];
	int n = snprintf(payload, sizeof(payload), "p%ld-%ld", k, p->next);
	struct ack_ctx *a = malloc(sizeof(*a));
	if (!a)
		return false;
	a->p = p;
	a->i = p->next;
	if (veil_async_publish(p->a, p->topic, payload, (size_t)n, 1, false, on_ack, a) != VEIL_OK) {
		free(a);
		return false;
	}
	p->next++;
	return true;
}

struct load_opts {
	const char *uri, *authp, *keyring, *dir, *started, *progress;
	long n_clients, n_pubs, n_subs, messages, rounds, window, max_backlog, broker_pid, idle_per_proc;
	double rate, setup_s, stall_s, round_s;
	bool fault; /* broker killed under traffic: QoS 1 resends refused as replays are expected */
};

static int parse_opts(int argc, char **argv, struct load_opts *o)
{
	static const struct option lo[] = {
		{ "uri", required_argument, NULL, 'u' },          { "authority", required_argument, NULL, 'a' },
		{ "keyring", required_argument, NULL, 'r' },      { "dir", required_argument, NULL, 'd' },
		{ "clients", required_argument, NULL, 'n' },      { "publishers", required_argument, NULL, 'p' },
		{ "subscribers", required_argument, NULL, 's' },  { "rate", required_argument, NULL, 'R' },
		{ "messages", required_argument, NULL, 'M' },     { "broker-pid", required_argument, NULL, 'b' },
		{ "started", required_argument, NULL, 'y' },      { "progress", required_argument, NULL, 'G' },
		{ "mqtt", required_argument, NULL, 'm' },         { "fault", no_argument, NULL, 'F' },
		{ "rounds", required_argument, NULL, 'N' },       { "idle-per-process", required_argument, NULL, 'I' },
		{ "window", required_argument, NULL, 'W' },       { "step-timeout", required_argument, NULL, 'O' },
		{ "setup-timeout", required_argument, NULL, 'C' }, { "stall-timeout", required_argument, NULL, 'L' },
		{ "round-timeout", required_argument, NULL, 'T' }, { "max-backlog", required_argument, NULL, 'B' },
		{ NULL, 0, NULL, 0 },
	};
	*o = (struct load_opts){ .n_clients = 1000, .n_pubs = 100, .n_subs = 4, .messages = 600000, .rounds = 1,
		                 .window = 100, .max_backlog = 4000, .idle_per_proc = IDLE_PER_PROCESS,
		                 .rate = 100, .setup_s = 120, .stall_s = 60 };
	int c;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'u': o->uri = optarg; break;
		case 'a': o->authp = optarg; break;
		case 'r': o->keyring = optarg; break;
		case 'd': o->dir = optarg; break;
		case 'n': o->n_clients = atol(optarg); break;
		case 'p': o->n_pubs = atol(optarg); break;
		case 's': o->n_subs = atol(optarg); break;
		case 'R': o->rate = atof(optarg); break;
		case 'M': o->messages = atol(optarg); break;
		case 'b': o->broker_pid = atol(optarg); break;
		case 'y': o->started = optarg; break;
		case 'G': o->progress = optarg; break;
		case 'F': o->fault = true; break;
		case 'N': o->rounds = atol(optarg) > 0 ? atol(optarg) : 1; break;
		case 'I': o->idle_per_proc = atol(optarg) > 0 ? atol(optarg) : IDLE_PER_PROCESS; break;
		case 'W': o->window = atol(optarg) > 0 ? atol(optarg) : 1; break;
		case 'B': o->max_backlog = atol(optarg) > 0 ? atol(optarg) : 1; break;
		case 'm': mqtt_version = atoi(optarg) == 3 ? VEIL_MQTT_311 : VEIL_MQTT_5; break;
		case 'O': step_s = atof(optarg) > 0 ? atof(optarg) : step_s; break;
		case 'C': o->setup_s = atof(optarg); break;
		case 'L': o->stall_s = atof(optarg); break;
		case 'T': o->round_s = atof(optarg); break;
		default: return 2;
		}
	}
	if (!o->uri || !o->authp || !o->keyring || !o->dir || o->n_pubs < 1 || o->n_subs < 1 ||
	    o->n_clients < o->n_pubs + o->n_subs || o->messages < o->n_pubs)
		return 2;
	if (o->round_s <= 0) /* no bound given: 500 msg/s, far below any machine's */
		o->round_s = (double)o->messages / (double)o->rounds / 500.0 + o->stall_s;
	return 0;
}

/* Figures of the rounds. */
struct load_run {
	double elapsed, drain;       /* seconds, summed over the rounds */
	long backlog_at_end, backlog_max, not_queued;
	long rss0, rss_mid, rss_end_traffic, rss_round1, rss_last;
	bool stalled;
};

/* Round r (0-based): every publisher sends its share up to quota*(r+1)/rounds,
 * paced at most at o->rate and o->window unacknowledged, until every message
 * is acknowledged and delivered; fails ("made no progress") past the round's
 * bound or after o->stall_s without a message acknowledged or delivered. */
static void run_round(const struct load_opts *o, long r, struct veil_async **all, long n_all,
                      struct idle_pool *pool, struct load_run *run)
{
	double tr0 = integ_now(), t_all_acked = 0, last_move = tr0, next_report = tr0 + 5, next_progress = tr0;
	long *start = calloc((size_t)G.n_pubs, sizeof(long)), last_sum = -1, round_msgs = 0;
	for (long k = 0; k < G.n_pubs && start; k++) {
		start[k] = G.pubs[k].next;
		round_msgs += G.pubs[k].quota * (r + 1) / o->rounds - start[k];
	}
	long sent, acked, failed, delivered;
	totals(&sent, &acked, &failed, &delivered);
	for (;;) {
		double now = integ_now();
		bool all_sent = true;
		long in_transit = sent - delivered; /* published, not yet delivered */
		for (long k = 0; k < G.n_pubs && start; k++) {
			struct lpub *p = &G.pubs[k];
			long target = p->quota * (r + 1) / o->rounds;
			double due = o->rate > 0 ? (double)start[k] + (now - tr0) * o->rate : (double)target;
			while ((double)p->next < due && p->next < target && in_transit < o->max_backlog &&
			       p->next - p->n_acked - p->n_failed < o->window) {
				if (!publish_one(p, k)) {
					run->not_queued++;
					break;
				}
				in_transit++;
			}
			all_sent &= p->next >= target;
		}
		totals(&sent, &acked, &failed, &delivered);
		if (acked - delivered > run->backlog_max)
			run->backlog_max = acked - delivered;
		if (all_sent && acked + failed == sent && t_all_acked == 0) {
			t_all_acked = now;
			run->backlog_at_end = acked - delivered > run->backlog_at_end ? acked - delivered : run->backlog_at_end;
			run->rss_end_traffic = o->broker_pid ? rss_kb((int)o->broker_pid) : -1;
		}
		if (t_all_acked > 0 && delivered >= acked)
			break;
		if (run->rss_mid < 0 && o->broker_pid && r == 0 && sent >= round_msgs / 2)
			run->rss_mid = rss_kb((int)o->broker_pid);
		if (acked + delivered != last_sum) {
			last_sum = acked + delivered;
			last_move = now;
		}
		if (now - last_move > o->stall_s || now - tr0 > o->round_s) {
			printf("load: made no progress: round %ld: sent=%ld acked=%ld failed=%ld delivered=%ld after %.0f s "
			       "(bound %.0f s, nothing acknowledged or delivered for %.0f s)\n",
			       r + 1, sent, acked, failed, delivered, now - tr0, o->round_s, now - last_move);
			run->stalled = true;
			break;
		}
		if (o->progress && now >= next_progress) {
			write_progress(o->progress, acked, delivered, count_connected(all, n_all, NULL) + idle_up(pool));
			next_progress = now + 0.1;
		}
		if (now >= next_report) {
			/* One line per 5 s: acked vs delivered shows any backlog. */
			printf("load: round=%ld t=%.0f acked=%ld delivered=%ld backlog=%ld broker_rss_kb=%ld\n", r + 1,
			       now - tr0, acked, delivered, acked - delivered,
			       o->broker_pid ? rss_kb((int)o->broker_pid) : -1);
			next_report += 5;
		}
		integ_sleep_ms(10); /* the pacing tick */
	}
	double t_end = integ_now();
	run->elapsed += t_end - tr0;
	run->drain += t_all_acked > 0 ? t_end - t_all_acked : 0;
	free(start);
}

/* Each publisher sends one end marker; wait until all have arrived (the
 * bound: no marker for stall_s). Anything published before a marker reaches
 * its subscriber before it. */
static bool send_markers(const struct load_opts *o)
{
	for (long k = 0; k < G.n_pubs; k++) {
		char payload[32];
		int n = snprintf(payload, sizeof(payload), "mark%ld", k);
		double until = integ_now() + o->stall_s;
		while (veil_async_publish(G.pubs[k].a, G.pubs[k].topic, payload, (size_t)n, 1, false, NULL, NULL) !=
		       VEIL_OK) {
			if (integ_now() > until)
				return false;
			integ_sleep_ms(10); /* reconnecting: re-checked */
		}
	}
	double until = integ_now() + o->stall_s;
	long seen = -1;
	for (;;) {
		pthread_mutex_lock(&G.mu);
		long m = G.markers;
		pthread_mutex_unlock(&G.mu);
		if (m == G.n_pubs)
			return true;
		if (m != seen) {
			seen = m;
			until = integ_now() + o->stall_s;
		}
		if (integ_now() > until) {
			fprintf(stderr, "load: %ld of %ld end markers arrived\n", m, G.n_pubs);
			return false;
		}
		integ_sleep_ms(10);
	}
}

int integ_load_main(int argc, char **argv)
{
	struct load_opts o;
	if (parse_opts(argc, argv, &o) != 0)
		return 2;
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	char err[512];
	struct veil_identity *auth = NULL;
	int rc = veil_identity_load(o.authp, &auth, err, sizeof(err));
	if (rc != VEIL_OK) {
		fprintf(stderr, "load: %s\n", err);
		return 1;
	}
	mkdir(o.dir, 0700);
	long n_pubs = o.n_pubs, n_subs = o.n_subs, n_idle = o.n_clients - n_pubs - n_subs;
	double t_setup = integ_now();
	struct idle_pool pool = { 0 };
	long ignore = 0;
	uint64_t ignore_u = 0;
	if (idle_spawn(&pool, n_idle, o.idle_per_proc, auth, o.dir, o.uri, o.keyring) != 0) {
		veil_identity_free(&auth);
		idle_finish(&pool, o.setup_s, &ignore, &ignore_u, &ignore);
		return 1;
	}
	G.n_pubs = n_pubs;
	G.cap_msgs = o.messages / n_pubs + 1;
	G.pubs = calloc((size_t)n_pubs, sizeof(*G.pubs));
	G.rcvd = calloc((size_t)n_pubs, sizeof(*G.rcvd));
	G.marked = calloc((size_t)n_pubs, 1);
	struct lsub *subs = calloc((size_t)n_subs, sizeof(*subs));
	struct integ_waiter *ws = calloc((size_t)n_subs, sizeof(*ws));
	/* This process's clients: the dashboards and the publishers. */
	long n_all = 0;
	struct veil_async **all = calloc((size_t)(n_subs + n_pubs), sizeof(*all));
	if (!G.pubs || !G.rcvd || !G.marked || !subs || !ws || !all)
		return 1;

	/* Subscribers first: nothing published may miss them. */
	for (long s = 0; s < n_subs; s++) {
		snprintf(subs[s].id, sizeof(subs[s].id), "load-sub-%ld", s);
		snprintf(subs[s].filter, sizeof(subs[s].filter), "load/%ld/#", s);
		if (new_client(auth, o.dir, o.uri, o.keyring, subs[s].id, &subs[s].a) != VEIL_OK)
			return 1;
		veil_async_set_callbacks(subs[s].a, &subs[s], on_msg, on_refused, NULL);
		veil_async_connect(subs[s].a, on_done_connect, NULL);
		all[n_all++] = subs[s].a;
	}
	for (long k = 0; k < n_pubs; k++) {
		struct lpub *p = &G.pubs[k];
		snprintf(p->id, sizeof(p->id), "load-pub-%ld", k);
		snprintf(p->topic, sizeof(p->topic), "load/%ld/%s", k % n_subs, p->id);
		p->quota = o.messages / n_pubs + (k < o.messages % n_pubs);
		p->acked = calloc((size_t)G.cap_msgs / 8 + 1, 1);
		G.rcvd[k] = calloc((size_t)G.cap_msgs / 8 + 1, 1);
		if (!p->acked || !G.rcvd[k] || new_client(auth, o.dir, o.uri, o.keyring, p->id, &p->a) != VEIL_OK)
			return 1;
		veil_async_connect(p->a, on_done_connect, NULL);
		all[n_all++] = p->a;
	}
	veil_identity_free(&auth);
	bool up = wait_connected(all, n_all, &pool, n_idle, o.setup_s);
	long connected = count_connected(all, n_all, NULL) + idle_up(&pool);
	printf("load: clients=%ld connected=%ld connect_failures=%ld processes=%ld setup_seconds=%.1f\n",
	       n_all + n_idle, connected, (long)connects_failed, 1 + pool.n_workers, integ_now() - t_setup);
	if (!up || !subscribe_all(subs, n_subs, ws)) {
		idle_finish(&pool, o.setup_s, &ignore, &ignore_u, &ignore);
		return 1;
	}
	struct load_run run = { .rss_mid = -1, .rss_end_traffic = -1, .rss_round1 = -1, .rss_last = -1 };
	run.rss0 = o.broker_pid ? rss_kb((int)o.broker_pid) : -1;
	if (o.started) {
		FILE *f = fopen(o.started, "w");
		if (f)
			fclose(f);
	}

	/* Rounds, each drained: the broker's RSS after the first drained round
	 * against the last one tells a leak from a backlog (queued messages come
	 * and go; leaked memory stays). */
	for (long r = 0; r < o.rounds && !run.stalled; r++) {
		run_round(&o, r, all, n_all, &pool, &run);
		if (run.stalled)
			break;
		if (!subscribe_all(subs, n_subs, ws))
			run.stalled = true;
		run.rss_last = o.broker_pid ? rss_kb((int)o.broker_pid) : -1;
		if (r == 0)
			run.rss_round1 = run.rss_last;
		long sent, acked, failed, delivered;
		totals(&sent, &acked, &failed, &delivered);
		printf("load: round=%ld acked=%ld broker_rss_kb_drained=%ld\n", r + 1, acked, run.rss_last);
	}
	bool markers_ok = !run.stalled && send_markers(&o);
	long sent, acked, failed, delivered_total;
	totals(&sent, &acked, &failed, &delivered_total);
	long lost = 0, unacked_delivered = 0;
	pthread_mutex_lock(&G.mu);
	for (long k = 0; k < n_pubs; k++) {
		for (long i = 0; i < G.pubs[k].next; i++) {
			unsigned char bit = (unsigned char)(1u << (i % 8));
			bool a = G.pubs[k].acked[i / 8] & bit, rcv = G.rcvd[k][i / 8] & bit;
			lost += a && !rcv;
			unacked_delivered += !a && rcv;
		}
	}
	long delivered = G.delivered, dups = G.duplicates, unknown = G.unknown, refused = G.refused;
	pthread_mutex_unlock(&G.mu);
	uint64_t reconnects = 0;
	long still = count_connected(all, n_all, &reconnects), idle_failures = 0;
	bool workers_ok = idle_finish(&pool, o.setup_s, &still, &reconnects, &idle_failures);
	printf("load: publishers=%ld subscribers=%ld idle=%ld rate=%.0f messages=%ld sent=%ld acked=%ld "
	       "failed=%ld not_queued_retried=%ld delivered=%ld lost=%ld duplicates=%ld unacked_delivered=%ld "
	       "unknown=%ld refused=%ld markers=%d elapsed_seconds=%.1f msgs_per_s=%.0f reconnects=%llu "
	       "connected_at_end=%ld backlog_at_end=%ld backlog_max=%ld drain_seconds=%.1f connect_failures=%ld "
	       "workers_ok=%d progress=%d\n",
	       n_pubs, n_subs, n_idle, o.rate, o.messages, sent, acked, failed, run.not_queued, delivered, lost, dups,
	       unacked_delivered, unknown, refused, markers_ok ? 1 : 0, run.elapsed,
	       run.elapsed > 0 ? (double)acked / run.elapsed : 0.0, (unsigned long long)reconnects, still,
	       run.backlog_at_end, run.backlog_max, run.drain, (long)connects_failed + idle_failures, workers_ok ? 1 : 0,
	       run.stalled ? 0 : 1);
	if (o.broker_pid)
		printf("load: broker_rss_kb_before=%ld broker_rss_kb_mid=%ld broker_rss_kb_end_traffic=%ld "
		       "broker_rss_kb_round1_drained=%ld broker_rss_kb_after_drain=%ld\n",
		       run.rss0, run.rss_mid, run.rss_end_traffic, run.rss_round1, run.rss_last);
	disconnect_all(all, n_all);
	for (long k = 0; k < n_pubs; k++) {
		free(G.pubs[k].acked);
		free(G.rcvd[k]);
	}
	free(G.pubs);
	free(G.rcvd);
	free(G.marked);
	free(subs);
	free(ws);
	free(all);
	return (lost == 0 && dups == 0 && unknown == 0 && (refused == 0 || o.fault) && acked == o.messages &&
	        !run.stalled && markers_ok && workers_ok)
	               ? 0
	               : 1;
}
