/*
 * `veil sub`: mosquitto_sub through libveil. Prints what opened and
 * verified (sub_format.c: payload, -v, -F, --json); every refused message
 * goes to stderr with its reason; a message that arrived in clear under a
 * plaintext policy is marked as such, never printed like a verified one.
 * Long-running: SIGHUP re-reads the keyring, and so does a change of the
 * keyring file (polled every KEYRING_POLL_MS on the monotonic clock), both
 * without dropping the connection; a keyring that does not load leaves the
 * old one in use (libveil says why, file:line). The key service's keys
 * (docs/KEYS.md) need neither: libveil applies them as they come. SIGINT/SIGTERM end it
 * cleanly; -W ends it with "Timed out" and status 27, as mosquitto_sub.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "veil/veil.h"
#include "veil/client.h"
#include "../core/util.h"        /* veil__filter_matches: the one topic matcher */
#include "../plugin/file.h" /* the change signature the plugin polls its files with */
#include "cli.h"
#include "cli_mqtt.h"
#include "sub_format.h"

#define KEYRING_POLL_MS 1000U
/* mosquitto_sub's status when -W runs out (MOSQ_ERR_TIMEOUT). */
#define SUB_EXIT_TIMED_OUT 27
#define MAX_FILTER_OUT 32

struct sub {
	struct cli_mqtt m;
	struct sub_out out;
	const char *unsub[CLI_MAX_TOPICS];
	int n_unsub;
	const char *filter_out[MAX_FILTER_OUT];
	int n_filter_out;
	bool no_retained, retained_only, exit_after_sub;
	long limit;                      /* -C; 0: none */
	/* under m.lock */
	long count;                      /* messages printed */
	bool fresh_seen;                 /* --retained-only: a non-retained message came */
	bool stop;                       /* SIGINT / SIGTERM */
	unsigned hups;                   /* SIGHUPs not yet acted on */
};

enum { OPT_JSON = CLI_OPT_FIRST_CMD, OPT_RETAINED_ONLY };

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: veil sub -t FILTER [-t FILTER ...] [options]\n"
	        "Subscribe and print what opened and verified, one message per line.\n"
	        "Refused messages (tampered, replayed, moved, unknown key, plaintext on a\n"
	        "protected topic) go to stderr with the reason. A message that arrived in clear\n"
	        "under a 'plaintext' keyring policy is NOT verified: it is printed after\n"
	        "\"[plaintext] \", marked \"plaintext\": true in --json, %%V in -F, and noted on stderr.\n\n"
	        " -q QOS           subscription QoS 0, 1 or 2 (default 0)\n"
	        " -C COUNT         exit after COUNT messages\n"
	        " -W SECONDS       exit after SECONDS: \"Timed out\", status 27\n"
	        " -E               exit once the subscriptions are acknowledged (with -c: make the session)\n"
	        " -U FILTER        unsubscribe FILTER (after subscribing to the -t filters)\n"
	        " -T FILTER        do not print messages whose topic matches FILTER\n"
	        " -R               do not print retained (stale) messages\n"
	        " --retained-only  print only retained messages; exit at the first fresh one\n"
	        " -v               print \"topic payload\"\n"
	        " -N               no new line after each message\n"
	        " -F FORMAT        print as FORMAT (below)   --json  one JSON object per line\n"
	        "SIGHUP re-reads the keyring, as does a change of the keyring file (checked\n"
	        "every second); the connection stays up, and a keyring that does not load\n"
	        "leaves the old one in use. SIGINT/SIGTERM: exit 0.\n\n");
	sub_format_help(f);
	fputc('\n', f);
	cli_mqtt_help(f, true);
}

static bool filtered_out(const struct sub *s, const char *topic)
{
	for (int i = 0; i < s->n_filter_out; i++) {
		if (veil__filter_matches(s->filter_out[i], topic))
			return true;
	}
	return false;
}

static void on_message(void *ctx, const struct veil_message *msg)
{
	struct cli_mqtt *m = ctx;
	struct sub *s = m->user;
	pthread_mutex_lock(&m->lock);
	bool full = s->limit && s->count >= s->limit;
	if (s->retained_only && !msg->retained)
		s->fresh_seen = true;
	bool skip = full || s->fresh_seen || (s->no_retained && msg->retained) || filtered_out(s, msg->topic);
	if (!skip) {
		if (msg->plaintext)
			cli_say(m, "message on '%s' arrived in clear under the keyring's plaintext policy: NOT verified",
			        msg->topic);
		sub_print(stdout, &s->out, msg);
		fflush(stdout);
		s->count++;
	}
	m->events++;
	pthread_cond_broadcast(&m->cond);
	pthread_mutex_unlock(&m->lock);
}

static void on_refusal(void *ctx, const struct veil_refusal *r)
{
	struct cli_mqtt *m = ctx;
	cli_say(m, "refused message on '%s': %s (%s)", r->topic, veil_errname(r->err), veil_strerror(r->err));
}

