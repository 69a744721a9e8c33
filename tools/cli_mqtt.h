/*
 * What `veil pub` and `veil sub` share (cli_mqtt.c): mosquitto_pub/_sub's
 * connection options plus Veil's files, one libveil asynchronous client, and
 * the wording of every failure, so both commands say why without -d: what
 * libveil logs at error or warning level (file:line of a keyring error, the
 * missing file, "credential ... expired at ...", "identity does not match
 * credential", a publish REFUSED before sending) is printed as it comes; a
 * broker's refusal is printed with its MQTT reason code and meaning, and a
 * refused token login with this machine's clock and the credential's window.
 */
#ifndef VEIL_CLI_MQTT_H
#define VEIL_CLI_MQTT_H

#include <getopt.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "veil/veil.h"
#include "veil/client.h"

#define CLI_MAX_TOPICS 64

struct cli_mqtt {
	const char *cmd;                 /* "pub" or "sub": every message starts "veil <cmd>: " */
	const char *host;
	int port;
	const char *topics[CLI_MAX_TOPICS];
	int n_topics;
	int qos;
	const char *client_id;
	int mqtt_version;
	const char *cafile, *cert, *key;
	bool insecure;                   /* --insecure: no host name check */
	bool url_tls;                    /* -L mqtts:// */
	const char *username, *password;
	bool debug, quiet;
	bool persistent;                 /* -c */
	long long session_expiry;        /* -x; -1: never; -2: not given */
	int keepalive;                   /* -k; 0: libveil's default (60) */
	const char *will_topic, *will_payload;
	int will_qos;
	bool will_retain;
	struct veil_client_options o;
	struct veil_client_config *cfg;
	char uri[512];
	char id_buf[VEIL_CLIENT_ID_MAX + 1];
	char *url;                       /* -L, split in place (owned) */

	struct veil_async *a;
	void *user;                      /* the command's state, for its message callbacks */
	unsigned said;                   /* errors and warnings libveil has logged */
	pthread_mutex_t lock;            /* everything below; cond on CLOCK_MONOTONIC */
	pthread_cond_t cond;
	bool lost;                       /* connection lost after connecting */
	char lost_cause[256];
	unsigned events;                 /* bumped by cli_mqtt_wake: something to look at */
};

/* A request whose completion the caller waits for (connect, subscribe,
 * disconnect): cli_done_cb is its veil_done_cb, the struct its ctx. */
struct cli_done {
	struct cli_mqtt *m;
	bool done;
	int rc;                          /* veil_err */
	int reason;                      /* MQTT reason code when the broker answered */
};

enum {
	CLI_OPT_CAFILE = 256, CLI_OPT_CERT, CLI_OPT_KEY, CLI_OPT_INSECURE, CLI_OPT_IDENTITY, CLI_OPT_CREDENTIAL,
	CLI_OPT_KEYRING, CLI_OPT_STATE_DIR, CLI_OPT_CONFIG, CLI_OPT_AUTH, CLI_OPT_SIGN, CLI_OPT_QUIET,
	CLI_OPT_WILL_TOPIC, CLI_OPT_WILL_PAYLOAD, CLI_OPT_WILL_QOS, CLI_OPT_WILL_RETAIN, CLI_OPT_HELP, CLI_OPT_AUDIENCE,
	CLI_OPT_AUTHORITIES, CLI_OPT_KEY_SERVICE,
	CLI_OPT_FIRST_CMD /* first free number for a command's own long options */
};

