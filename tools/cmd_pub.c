/*
 * `veil pub`: mosquitto_pub through libveil. Each message is sealed under the
 * keyring policy of its topic (or with the key service's key for it) and
 * published with libveil's asynchronous
 * client, keeping up to PUB_WINDOW messages unacknowledged (mosquitto_pub's
 * max_inflight) instead of waiting for each one, so `veil pub -l` keeps up
 * with a pipe. A publish the broker refuses (MQTT 5 PUBACK/PUBREC reason code
 * >= 0x80) stops the command with the reason and exit status 1; so does a
 * publish libveil refuses before sending (no keyring entry, no key from the
 * key service, a plaintext policy without --allow-plaintext), nothing of it
 * having been sent. `-n -r` sends the zero-length retained publish that
 * clears a topic's retained message (libveil sends it unsealed: it carries
 * nothing).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "veil/veil.h"
#include "veil/client.h"
#include "../core/util.h" /* veil__file_read: the one whole-file reader */
#include "cli.h"
#include "cli_mqtt.h"

/* Unacknowledged messages at most, as mosquitto_pub's default max_inflight.
 * It also keeps Paho's command queue short: MQTTAsync refuses a send once
 * maxBufferedMessages (100 by default) publishes wait in it, connected or
 * not (MQTTASYNC_MAX_BUFFERED_MESSAGES, a bare VEIL_ERR_MQTT from libveil). */
#define PUB_WINDOW 20U
/* No acknowledgement at all for this long while some are due: give up. */
#define PUB_ACK_TIMEOUT_MS 20000U

struct pub;

/* One message in flight: what its completion needs to report it. */
struct slot {
	struct pub *p;
	uint64_t index;                  /* 1-based message number */
	struct slot *next_free;
};

struct pub {
	struct cli_mqtt m;
	const char *topic;
	bool retain, allow_plaintext;
	/* under m.lock */
	struct slot slots[PUB_WINDOW];
	struct slot *free_slots;
	unsigned inflight;
	uint64_t last_ack_ms;            /* monotonic: the last completion */
	uint64_t sent;                   /* messages handed to libveil (main thread) */
	bool refused;
	int refused_rc, refused_reason;
	uint64_t refused_index;
};

enum { OPT_REPEAT = CLI_OPT_FIRST_CMD, OPT_REPEAT_DELAY, OPT_ALLOW_PLAINTEXT };

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: veil pub -t TOPIC (-m MESSAGE | -f FILE | -s | -l | -n) [options]\n"
	        "Seal each message under the keyring policy of TOPIC (or the key service's key\n"
	        "for it) and publish it.\n\n"
	        " -m MESSAGE       message text\n"
	        " -f FILE          the file's content as one message\n"
	        " -s               all of standard input as one message\n"
	        " -l               one message per line of standard input (a pipe)\n"
	        " -n               zero-length message (sealed); with -r: clears the topic's retained\n"
	        "                  message (a zero-length retained publish, sent as is: it carries nothing)\n"
	        " -r               retain\n"
	        " -q QOS           0, 1 or 2 (default 0)\n"
	        " --repeat N       publish the message N times (-m, -f, -s, -n)\n"
	        " --repeat-delay S seconds between repeats, after the previous one completed\n"
	        " --allow-plaintext  send in clear where the keyring policy says plaintext;\n"
	        "                  without it such a publish is refused (exit 1, nothing sent)\n"
	        "\n"
	        "Exit status 1 when a message was not published: refused by libveil before\n"
	        "sending (no keyring entry for the topic, no key from the key service, a\n"
	        "plaintext policy) or refused by the broker (MQTT 5 reason code printed, e.g.\n"
	        "0x87 Not authorized). What the broker can report depends on MQTT itself:\n"
	        "  -q 0    MQTT has no acknowledgement at QoS 0: a publish the broker refuses\n"
	        "          is dropped without a word and veil pub exits 0. Use -q 1 to know.\n"
	        "  -V 311  MQTT 3.1.1 cannot report a refused publish at any QoS: the broker\n"
	        "          acknowledges and drops it, and veil pub exits 0. Use MQTT 5 to know.\n"
	        "Up to %u messages are in flight unacknowledged (as mosquitto_pub).\n\n",
	        PUB_WINDOW);
	cli_mqtt_help(f, false);
}

static void on_done(void *ctx, int rc, int reason)
{
	struct slot *s = ctx;
	struct pub *p = s->p;
	pthread_mutex_lock(&p->m.lock);
	if (rc != VEIL_OK && !p->refused) {
		p->refused = true;
		p->refused_rc = rc;
		p->refused_reason = reason;
		p->refused_index = s->index;
	}
	s->next_free = p->free_slots;
	p->free_slots = s;
	p->inflight--;
	p->last_ack_ms = cli_now_ms();
	pthread_cond_broadcast(&p->m.cond);
	pthread_mutex_unlock(&p->m.lock);
}

