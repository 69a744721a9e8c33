/*
 * veil-keyd: the key service daemon (docs/PROTOCOL.md sections 10-13).
 *
 *   veil-keyd -c /etc/veil/keyd.conf [-d]     run
 *   veil-keyd -c /etc/veil/keyd.conf --init   create the storage key and the database
 *
 * Signals: SIGHUP re-reads the config, ACL, revocation list and
 * authorities (a file that does not load keeps the old state); SIGTERM and
 * SIGINT stop cleanly. One audit line per event on stderr. The main thread
 * does all the work: it waits (poll) on the signal pipe, the MQTT event
 * pipe and the service's next tick.
 */
#define _GNU_SOURCE /* pipe2 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "veil/veil.h"
#include "keyd.h"
#include "mqtt.h"
#include "service.h"
#include "store.h"

static int g_sigpipe[2] = { -1, -1 }; /* the self-pipe: the one thing a signal handler may touch */

static void on_signal(int sig)
{
	int saved = errno;
	unsigned char b = (unsigned char)sig;
	ssize_t w = write(g_sigpipe[1], &b, 1);
	(void)w;
	errno = saved;
}

static struct kd_now clock_now(void)
{
	struct timespec rt, mt;
	clock_gettime(CLOCK_REALTIME, &rt);
	clock_gettime(CLOCK_MONOTONIC, &mt);
	struct kd_now n = { (uint64_t)rt.tv_sec * 1000000U + (uint64_t)rt.tv_nsec / 1000U,
		            (uint64_t)mt.tv_sec * 1000U + (uint64_t)mt.tv_nsec / 1000000U };
	return n;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: veil-keyd -c CONFIG [-d]\n"
	           "       veil-keyd -c CONFIG --init\n"
	           "  -c, --config FILE  keyd's config (e.g. /etc/veil/keyd.conf)\n"
	           "      --init         create the storage key file (mode 0600) and the database, then exit\n"
	           "  -d, --debug        also log debug lines\n");
}

static int do_init(const struct kd_config *cfg)
{
	char err[512] = "";
	struct stat st;
	if (stat(cfg->storage_key, &st) == 0) {
		fprintf(stderr, "veil-keyd: %s exists; keeping it (never overwritten)\n", cfg->storage_key);
	} else if (kd_storage_key__create(cfg->storage_key, err, sizeof(err)) != VEIL_OK) {
		fprintf(stderr, "veil-keyd: %s\n", err);
		return 1;
	}
	uint8_t *key = NULL;
	struct kd_store *s = NULL;
	int rc = kd_storage_key__load(cfg->storage_key, &key, err, sizeof(err));
	if (rc == VEIL_OK)
		rc = kd_store__open(cfg->database, key, true, &s, err, sizeof(err));
	kd_store__close(&s);
	kd_storage_key__free(&key);
	if (rc != VEIL_OK) {
		fprintf(stderr, "veil-keyd: %s\n", err);
		return 1;
	}
	printf("veil-keyd: storage key %s and database %s ready\n", cfg->storage_key, cfg->database);
	return 0;
}

#ifdef VEIL_KEYD_TEST_HOOKS
/* Issue 13's drill: die without cleanup after N bundles were acknowledged
 * by the broker (VEIL_KEYD_CRASH_AFTER=N), one publish in flight at a
 * time, so the (N+1)th never left. Test builds only. */
static void crash_hook(uint64_t published)
{
	const char *v = getenv("VEIL_KEYD_CRASH_AFTER");
	if (v && *v && published >= strtoull(v, NULL, 10)) {
		kd_log__audit("test", "crash", "after=%llu", (unsigned long long)published);
		raise(SIGKILL);
	}
}
#endif

struct run {
	const char *config_path;
	struct kd_service *svc;
	struct kd_mqtt *mq;
	uint64_t reconnect_at_ms; /* 0: none due */
	uint64_t backoff_ms;
	uint64_t published; /* bundles the broker acknowledged */
	bool stop;
};

static void schedule_reconnect(struct run *r, const struct kd_now *now)
{
	r->reconnect_at_ms = now->mono_ms + r->backoff_ms;
	r->backoff_ms = r->backoff_ms * 2 > 30000 ? 30000 : r->backoff_ms * 2;
}