#define CLI_MQTT_SHORT "h:p:t:q:i:V:u:P:dk:cx:L:"
#define CLI_MQTT_LONG                                                                                        \
	{ "host", required_argument, NULL, 'h' }, { "port", required_argument, NULL, 'p' },                     \
	{ "topic", required_argument, NULL, 't' }, { "qos", required_argument, NULL, 'q' },                     \
	{ "id", required_argument, NULL, 'i' }, { "protocol-version", required_argument, NULL, 'V' },           \
	{ "username", required_argument, NULL, 'u' }, { "pw", required_argument, NULL, 'P' },                   \
	{ "debug", no_argument, NULL, 'd' }, { "keepalive", required_argument, NULL, 'k' },                     \
	{ "disable-clean-session", no_argument, NULL, 'c' }, { "url", required_argument, NULL, 'L' },           \
	{ "session-expiry-interval", required_argument, NULL, 'x' },                                            \
	{ "cafile", required_argument, NULL, CLI_OPT_CAFILE }, { "cert", required_argument, NULL, CLI_OPT_CERT }, \
	{ "key", required_argument, NULL, CLI_OPT_KEY }, { "insecure", no_argument, NULL, CLI_OPT_INSECURE },   \
	{ "identity", required_argument, NULL, CLI_OPT_IDENTITY },                                              \
	{ "credential", required_argument, NULL, CLI_OPT_CREDENTIAL },                                          \
	{ "keyring", required_argument, NULL, CLI_OPT_KEYRING },                                                \
	{ "authorities", required_argument, NULL, CLI_OPT_AUTHORITIES },                                        \
	{ "key-service", required_argument, NULL, CLI_OPT_KEY_SERVICE },                                        \
	{ "state-dir", required_argument, NULL, CLI_OPT_STATE_DIR },                                            \
	{ "config", required_argument, NULL, CLI_OPT_CONFIG }, { "auth", required_argument, NULL, CLI_OPT_AUTH }, \
	{ "sign", no_argument, NULL, CLI_OPT_SIGN }, { "quiet", no_argument, NULL, CLI_OPT_QUIET },             \
	{ "will-topic", required_argument, NULL, CLI_OPT_WILL_TOPIC },                                          \
	{ "will-payload", required_argument, NULL, CLI_OPT_WILL_PAYLOAD },                                      \
	{ "will-qos", required_argument, NULL, CLI_OPT_WILL_QOS },                                              \
	{ "will-retain", no_argument, NULL, CLI_OPT_WILL_RETAIN }, { "help", no_argument, NULL, CLI_OPT_HELP },   \
	{ "audience", required_argument, NULL, CLI_OPT_AUDIENCE }

/* The shared part of both commands' --help. */
void cli_mqtt_help(FILE *f, bool sub);

void cli_mqtt_init(struct cli_mqtt *m, const char *cmd);
/* One option: 1 handled, 0 not a shared option, -1 usage error (said),
 * -2 runtime failure (said: a config file that does not load). */
int cli_mqtt_opt(struct cli_mqtt *m, int ch, const char *arg);
/* getopt_long over argv (optind = 1 before the first call): the shared
 * options are taken here; the command gets its own ones (CLI_NEXT_OWN, *ch
 * and optarg set) and, at the end, anything else. */
enum cli_next { CLI_NEXT_END, CLI_NEXT_OWN, CLI_NEXT_HELP, CLI_NEXT_FAIL, CLI_NEXT_BAD };
enum cli_next cli_mqtt_next(struct cli_mqtt *m, int argc, char **argv, const char *shortopts,
                            const struct option *longopts, int *ch);
/* What HELP, FAIL (said) and BAD end in: usage on stdout or stderr, and
 * the exit status. */
int cli_mqtt_stop(enum cli_next why, void (*usage)(FILE *));
/* After parsing: checks what the options need and builds the libveil
 * options. Returns an exit status (VEIL_EXIT_OK to go on). */
int cli_mqtt_finish(struct cli_mqtt *m);
/* Creates the client, connects, and waits for the CONNACK (with the key
 * service, until the client is ready to publish: libveil's connect waits for
 * its keys, bounded by the connect timeout, and says so when none came);
 * every failure is said. The callbacks (NULL for pub) get m as their
 * context (m->user is the command's state). */
int cli_mqtt_connect(struct cli_mqtt *m, veil_message_cb on_msg, veil_refusal_cb on_ref);
/* Sends DISCONNECT and waits for it (bounded), frees the client and config. */
void cli_mqtt_close(struct cli_mqtt *m);

/* A decimal in lo..hi (the whole string); -1 otherwise. */
int cli_parse_int(const char *s, int lo, int hi, int *out);

/* Say something on stderr as "veil <cmd>: ..." unless --quiet. */
void cli_say(const struct cli_mqtt *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* "0x87 Not authorized" (MQTT 5) or the MQTT 3.1.1 CONNACK meaning. */
const char *cli_reason(const struct cli_mqtt *m, int reason, bool connack, char *buf, size_t cap);

/* Requests waited for. */
void cli_done_init(struct cli_done *d, struct cli_mqtt *m);
void cli_done_cb(void *ctx, int rc, int reason);
/* Waits until d completes, the connection is lost, or base_ms passes
 * (monotonic); false on the last two. */
bool cli_done_wait(struct cli_done *d, int base_ms);

/* Wake whoever waits on m->cond (a message arrived, a signal came). */
void cli_mqtt_wake(struct cli_mqtt *m);
/* Monotonic milliseconds, and an absolute CLOCK_MONOTONIC time ms from now. */
uint64_t cli_now_ms(void);
struct timespec cli_mono_at(uint64_t at_ms);

#endif
