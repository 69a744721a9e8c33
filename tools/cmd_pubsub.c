/*
 * `veil pub` and `veil sub`: mosquitto_pub / mosquitto_sub through libveil.
 * Same short options where they mean the same thing; the Veil files (or a
 * client config file) add the identity, credential, keyring and state dir.
 * sub prints verified plaintext, one message per line (with -v: "topic
 * payload"), and every refused message to stderr with its reason.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "veil/veil.h"
#include "veil/client.h"
#include "cli.h"

#define MAX_TOPICS 32

struct common {
	const char *host;
	int port;
	const char *topics[MAX_TOPICS];
	int n_topics;
	int qos;
	const char *client_id;
	int mqtt_version;
	const char *cafile, *cert, *key;
	const char *username, *password;
	bool debug;
	struct veil_client_options o;
	struct veil_client_config *cfg;
	char uri[300];
	char id_buf[VEIL_CLIENT_ID_MAX + 1];
};

enum { OPT_CAFILE = 256, OPT_CERT, OPT_KEY, OPT_IDENTITY, OPT_CREDENTIAL, OPT_KEYRING, OPT_STATE_DIR, OPT_CONFIG,
       OPT_AUTH, OPT_SIGN, OPT_HELP };

static const char COMMON_HELP[] =
	" -h HOST          broker host (default localhost)\n"
	" -p PORT          broker port (default 1883, 8883 with --cafile)\n"
	" -t TOPIC         topic%s\n"
	" -q QOS           quality of service 0, 1 or 2 (default 0)\n"
	" -i ID            client id (default: the credential's client id)\n"
	" -V 5|311         MQTT version (default 5)\n"
	" -u USER -P PASS  legacy password login (implies --auth password)\n"
	" --cafile FILE    CA certificates: connect with TLS\n"
	" --cert FILE      client certificate (TLS)   --key FILE  its private key\n"
	" --identity FILE  device identity (veil keygen)\n"
	" --credential FILE  authority-signed credential (veil credential)\n"
	" --keyring FILE   topic keys and policy (mode 0600)\n"
	" --state-dir DIR  sequence and replay state (kept across runs)\n"
	" --config FILE    client config file (identity, credential, keyring, state_dir, client_id, auth, sign)\n"
	" --auth token|password|none   how to log in (default token)\n"
	" --sign           sign every message, not only where the policy requires it\n"
	" -d               log libveil events to stderr\n"
	" --help           this text\n";

static void log_stderr(void *ctx, int level, const char *msg)
{
	static const char *names[] = { "error", "warning", "info", "debug" };
	fprintf(stderr, "veil %s: %s: %s\n", (const char *)ctx, level >= 0 && level <= 3 ? names[level] : "?", msg);
}

static int parse_int(const char *s, int lo, int hi, int *out)
{
	char *end = NULL;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || !end || *end || end == s || v < lo || v > hi)
		return -1;
	*out = (int)v;
	return 0;
}

/* One option shared by pub and sub; returns 1 handled, 0 not ours, -1 bad. */
static int common_opt(struct common *c, int ch, const char *arg, const char *cmd)
{
	char err[512] = "";
	switch (ch) {
	case 'h': c->host = arg; return 1;
	case 'p': return parse_int(arg, 1, 65535, &c->port) ? -1 : 1;
	case 't':
		if (c->n_topics >= MAX_TOPICS)
			return -1;
		c->topics[c->n_topics++] = arg;
		return 1;
	case 'q': return parse_int(arg, 0, 2, &c->qos) ? -1 : 1;
	case 'i': c->client_id = arg; return 1;
	case 'V':
		if (!strcmp(arg, "5") || !strcmp(arg, "mqttv5"))
			c->mqtt_version = VEIL_MQTT_5;
		else if (!strcmp(arg, "311") || !strcmp(arg, "mqttv311"))
			c->mqtt_version = VEIL_MQTT_311;
		else
			return -1;
		return 1;
	case 'u': c->username = arg; c->o.auth = VEIL_AUTH_PASSWORD; return 1;
	case 'P': c->password = arg; return 1;
	case 'd': c->debug = true; return 1;
	case OPT_CAFILE: c->cafile = arg; return 1;
	case OPT_CERT: c->cert = arg; return 1;
	case OPT_KEY: c->key = arg; return 1;
	case OPT_IDENTITY: c->o.identity_path = arg; return 1;
	case OPT_CREDENTIAL: c->o.credential_path = arg; return 1;
	case OPT_KEYRING: c->o.keyring_path = arg; return 1;
	case OPT_STATE_DIR: c->o.state_dir = arg; return 1;
	case OPT_SIGN: c->o.sign_all = true; return 1;
	case OPT_AUTH:
		if (!strcmp(arg, "token"))
			c->o.auth = VEIL_AUTH_TOKEN;
		else if (!strcmp(arg, "password"))
			c->o.auth = VEIL_AUTH_PASSWORD;
		else if (!strcmp(arg, "none"))
			c->o.auth = VEIL_AUTH_NONE;
		else
			return -1;
		return 1;
	case OPT_CONFIG:
		/* Applied where it stands: later options override the file. */
		veil_client_config_free(&c->cfg);
		if (veil_client_config_load(arg, &c->o, &c->cfg, err, sizeof(err)) != VEIL_OK) {
			fprintf(stderr, "veil %s: %s\n", cmd, err);
			return -2;
		}
		return 1;
	default: return 0;
	}
}