static void handle_event(struct run *r, struct kd_ev *ev, const struct kd_now *now)
{
	uint8_t cred_id[VEIL_CREDENTIAL_ID_BYTES];
	bool is_bundle = false;
	uint64_t version = 0;
	bool done = kd_mqtt__on_event(r->mq, ev, cred_id, &is_bundle, &version);
	switch (ev->type) {
	case KD_EV_CONNECTED:
		r->backoff_ms = 500;
		kd_log__audit("mqtt", "connected", "broker=%s", kd_service__config(r->svc)->broker);
		kd_service__reconnected(r->svc);
		break;
	case KD_EV_CONNECT_FAILED:
		kd_log__audit("mqtt", "connect-failed", "code=%d retry_ms=%llu", ev->code, (unsigned long long)r->backoff_ms);
		schedule_reconnect(r, now);
		break;
	case KD_EV_LOST:
		/* code: the reason code of the broker's DISCONNECT (0x8e session
		 * taken over, 0x98 administrative action), 0 for a dropped line. */
		kd_log__audit("mqtt", "lost", "retry_ms=%llu code=0x%02x", (unsigned long long)r->backoff_ms,
		              (unsigned)ev->code & 0xffU);
		schedule_reconnect(r, now);
		break;
	case KD_EV_SUBSCRIBED:
		kd_log__audit("mqtt", "subscribed", "filter=%s+ qos=%d", "$veil/v1/req/", ev->code);
		break;
	case KD_EV_SUBSCRIBE_FAILED:
		kd_log__audit("mqtt", "subscribe-failed", "filter=%s+ code=0x%02x", "$veil/v1/req/", (unsigned)ev->code);
		break;
	case KD_EV_MESSAGE:
		kd_service__message(r->svc, ev->topic, ev->payload, ev->len, now);
		break;
	case KD_EV_PUBACK:
		if (done) {
			kd_log__debug("mqtt", "puback", "topic=%s version=%llu", ev->topic, (unsigned long long)version);
			if (is_bundle) {
				kd_service__published(r->svc, cred_id, version);
				r->published++;
#ifdef VEIL_KEYD_TEST_HOOKS
				crash_hook(r->published); /* before the next one is handed over */
#endif
			}
		}
		kd_mqtt__flush(r->mq);
		break;
	case KD_EV_PUBLISH_FAILED:
		kd_log__audit("mqtt", "publish-failed", "topic=%s version=%llu code=0x%02x", ev->topic,
		              (unsigned long long)ev->version, (unsigned)ev->code);
		break;
	}
}

static void handle_signal(struct run *r, int sig, const struct kd_now *now)
{
	if (sig == SIGHUP) {
		char err[512] = "";
		if (kd_service__reload(r->svc, r->config_path, now, err, sizeof(err)) != VEIL_OK)
			kd_log__audit("config", "reload-failed", "kept=old error=%s", err);
	} else {
		kd_log__audit("daemon", "stop", "signal=%d", sig);
		r->stop = true;
	}
}