/* With m.lock held: wait until fewer than max messages are in flight, or
 * something ended the run (refusal, lost connection, no acknowledgement
 * for PUB_ACK_TIMEOUT_MS). Returns false in the latter cases. */
static bool wait_inflight_below(struct pub *p, unsigned max)
{
	while (p->inflight >= max && p->inflight > 0 && !p->refused && !p->m.lost) {
		uint64_t give_up = p->last_ack_ms + PUB_ACK_TIMEOUT_MS;
		if (cli_now_ms() >= give_up)
			return false;
		struct timespec until = cli_mono_at(give_up);
		pthread_cond_timedwait(&p->m.cond, &p->m.lock, &until);
	}
	return !p->refused && !p->m.lost && (p->inflight < max || p->inflight == 0);
}

/* Why the run ended (refusal, lost connection, no acknowledgement). */
static void report_end(struct pub *p)
{
	pthread_mutex_lock(&p->m.lock);
	bool refused = p->refused, lost = p->m.lost;
	int rc = p->refused_rc, reason = p->refused_reason;
	uint64_t idx = p->refused_index;
	unsigned inflight = p->inflight;
	char cause[sizeof(p->m.lost_cause)];
	snprintf(cause, sizeof(cause), "%s", p->m.lost_cause);
	pthread_mutex_unlock(&p->m.lock);
	char what[64] = "", why[160];
	if (p->sent > 1)
		snprintf(what, sizeof(what), " (message %llu)", (unsigned long long)idx);
	if (refused && reason >= 0x80)
		cli_say(&p->m, "the broker refused the publish on '%s'%s: %s", p->topic, what,
		        cli_reason(&p->m, reason, false, why, sizeof(why)));
	else if (refused)
		cli_say(&p->m, "publish on '%s'%s failed: %s (%s)", p->topic, what, veil_strerror(rc), veil_errname(rc));
	else if (lost)
		cli_say(&p->m, "connection lost with %u message(s) unacknowledged: %s", inflight, cause);
	else
		cli_say(&p->m, "no acknowledgement from the broker for %u s (%u message(s) unacknowledged)",
		        PUB_ACK_TIMEOUT_MS / 1000U, inflight);
}

/* Seal and queue one message; false when the run must stop (said). */
static bool publish(struct pub *p, const void *payload, size_t len)
{
	pthread_mutex_lock(&p->m.lock);
	if (!wait_inflight_below(p, PUB_WINDOW)) {
		pthread_mutex_unlock(&p->m.lock);
		report_end(p);
		return false;
	}
	struct slot *s = p->free_slots;
	p->free_slots = s->next_free;
	s->index = ++p->sent;
	if (p->inflight++ == 0)
		p->last_ack_ms = cli_now_ms();
	pthread_mutex_unlock(&p->m.lock);
	int rc = veil_async_publish(p->m.a, p->topic, payload, len, p->m.qos, p->retain, on_done, s);
	if (rc == VEIL_OK)
		return true;
	pthread_mutex_lock(&p->m.lock);
	s->next_free = p->free_slots;
	p->free_slots = s;
	p->inflight--;
	pthread_mutex_unlock(&p->m.lock);
	/* libveil said what it refused (REFUSED ... nothing sent); add the exit. */
	if (rc == VEIL_ERR_CLEAR_REFUSED)
		cli_say(&p->m, "nothing published: give --allow-plaintext to send in clear where keyring %s says "
		        "plaintext", p->m.o.keyring_path);
	else
		cli_say(&p->m, "nothing published on '%s': %s (%s)", p->topic, veil_strerror(rc), veil_errname(rc));
	return false;
}

/* Wait until every message in flight completed; false (said) when the
 * run ended otherwise. */
static bool drain(struct pub *p)
{
	pthread_mutex_lock(&p->m.lock);
	bool ok = wait_inflight_below(p, 1) && p->inflight == 0;
	pthread_mutex_unlock(&p->m.lock);
	if (!ok)
		report_end(p);
	return ok;
}

static void sleep_s(double s)
{
	struct timespec ts = { .tv_sec = (time_t)s, .tv_nsec = (long)((s - (double)(time_t)s) * 1e9) };
	while (clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, &ts) == EINTR)
		;
}

static int publish_lines(struct pub *p)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	bool ok = true;
	while (ok && (n = getline(&line, &cap, stdin)) >= 0) {
		if (n > 0 && line[n - 1] == '\n')
			n--;
		ok = publish(p, line, (size_t)n);
	}
	if (line) {
		sodium_memzero(line, cap);
		free(line);
	}
	if (ok && ferror(stdin)) {
		cli_say(&p->m, "reading standard input: %s", strerror(errno));
		return VEIL_EXIT_FAIL;
	}
	return ok && drain(p) ? VEIL_EXIT_OK : VEIL_EXIT_FAIL;
}