/* The credential names the client id the token must carry. */
static int client_id_from_credential(struct common *c)
{
	uint8_t cred[VEIL_CREDENTIAL_MAX];
	size_t n = 0;
	struct veil_credential parsed;
	if (!c->o.credential_path ||
	    veil_credential_load(c->o.credential_path, cred, sizeof(cred), &n, NULL, 0) != VEIL_OK ||
	    veil_credential_parse(cred, n, &parsed) != VEIL_OK)
		return -1;
	snprintf(c->id_buf, sizeof(c->id_buf), "%s", parsed.client_id);
	c->o.client_id = c->id_buf;
	return 0;
}

static int common_finish(struct common *c, const char *cmd)
{
	if (!c->o.keyring_path) {
		fprintf(stderr, "veil %s: --keyring (or --config) is required\n", cmd);
		return VEIL_EXIT_USAGE;
	}
	if (c->client_id)
		c->o.client_id = c->client_id;
	if (!c->o.client_id && client_id_from_credential(c) != 0) {
		fprintf(stderr, "veil %s: -i is required (no readable --credential to take the client id from)\n", cmd);
		return VEIL_EXIT_USAGE;
	}
	if (c->o.auth == VEIL_AUTH_TOKEN && (!c->o.identity_path || !c->o.credential_path)) {
		fprintf(stderr, "veil %s: token login needs --identity and --credential (or --auth none)\n", cmd);
		return VEIL_EXIT_USAGE;
	}
	if (c->o.auth == VEIL_AUTH_PASSWORD && !c->username) {
		fprintf(stderr, "veil %s: --auth password needs -u\n", cmd);
		return VEIL_EXIT_USAGE;
	}
	c->o.username = c->username;
	c->o.password = c->password;
	c->o.mqtt_version = c->mqtt_version;
	bool tls = c->cafile || c->cert;
	int port = c->port ? c->port : (tls ? 8883 : 1883);
	snprintf(c->uri, sizeof(c->uri), "%s://%s:%d", tls ? "ssl" : "tcp", c->host, port);
	c->o.server_uri = c->uri;
	if (tls) {
		c->o.tls.ca_file = c->cafile;
		c->o.tls.cert_file = c->cert;
		c->o.tls.key_file = c->key;
	}
	if (c->debug) {
		c->o.log = log_stderr;
		c->o.log_ctx = (void *)cmd;
	}
	return VEIL_EXIT_OK;
}

static void common_init(struct common *c)
{
	memset(c, 0, sizeof(*c));
	c->host = "localhost";
	c->mqtt_version = VEIL_MQTT_5;
	c->o.version = VEIL_CLIENT_OPTIONS_VERSION;
	c->o.auth = VEIL_AUTH_TOKEN;
}

#define COMMON_LONG                                                                                         \
	{ "cafile", required_argument, NULL, OPT_CAFILE }, { "cert", required_argument, NULL, OPT_CERT },        \
	{ "key", required_argument, NULL, OPT_KEY }, { "identity", required_argument, NULL, OPT_IDENTITY },      \
	{ "credential", required_argument, NULL, OPT_CREDENTIAL },                                               \
	{ "keyring", required_argument, NULL, OPT_KEYRING },                                                     \
	{ "state-dir", required_argument, NULL, OPT_STATE_DIR },                                                 \
	{ "config", required_argument, NULL, OPT_CONFIG }, { "auth", required_argument, NULL, OPT_AUTH },        \
	{ "sign", no_argument, NULL, OPT_SIGN }, { "help", no_argument, NULL, OPT_HELP }
#define COMMON_SHORT "h:p:t:q:i:V:u:P:d"