/* ---- signals: one thread takes them all (they are blocked elsewhere) ---- */

static void *signal_main(void *arg)
{
	struct sub *s = arg;
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGUSR1); /* from veil_cmd_sub: done */
	for (;;) {
		int sig = 0;
		if (sigwait(&set, &sig) != 0 || sig == SIGUSR1)
			return NULL;
		pthread_mutex_lock(&s->m.lock);
		if (sig == SIGHUP)
			s->hups++;
		else
			s->stop = true;
		s->m.events++;
		pthread_cond_broadcast(&s->m.cond);
		pthread_mutex_unlock(&s->m.lock);
	}
}

/* ---- keyring reload ---- */

static void reload(struct sub *s, const char *why)
{
	/* The key service's keys change by themselves. */
	if (!s->m.o.keyring_path) {
		cli_say(&s->m, "no keyring file to reload (%s): the key service's keys apply as they come", why);
		return;
	}
	/* On failure libveil says why (file:line) and keeps the old keyring. */
	if (veil_async_reload(s->m.a) == VEIL_OK)
		cli_say(&s->m, "keyring %s reloaded (%s)", s->m.o.keyring_path, why);
}

/* ---- subscribing ---- */

static int subscribe_all(struct sub *s)
{
	struct cli_mqtt *m = &s->m;
	struct cli_done d[CLI_MAX_TOPICS];
	int refused = 0;
	char why[160];
	for (int i = 0; i < m->n_topics; i++) {
		cli_done_init(&d[i], m);
		int rc = veil_async_subscribe(m->a, m->topics[i], m->qos, cli_done_cb, &d[i]);
		if (rc != VEIL_OK) {
			cli_say(m, "cannot subscribe to '%s': %s", m->topics[i], veil_strerror(rc));
			return VEIL_EXIT_FAIL;
		}
	}
	for (int i = 0; i < m->n_topics; i++) {
		if (!cli_done_wait(&d[i], 10000)) {
			cli_say(m, "no SUBACK for '%s'%s", m->topics[i], m->lost ? ": connection lost" : " within 10 s");
			return VEIL_EXIT_FAIL;
		}
		if (d[i].rc != VEIL_OK) {
			refused++;
			if (d[i].reason > 0)
				cli_say(m, "the broker refused the subscription to '%s': %s", m->topics[i],
				        cli_reason(m, d[i].reason, false, why, sizeof(why)));
			else
				cli_say(m, "subscription to '%s' failed: %s", m->topics[i], veil_strerror(d[i].rc));
		}
	}
	if (m->n_topics > 0 && refused == m->n_topics) {
		cli_say(m, "all subscription requests were denied");
		return VEIL_EXIT_FAIL;
	}
	for (int i = 0; i < s->n_unsub; i++) {
		struct cli_done u;
		cli_done_init(&u, m);
		int rc = veil_async_unsubscribe(m->a, s->unsub[i], cli_done_cb, &u);
		if (rc == VEIL_OK && !cli_done_wait(&u, 10000))
			rc = VEIL_ERR_TIMEOUT;
		else if (rc == VEIL_OK)
			rc = u.rc;
		if (rc != VEIL_OK) {
			cli_say(m, "unsubscribe from '%s' failed: %s", s->unsub[i], veil_strerror(rc));
			return VEIL_EXIT_FAIL;
		}
	}
	return VEIL_EXIT_OK;
}

/* ---- the long run ---- */

static int run(struct sub *s, int timeout_s)
{
	struct cli_mqtt *m = &s->m;
	uint64_t start = cli_now_ms();
	uint64_t deadline = timeout_s ? start + (uint64_t)timeout_s * 1000U : 0;
	uint64_t next_poll = start + KEYRING_POLL_MS;
	struct vp_file_sig keyring;
	vp_file__sig(m->o.keyring_path, &keyring);
	int status = VEIL_EXIT_OK;
	pthread_mutex_lock(&m->lock);
	for (;;) {
		if ((s->limit && s->count >= s->limit) || s->stop || s->fresh_seen)
			break;
		if (m->lost) {
			status = VEIL_EXIT_FAIL;
			break;
		}
		if (s->hups) {
			s->hups = 0;
			pthread_mutex_unlock(&m->lock);
			vp_file__sig(m->o.keyring_path, &keyring);
			reload(s, "SIGHUP");
			pthread_mutex_lock(&m->lock);
			continue;
		}
		uint64_t now = cli_now_ms();
		if (deadline && now >= deadline) {
			status = SUB_EXIT_TIMED_OUT;
			break;
		}
		if (now >= next_poll) {
			pthread_mutex_unlock(&m->lock);
			struct vp_file_sig cur;
			vp_file__sig(m->o.keyring_path, &cur);
			if (cur.exists && !vp_file__sig_equal(&cur, &keyring)) {
				keyring = cur;
				reload(s, "the file changed");
			}
			pthread_mutex_lock(&m->lock);
			next_poll = cli_now_ms() + KEYRING_POLL_MS;
			continue;
		}
		uint64_t wake = deadline && deadline < next_poll ? deadline : next_poll;
		struct timespec until = cli_mono_at(wake);
		unsigned seen = m->events;
		while (m->events == seen && pthread_cond_timedwait(&m->cond, &m->lock, &until) != ETIMEDOUT)
			;
	}
	char cause[sizeof(m->lost_cause)];
	snprintf(cause, sizeof(cause), "%s", m->lost_cause);
	pthread_mutex_unlock(&m->lock);
	if (status == VEIL_EXIT_FAIL)
		cli_say(m, "connection lost: %s", cause);
	else if (status == SUB_EXIT_TIMED_OUT && !m->quiet)
		fprintf(stderr, "Timed out\n");
	return status;
}