static int publish_repeated(struct pub *p, const void *data, size_t len, int repeat, double delay)
{
	for (int i = 0; i < repeat; i++) {
		if (i > 0 && delay > 0) {
			if (!drain(p))
				return VEIL_EXIT_FAIL;
			sleep_s(delay);
		}
		if (!publish(p, data, len))
			return VEIL_EXIT_FAIL;
	}
	return drain(p) ? VEIL_EXIT_OK : VEIL_EXIT_FAIL;
}

int veil_cmd_pub(int argc, char **argv)
{
	static const struct option longopts[] = {
		CLI_MQTT_LONG,
		{ "message", required_argument, NULL, 'm' },    { "file", required_argument, NULL, 'f' },
		{ "stdin-line", no_argument, NULL, 'l' },       { "stdin-file", no_argument, NULL, 's' },
		{ "null-message", no_argument, NULL, 'n' },     { "retain", no_argument, NULL, 'r' },
		{ "repeat", required_argument, NULL, OPT_REPEAT },
		{ "repeat-delay", required_argument, NULL, OPT_REPEAT_DELAY },
		{ "allow-plaintext", no_argument, NULL, OPT_ALLOW_PLAINTEXT },
		{ NULL, 0, NULL, 0 },
	};
	struct pub *p = calloc(1, sizeof(*p));
	if (!p)
		return VEIL_EXIT_FAIL;
	cli_mqtt_init(&p->m, "pub");
	const char *message = NULL, *file = NULL;
	bool lines = false, null_msg = false, whole_stdin = false;
	int repeat = 1;
	double delay = 0;
	int ch, status = VEIL_EXIT_USAGE;
	struct veil__text data = { 0 };
	enum cli_next nx;
	optind = 1;
	while ((nx = cli_mqtt_next(&p->m, argc, argv, CLI_MQTT_SHORT "m:f:lsnr", longopts, &ch)) == CLI_NEXT_OWN) {
		char *end = NULL;
		switch (ch) {
		case 'm': message = optarg; break;
		case 'f': file = optarg; break;
		case 'l': lines = true; break;
		case 's': whole_stdin = true; break;
		case 'n': null_msg = true; break;
		case 'r': p->retain = true; break;
		case OPT_ALLOW_PLAINTEXT: p->allow_plaintext = true; break;
		case OPT_REPEAT:
			if (cli_parse_int(optarg, 1, 1 << 30, &repeat) != 0)
				goto bad;
			break;
		case OPT_REPEAT_DELAY:
			errno = 0;
			delay = strtod(optarg, &end);
			if (errno || !end || *end || end == optarg || !(delay >= 0 && delay <= 86400))
				goto bad;
			break;
		default: goto bad;
		}
	}
	if (nx != CLI_NEXT_END) {
		status = cli_mqtt_stop(nx, usage);
		goto out;
	}
	if (optind != argc || p->m.n_topics != 1 || (!!message + !!file + lines + null_msg + whole_stdin) != 1) {
		fprintf(stderr, "veil pub: one -t TOPIC and one of -m, -f, -s, -l, -n are needed\n");
		goto bad;
	}
	if (lines && repeat > 1) {
		fprintf(stderr, "veil pub: --repeat applies to -m, -f, -s and -n, not -l\n");
		goto bad;
	}
	if ((status = cli_mqtt_finish(&p->m)) != VEIL_EXIT_OK)
		goto out;
	p->topic = p->m.topics[0];
	p->m.o.refuse_plaintext = !p->allow_plaintext;
	for (size_t i = 0; i < PUB_WINDOW; i++) {
		p->slots[i].p = p;
		p->slots[i].next_free = p->free_slots;
		p->free_slots = &p->slots[i];
	}
	if (file || whole_stdin) {
		char err[512] = "";
		int rc = veil__file_read(file ? file : "-", VEIL__FILE_ANY | VEIL__FILE_WIPE, VEIL_MAX_PLAINTEXT, &data,
		                         err, sizeof(err));
		if (rc != VEIL_OK) {
			fprintf(stderr, "veil pub: %s\n", err[0] ? err : veil_strerror(rc));
			status = VEIL_EXIT_FAIL;
			goto out;
		}
	}
	if ((status = cli_mqtt_connect(&p->m, NULL, NULL)) != VEIL_EXIT_OK)
		goto out;
	if (lines)
		status = publish_lines(p);
	else if (message)
		status = publish_repeated(p, message, strlen(message), repeat, delay);
	else if (null_msg)
		status = publish_repeated(p, "", 0, repeat, delay);
	else
		status = publish_repeated(p, data.text, data.len, repeat, delay);
	goto out;
bad:
	usage(stderr);
	status = VEIL_EXIT_USAGE;
out:
	veil__text_free(&data);
	cli_mqtt_close(&p->m);
	free(p);
	return status;
}