static int connect_client(struct common *c, const char *cmd, struct veil_client **out, void *ctx,
                          veil_message_cb on_msg, veil_refusal_cb on_ref)
{
	int rc = veil_client_new(&c->o, out);
	if (rc != VEIL_OK) {
		fprintf(stderr, "veil %s: cannot set up the client: %s (use -d for details)\n", cmd, veil_strerror(rc));
		return VEIL_EXIT_FAIL;
	}
	veil_client_set_callbacks(*out, ctx, on_msg, on_ref, NULL);
	rc = veil_client_connect(*out);
	if (rc != VEIL_OK) {
		fprintf(stderr, "veil %s: connect to %s failed: %s\n", cmd, c->uri, veil_strerror(rc));
		veil_client_free(out);
		return VEIL_EXIT_FAIL;
	}
	return VEIL_EXIT_OK;
}

/* ---- pub ---- */

static void pub_usage(FILE *f)
{
	fprintf(f, "usage: veil pub -t TOPIC (-m MESSAGE | -f FILE | -l | -n) [options]\n"
	           "Seal a message for TOPIC under the keyring policy and publish it.\n\n"
	           " -m MESSAGE       message text\n"
	           " -f FILE          message from a file\n"
	           " -l               one message per line of stdin\n"
	           " -n               zero-length message\n"
	           " -r               retain\n");
	fprintf(f, COMMON_HELP, "");
}

static int publish_one(struct veil_client *vc, const struct common *c, const char *topic, const void *p, size_t n,
                       bool retain)
{
	int tok = 0;
	int rc = veil_client_publish(vc, topic, p, n, c->qos, retain, &tok);
	if (rc == VEIL_OK && c->qos > 0)
		rc = veil_client_wait(vc, tok, 10000, NULL);
	if (rc != VEIL_OK)
		fprintf(stderr, "veil pub: publish to '%s' failed: %s (%s)\n", topic, veil_strerror(rc), veil_errname(rc));
	return rc;
}

int veil_cmd_pub(int argc, char **argv)
{
	static const struct option longopts[] = { COMMON_LONG, { NULL, 0, NULL, 0 } };
	struct common c;
	common_init(&c);
	const char *message = NULL, *file = NULL;
	bool lines = false, null_msg = false, retain = false;
	int ch, status = VEIL_EXIT_USAGE;
	optind = 1;
	while ((ch = getopt_long(argc, argv, COMMON_SHORT "m:f:lnr", longopts, NULL)) != -1) {
		if (ch == OPT_HELP) {
			pub_usage(stdout);
			status = VEIL_EXIT_OK;
			goto out;
		}
		int r = common_opt(&c, ch, optarg, "pub");
		if (r == -2) {
			status = VEIL_EXIT_FAIL;
			goto out;
		}
		if (r == 1)
			continue;
		if (r < 0)
			goto bad;
		switch (ch) {
		case 'm': message = optarg; break;
		case 'f': file = optarg; break;
		case 'l': lines = true; break;
		case 'n': null_msg = true; break;
		case 'r': retain = true; break;
		default: goto bad;
		}
	}
	if (optind != argc || c.n_topics != 1 || (!!message + !!file + lines + null_msg) != 1)
		goto bad;
	if ((status = common_finish(&c, "pub")) != VEIL_EXIT_OK)
		goto out;

	unsigned char *data = NULL;
	size_t len = 0;
	if (file && !(data = cli_read_file(file, &len))) {
		fprintf(stderr, "veil pub: %s: %s\n", file, strerror(errno));
		status = VEIL_EXIT_FAIL;
		goto out;
	}
	struct veil_client *vc = NULL;
	if ((status = connect_client(&c, "pub", &vc, NULL, NULL, NULL)) != VEIL_EXIT_OK) {
		free(data);
		goto out;
	}
	const char *topic = c.topics[0];
	int rc = VEIL_OK;
	if (message)
		rc = publish_one(vc, &c, topic, message, strlen(message), retain);
	else if (file)
		rc = publish_one(vc, &c, topic, data, len, retain);
	else if (null_msg)
		rc = publish_one(vc, &c, topic, "", 0, retain);
	else {
		char *line = NULL;
		size_t cap = 0;
		ssize_t n;
		while (rc == VEIL_OK && (n = getline(&line, &cap, stdin)) >= 0) {
			if (n > 0 && line[n - 1] == '\n')
				n--;
			rc = publish_one(vc, &c, topic, line, (size_t)n, retain);
		}
		if (line) {
			sodium_memzero(line, cap);
			free(line);
		}
	}
	if (data) {
		sodium_memzero(data, len);
		free(data);
	}
	veil_client_disconnect(vc, 1000);
	veil_client_free(&vc);
	status = rc == VEIL_OK ? VEIL_EXIT_OK : VEIL_EXIT_FAIL;
	goto out;
bad:
	pub_usage(stderr);
	status = VEIL_EXIT_USAGE;
out:
	veil_client_config_free(&c.cfg);
	return status;
}

/* ---- sub ---- */