int veil_cmd_sub(int argc, char **argv)
{
	static const struct option longopts[] = {
		CLI_MQTT_LONG,
		{ "count", required_argument, NULL, 'C' },   { "verbose", no_argument, NULL, 'v' },
		{ "unsubscribe", required_argument, NULL, 'U' }, { "filter-out", required_argument, NULL, 'T' },
		{ "json", no_argument, NULL, OPT_JSON },     { "retained-only", no_argument, NULL, OPT_RETAINED_ONLY },
		{ NULL, 0, NULL, 0 },
	};
	struct sub *s = calloc(1, sizeof(*s));
	if (!s)
		return VEIL_EXIT_FAIL;
	cli_mqtt_init(&s->m, "sub");
	s->m.user = s;
	int timeout_s = 0, limit = 0;
	bool verbose = false, json = false;
	int ch, status = VEIL_EXIT_USAGE;
	pthread_t sig_thread;
	bool sig_started = false;
	enum cli_next nx;
	optind = 1;
	while ((nx = cli_mqtt_next(&s->m, argc, argv, CLI_MQTT_SHORT "C:W:vNREF:U:T:", longopts, &ch)) ==
	       CLI_NEXT_OWN) {
		switch (ch) {
		case 'C': if (cli_parse_int(optarg, 1, 1 << 30, &limit)) goto bad; break;
		case 'W': if (cli_parse_int(optarg, 1, 1 << 30, &timeout_s)) goto bad; break;
		case 'v': verbose = true; break;
		case 'N': s->out.no_eol = true; break;
		case 'R': s->no_retained = true; break;
		case 'E': s->exit_after_sub = true; break;
		case 'F': s->out.format = optarg; break;
		case OPT_JSON: json = true; break;
		case OPT_RETAINED_ONLY: s->retained_only = true; break;
		case 'U':
			if (s->n_unsub >= CLI_MAX_TOPICS)
				goto bad;
			s->unsub[s->n_unsub++] = optarg;
			break;
		case 'T':
			if (s->n_filter_out >= MAX_FILTER_OUT)
				goto bad;
			s->filter_out[s->n_filter_out++] = optarg;
			break;
		default: goto bad;
		}
	}
	if (nx != CLI_NEXT_END) {
		status = cli_mqtt_stop(nx, usage);
		goto out;
	}
	if (optind != argc || (s->m.n_topics < 1 && s->n_unsub < 1)) {
		fprintf(stderr, "veil sub: -t FILTER (or -U FILTER) is needed\n");
		goto bad;
	}
	if (json && s->out.format) {
		fprintf(stderr, "veil sub: -F and --json do not go together\n");
		goto bad;
	}
	s->out.mode = json ? SUB_OUT_JSON : s->out.format ? SUB_OUT_FORMAT : verbose ? SUB_OUT_VERBOSE : SUB_OUT_PAYLOAD;
	s->limit = limit;
	if ((status = cli_mqtt_finish(&s->m)) != VEIL_EXIT_OK)
		goto out;

	/* Before any thread exists, so only the signal thread takes them. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	if (pthread_create(&sig_thread, NULL, signal_main, s) != 0) {
		fprintf(stderr, "veil sub: cannot start the signal thread\n");
		status = VEIL_EXIT_FAIL;
		goto out;
	}
	sig_started = true;
	if ((status = cli_mqtt_connect(&s->m, on_message, on_refusal)) != VEIL_EXIT_OK)
		goto out;
	/* Only -U: nothing is left to receive once unsubscribed. */
	if ((status = subscribe_all(s)) != VEIL_EXIT_OK || s->exit_after_sub || s->m.n_topics == 0)
		goto out;
	status = run(s, timeout_s);
	goto out;
bad:
	usage(stderr);
	status = VEIL_EXIT_USAGE;
out:
	if (sig_started) {
		pthread_kill(sig_thread, SIGUSR1);
		pthread_join(sig_thread, NULL);
	}
	cli_mqtt_close(&s->m);
	free(s);
	return status;
}