static int run_loop(struct run *r)
{
	struct kd_now now = clock_now();
	if (kd_mqtt__connect(r->mq, now.unix_us / 1000000U) != VEIL_OK)
		schedule_reconnect(r, &now);
	while (!r->stop) {
		now = clock_now();
		kd_service__tick(r->svc, &now);
		int timeout = kd_service__next_ms(r->svc, &now);
		if (timeout == 0)
			timeout = 1; /* more work queued: look at the pipes, then tick again */
		if (r->reconnect_at_ms) {
			int64_t left = (int64_t)(r->reconnect_at_ms - now.mono_ms);
			if (left <= 0) {
				r->reconnect_at_ms = 0;
				if (kd_mqtt__connect(r->mq, now.unix_us / 1000000U) != VEIL_OK)
					schedule_reconnect(r, &now);
				continue;
			}
			if (left < timeout)
				timeout = (int)left;
		}
		struct pollfd pf[3] = { { g_sigpipe[0], POLLIN, 0 }, { kd_mqtt__fd(r->mq), POLLIN, 0 },
			                { kd_service__watch_fd(r->svc), POLLIN, 0 } };
		if (poll(pf, pf[2].fd >= 0 ? 3 : 2, timeout) < 0 && errno != EINTR)
			return 1;
		now = clock_now();
		if (pf[2].fd >= 0 && (pf[2].revents & POLLIN))
			kd_service__watch_read(r->svc);
		if (pf[0].revents & POLLIN) {
			unsigned char sigs[16];
			ssize_t n = read(g_sigpipe[0], sigs, sizeof(sigs));
			for (ssize_t i = 0; i < n; i++)
				handle_signal(r, sigs[i], &now);
		}
		struct kd_ev *ev;
		while ((ev = kd_mqtt__next(r->mq)) != NULL) {
			handle_event(r, ev, &now);
			kd_mqtt__ev_free(ev);
		}
		kd_service__sync(r->svc);
	}
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = { { "config", required_argument, NULL, 'c' },
		                              { "init", no_argument, NULL, 'i' },
		                              { "debug", no_argument, NULL, 'd' },
		                              { "help", no_argument, NULL, 'h' },
		                              { NULL, 0, NULL, 0 } };
	const char *config = NULL;
	bool init = false;
	int c;
	while ((c = getopt_long(argc, argv, "c:dh", opts, NULL)) != -1) {
		switch (c) {
		case 'c': config = optarg; break;
		case 'i': init = true; break;
		case 'd': kd_log__set_debug(true); break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!config || optind != argc) {
		usage(stderr);
		return 2;
	}
	if (veil_init() != VEIL_OK) {
		fprintf(stderr, "veil-keyd: libsodium failed to initialise\n");
		return 1;
	}
	char err[512] = "";
	struct kd_config cfg;
	if (kd_config__load(config, &cfg, err, sizeof(err)) != VEIL_OK) {
		fprintf(stderr, "veil-keyd: %s\n", err);
		return 1;
	}
	if (init) {
		int rc = do_init(&cfg);
		kd_config__free(&cfg);
		return rc;
	}
	struct kd_now now = clock_now();
	uint8_t *key = NULL;
	struct kd_store *st = NULL;
	struct kd_material m;
	struct kd_service *svc = NULL;
	int rc = kd_storage_key__load(cfg.storage_key, &key, err, sizeof(err));
	if (rc == VEIL_OK)
		rc = kd_store__open(cfg.database, key, false, &st, err, sizeof(err));
	if (rc == VEIL_ERR_NOT_FOUND)
		snprintf(err + strlen(err), sizeof(err) - strlen(err), " (run veil-keyd -c %s --init first)", config);
	if (rc == VEIL_OK)
		rc = kd_material__load(&cfg, now.unix_us / 1000000U, &m, err, sizeof(err));
	if (rc == VEIL_OK)
		rc = kd_service__new(&cfg, &m, st, &now, &svc, err, sizeof(err));
	if (rc != VEIL_OK) {
		fprintf(stderr, "veil-keyd: %s\n", err);
		kd_config__free(&cfg);
		kd_store__close(&st);
		kd_storage_key__free(&key);
		return 1;
	}
	const struct kd_config *sc = kd_service__config(svc);
	struct run r = { .config_path = config, .svc = svc, .backoff_ms = 500 };
	rc = pipe2(g_sigpipe, O_NONBLOCK | O_CLOEXEC);
	if (rc == 0)
		rc = kd_mqtt__new(sc, &r.mq, err, sizeof(err));
	if (rc != 0) {
		fprintf(stderr, "veil-keyd: %s\n", err[0] ? err : strerror(errno));
		kd_service__free(&svc);
		kd_store__close(&st);
		kd_storage_key__free(&key);
		return 1;
	}
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	kd_service__set_publisher(svc, kd_mqtt__publish, r.mq);
#ifdef VEIL_KEYD_TEST_HOOKS
	if (getenv("VEIL_KEYD_CRASH_AFTER"))
		kd_mqtt__set_window(r.mq, 1); /* exactly N bundles at the broker when it dies */
#endif
	if (kd_service__watch(svc, config) != VEIL_OK) {
		fprintf(stderr, "veil-keyd: out of memory\n");
		rc = 1;
	}
	kd_log__audit("daemon", "start", "client=%s broker=%s scopes=%zu version=%s", sc->client_id, sc->broker,
	              sc->n_scopes, veil_version());
	if (rc == 0)
		rc = run_loop(&r);
	kd_mqtt__disconnect(r.mq, 2000);
	kd_service__sync(svc);
	kd_mqtt__free(&r.mq);
	kd_service__free(&svc);
	kd_store__close(&st);
	kd_storage_key__free(&key);
	close(g_sigpipe[0]);
	close(g_sigpipe[1]);
	return rc;
}