struct sub_state {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool verbose;
	long count;        /* messages printed */
	long limit;        /* -C, 0: unlimited */
};

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
	(void)sig;
	stop_signal = 1;
}

static void sub_message(void *ctx, const struct veil_message *m)
{
	struct sub_state *s = ctx;
	pthread_mutex_lock(&s->lock);
	if (s->limit == 0 || s->count < s->limit) {
		if (s->verbose)
			printf("%s ", m->topic);
		fwrite(m->payload, 1, m->len, stdout);
		putchar('\n');
		fflush(stdout);
		s->count++;
	}
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

static void sub_refusal(void *ctx, const struct veil_refusal *r)
{
	(void)ctx;
	fprintf(stderr, "veil sub: refused message on '%s': %s (%s)\n", r->topic, veil_errname(r->err),
	        veil_strerror(r->err));
}

static void sub_usage(FILE *f)
{
	fprintf(f, "usage: veil sub -t FILTER [-t FILTER ...] [options]\n"
	           "Subscribe and print verified plaintext, one message per line.\n"
	           "Refused messages (tampered, replayed, moved, unknown key) go to stderr.\n\n"
	           " -C COUNT         exit after COUNT messages\n"
	           " -W SECONDS       exit after SECONDS (status 1 if -C was not reached)\n"
	           " -v               print the topic before the payload\n");
	fprintf(f, COMMON_HELP, " filter (repeatable)");
}

int veil_cmd_sub(int argc, char **argv)
{
	static const struct option longopts[] = { COMMON_LONG, { NULL, 0, NULL, 0 } };
	struct common c;
	common_init(&c);
	struct sub_state s;
	memset(&s, 0, sizeof(s));
	int timeout_s = 0, limit = 0;
	int ch, status = VEIL_EXIT_USAGE;
	optind = 1;
	while ((ch = getopt_long(argc, argv, COMMON_SHORT "C:W:v", longopts, NULL)) != -1) {
		if (ch == OPT_HELP) {
			sub_usage(stdout);
			status = VEIL_EXIT_OK;
			goto out;
		}
		int r = common_opt(&c, ch, optarg, "sub");
		if (r == -2) {
			status = VEIL_EXIT_FAIL;
			goto out;
		}
		if (r == 1)
			continue;
		if (r < 0)
			goto bad;
		switch (ch) {
		case 'C': if (parse_int(optarg, 1, 1 << 30, &limit)) goto bad; break;
		case 'W': if (parse_int(optarg, 1, 1 << 30, &timeout_s)) goto bad; break;
		case 'v': s.verbose = true; break;
		default: goto bad;
		}
	}
	if (optind != argc || c.n_topics < 1)
		goto bad;
	if ((status = common_finish(&c, "sub")) != VEIL_EXIT_OK)
		goto out;
	s.limit = limit;
	pthread_mutex_init(&s.lock, NULL);
	pthread_cond_init(&s.cond, NULL);
	struct veil_client *vc = NULL;
	if ((status = connect_client(&c, "sub", &vc, &s, sub_message, sub_refusal)) != VEIL_EXIT_OK)
		goto out_sync;
	for (int i = 0; i < c.n_topics; i++) {
		int rc = veil_client_subscribe(vc, c.topics[i], c.qos);
		if (rc != VEIL_OK) {
			fprintf(stderr, "veil sub: subscribe '%s' failed: %s\n", c.topics[i], veil_strerror(rc));
			status = VEIL_EXIT_FAIL;
			goto out_client;
		}
	}
	stop_signal = 0;
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	struct timespec start;
	clock_gettime(CLOCK_MONOTONIC, &start);
	pthread_mutex_lock(&s.lock);
	for (;;) {
		if (s.limit && s.count >= s.limit)
			break;
		if (stop_signal || !veil_client_is_connected(vc))
			break;
		struct timespec now;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (timeout_s && now.tv_sec - start.tv_sec >= timeout_s)
			break;
		/* Short waits so signals, timeouts and disconnects are noticed. */
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_nsec += 100000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&s.cond, &s.lock, &until);
	}
	bool reached = !s.limit || s.count >= s.limit;
	bool lost = !veil_client_is_connected(vc);
	pthread_mutex_unlock(&s.lock);
	if (lost && !reached)
		fprintf(stderr, "veil sub: connection lost\n");
	status = (reached || (stop_signal && !lost)) ? VEIL_EXIT_OK : VEIL_EXIT_FAIL;
	veil_client_disconnect(vc, 1000);
out_client:
	veil_client_free(&vc);
out_sync:
	pthread_cond_destroy(&s.cond);
	pthread_mutex_destroy(&s.lock);
	goto out;
bad:
	sub_usage(stderr);
	status = VEIL_EXIT_USAGE;
out:
	veil_client_config_free(&c.cfg);
	return status;
}
