/*
 * The connection half of `veil pub` and `veil sub` (cli_mqtt.h): options as
 * mosquitto_pub/_sub spell them, one libveil asynchronous client, and a
 * sentence for every way a connection fails.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "cli_mqtt.h"

/* ---- saying things ---- */

void cli_say(const struct cli_mqtt *m, const char *fmt, ...)
{
	if (m->quiet)
		return;
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	fprintf(stderr, "veil %s: %s\n", m->cmd, buf);
}

/* libveil's log: errors and warnings are the causes the user must see (they
 * name the file, the line, the policy); the rest only with -d. */
static void on_log(void *ctx, int level, const char *msg)
{
	struct cli_mqtt *m = ctx;
	if (level <= VEIL_LOG_WARNING) {
		__atomic_add_fetch(&m->said, 1U, __ATOMIC_RELAXED);
		cli_say(m, "%s", msg);
	}
	else if (m->debug && !m->quiet)
		fprintf(stderr, "veil %s: debug: %s\n", m->cmd, msg);
}

const char *cli_reason(const struct cli_mqtt *m, int reason, bool connack, char *buf, size_t cap)
{
	/* MQTT 3.1.1 CONNACK return codes (MQTT 5 numbers these differently). */
	static const char *const v3[] = { "accepted", "unacceptable protocol version", "identifier rejected",
		                          "server unavailable", "bad user name or password", "not authorized" };
	if (m->mqtt_version == VEIL_MQTT_311 && connack && reason > 0 && reason <= 5)
		snprintf(buf, cap, "MQTT 3.1.1 CONNACK %d, %s", reason, v3[reason]);
	else if (m->mqtt_version == VEIL_MQTT_311)
		snprintf(buf, cap, "MQTT 3.1.1 return code 0x%02x", (unsigned)reason);
	else
		snprintf(buf, cap, "reason code 0x%02x, %s", (unsigned)reason, veil_mqtt_reason_text(reason));
	return buf;
}

/* ---- time ---- */

uint64_t cli_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000U + (uint64_t)ts.tv_nsec / 1000000U;
}

struct timespec cli_mono_at(uint64_t at_ms)
{
	struct timespec t = { .tv_sec = (time_t)(at_ms / 1000U), .tv_nsec = (long)(at_ms % 1000U) * 1000000L };
	return t;
}

/* ---- options ---- */

void cli_mqtt_help(FILE *f, bool sub)
{
	fprintf(f,
	        "connection (as mosquitto_%s):\n"
	        " -h HOST          broker host (default localhost)\n"
	        " -p PORT          broker port (default 1883, 8883 with TLS)\n"
	        " -L URL           mqtt(s)://[user[:password]@]host[:port]/topic\n"
	        " -i ID            client id (default: the credential's client id)\n"
	        " -V 5|311         MQTT version (default 5)\n"
	        " -k SECONDS       keepalive (default 60)\n"
	        " -c               persistent session (clean session off); needs -i\n"
	        " -x SECONDS       session expiry (MQTT 5; -1 never, needs -i): default -1 with -c, else 0\n"
	        " -u USER -P PASS  legacy password login (implies --auth password)\n"
	        " --cafile FILE    CA certificates: connect with TLS\n"
	        " --cert FILE --key FILE   client certificate and its key (TLS)\n"
	        " --insecure       do not check the broker certificate's host name\n"
	        " --will-topic T --will-payload P --will-qos Q --will-retain   a Will, sealed like\n"
	        "                  any message (see below)\n"
	        " --quiet          print no runtime errors (usage errors still)\n"
	        " -d               also print libveil's informational log\n"
	        "Veil:\n"
	        " --identity FILE  device identity (veil keygen identity)\n"
	        " --credential FILE  authority-signed credential (veil credential issue)\n"
	        " --keyring FILE   topic keys and policy (mode 0600); not needed with the key\n"
	        "                  service, whose keys are mixed with the keyring's\n"
	        " --authorities FILE  public keys of trusted authorities: what the key service's\n"
	        "                  bundles and signed messages must chain to\n"
	        " --key-service auto|on|off  keys from veil-keyd (docs/KEYS.md); auto (default):\n"
	        "                  on when there is no keyring\n"
	        " --state-dir DIR  sequence and replay state kept across runs\n"
	        " --config FILE    client config file (identity, credential, keyring, state_dir,\n"
	        "                  client_id, audience, auth, sign); later options override it\n"
	        " --audience NAME  the deployment's name (the broker's plugin_opt_audience):\n"
	        "                  login tokens bound to it; without: tokens of version 1\n"
	        " --auth token|password|none   how to log in (default token)\n"
	        " --sign           sign every message, not only where the policy requires it\n"
	        " --help           this text\n"
	        "With the key service the command is connected once its keys are here (at most\n"
	        "the connect timeout; then it says that none came and sealing is refused, no-key).\n"
	        "Wills are sealed at every connect for that connection; under a key service scope\n"
	        "that needs keys kept in --state-dir from an earlier run (run once without).\n",
	        sub ? "sub" : "pub");
}

void cli_mqtt_init(struct cli_mqtt *m, const char *cmd)
{
	memset(m, 0, sizeof(*m));
	m->cmd = cmd;
	m->host = "localhost";
	m->mqtt_version = VEIL_MQTT_5;
	m->session_expiry = -2;
	m->o.version = VEIL_CLIENT_OPTIONS_VERSION;
	m->o.auth = VEIL_AUTH_TOKEN;
	pthread_mutex_init(&m->lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&m->cond, &ca);
	pthread_condattr_destroy(&ca);
}

static int parse_long(const char *s, long long lo, long long hi, long long *out)
{
	char *end = NULL;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || !end || *end || end == s || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

int cli_parse_int(const char *s, int lo, int hi, int *out)
{
	long long v = 0;
	if (parse_long(s, lo, hi, &v) != 0)
		return -1;
	*out = (int)v;
	return 0;
}

__attribute__((format(printf, 2, 3))) static int bad(const struct cli_mqtt *m, const char *fmt, ...)
{
	fprintf(stderr, "veil %s: ", m->cmd);
	va_list ap;
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return -1;
}

/* mqtt(s)://[user[:password]@]host[:port]/topic, split in a copy. */
static int parse_url(struct cli_mqtt *m, const char *arg)
{
	free(m->url);
	if (!(m->url = strdup(arg)))
		return -2;
	char *p = m->url;
	if (!strncmp(p, "mqtt://", 7)) {
		p += 7;
	} else if (!strncmp(p, "mqtts://", 8)) {
		p += 8;
		m->url_tls = true;
	} else {
		return bad(m, "-L %s: the URL must start with mqtt:// or mqtts://", arg);
	}
	char *slash = strchr(p, '/');
	if (!slash || !slash[1])
		return bad(m, "-L %s: the URL needs a topic: mqtt(s)://host[:port]/topic", arg);
	*slash = '\0';
	char *at = strrchr(p, '@');
	if (at) {
		*at = '\0';
		char *colon = strchr(p, ':');
		if (colon) {
			*colon = '\0';
			m->password = colon + 1;
		}
		m->username = p;
		m->o.auth = VEIL_AUTH_PASSWORD;
		p = at + 1;
	}
	char *colon = strrchr(p, ':');
	if (colon) {
		*colon = '\0';
		if (cli_parse_int(colon + 1, 1, 65535, &m->port) != 0)
			return bad(m, "-L: bad port in %s", arg);
	}
	if (!*p)
		return bad(m, "-L %s: no host", arg);
	m->host = p;
	if (m->n_topics >= CLI_MAX_TOPICS)
		return bad(m, "-L %s: too many topics", arg);
	m->topics[m->n_topics++] = slash + 1;
	return 1;
}

/* The words of an option whose values are an enum's, in its order. */
static const char *const AUTH[] = { "token", "password", "none", NULL };         /* VEIL_AUTH_* */
static const char *const KEY_SERVICE[] = { "auto", "on", "off", NULL };         /* VEIL_KEYS_* */
_Static_assert(VEIL_AUTH_TOKEN == 0 && VEIL_AUTH_PASSWORD == 1 && VEIL_AUTH_NONE == 2, "AUTH follows the enum");
_Static_assert(VEIL_KEYS_AUTO == 0 && VEIL_KEYS_ON == 1 && VEIL_KEYS_OFF == 2, "KEY_SERVICE follows the enum");

/* arg's index in words, or -1. */
static long long word(const char *arg, const char *const *words)
{
	for (long long i = 0; words[i]; i++)
		if (!strcmp(arg, words[i]))
			return i;
	return -1;
}

int cli_mqtt_opt(struct cli_mqtt *m, int ch, const char *arg)
{
	char err[512] = "";
	long long v = 0;
	switch (ch) {
	case 'h': m->host = arg; return 1;
	case 'p': return cli_parse_int(arg, 1, 65535, &m->port) ? bad(m, "-p %s: not a port", arg) : 1;
	case 't':
		if (m->n_topics >= CLI_MAX_TOPICS)
			return bad(m, "-t %s: too many topics", arg);
		m->topics[m->n_topics++] = arg;
		return 1;
	case 'q': return cli_parse_int(arg, 0, 2, &m->qos) ? bad(m, "-q %s: QoS is 0, 1 or 2", arg) : 1;
	case 'i': m->client_id = arg; return 1;
	case 'V':
		if (!strcmp(arg, "5") || !strcmp(arg, "mqttv5"))
			m->mqtt_version = VEIL_MQTT_5;
		else if (!strcmp(arg, "311") || !strcmp(arg, "mqttv311"))
			m->mqtt_version = VEIL_MQTT_311;
		else
			return bad(m, "-V %s: 5 or 311 (MQTT 3.1 is not supported)", arg);
		return 1;
	case 'u': m->username = arg; m->o.auth = VEIL_AUTH_PASSWORD; return 1;
	case 'P': m->password = arg; return 1;
	case 'd': m->debug = true; return 1;
	case 'k': return cli_parse_int(arg, 5, 65535, &m->keepalive) ? bad(m, "-k %s: 5 to 65535 seconds", arg) : 1;
	case 'c': m->persistent = true; return 1;
	case 'x':
		if (!strcmp(arg, "-1") || !strcmp(arg, "\xe2\x88\x9e") /* ∞ */)
			v = -1;
		else if (parse_long(arg, 0, 4294967295LL, &v) != 0)
			return bad(m, "-x %s: 0 to 4294967295 seconds, or -1 (never expires)", arg);
		m->session_expiry = v == 4294967295LL ? -1 : v;
		return 1;
	case 'L': return parse_url(m, arg);
	case CLI_OPT_QUIET: m->quiet = true; return 1;
	case CLI_OPT_CAFILE: m->cafile = arg; return 1;
	case CLI_OPT_CERT: m->cert = arg; return 1;
	case CLI_OPT_KEY: m->key = arg; return 1;
	case CLI_OPT_INSECURE: m->insecure = true; return 1;
	case CLI_OPT_IDENTITY: m->o.identity_path = arg; return 1;
	case CLI_OPT_CREDENTIAL: m->o.credential_path = arg; return 1;
	case CLI_OPT_KEYRING: m->o.keyring_path = arg; return 1;
	case CLI_OPT_STATE_DIR: m->o.state_dir = arg; return 1;
	case CLI_OPT_SIGN: m->o.sign_all = true; return 1;
	case CLI_OPT_AUDIENCE:
		if (!veil_audience_valid(arg))
			return bad(m, "--audience %s: not a deployment name (a client id's rule: no '/', '+', '#')", arg);
		m->o.audience = arg;
		return 1;
	case CLI_OPT_AUTHORITIES: m->o.authority_path = arg; return 1;
	case CLI_OPT_KEY_SERVICE: /* enum veil_key_service */
		if ((v = word(arg, KEY_SERVICE)) < 0)
			return bad(m, "--key-service %s: auto, on or off", arg);
		m->o.key_service = (int)v;
		return 1;
	case CLI_OPT_WILL_TOPIC: m->will_topic = arg; return 1;
	case CLI_OPT_WILL_PAYLOAD: m->will_payload = arg; return 1;
	case CLI_OPT_WILL_QOS:
		return cli_parse_int(arg, 0, 2, &m->will_qos) ? bad(m, "--will-qos %s: 0, 1 or 2", arg) : 1;
	case CLI_OPT_WILL_RETAIN: m->will_retain = true; return 1;
	case CLI_OPT_AUTH: /* enum veil_auth_mode */
		if ((v = word(arg, AUTH)) < 0)
			return bad(m, "--auth %s: token, password or none", arg);
		m->o.auth = (int)v;
		return 1;
	case CLI_OPT_CONFIG:
		/* Applied where it stands: later options override the file. */
		veil_client_config_free(&m->cfg);
		if (veil_client_config_load(arg, &m->o, &m->cfg, err, sizeof(err)) != VEIL_OK) {
			fprintf(stderr, "veil %s: %s\n", m->cmd, err[0] ? err : arg);
			return -2;
		}
		return 1;
	default: return 0;
	}
}

enum cli_next cli_mqtt_next(struct cli_mqtt *m, int argc, char **argv, const char *shortopts,
                            const struct option *longopts, int *ch)
{
	for (;;) {
		*ch = getopt_long(argc, argv, shortopts, longopts, NULL);
		if (*ch == -1)
			return CLI_NEXT_END;
		if (*ch == CLI_OPT_HELP)
			return CLI_NEXT_HELP;
		int r = cli_mqtt_opt(m, *ch, optarg);
		if (r == 0)
			return CLI_NEXT_OWN;
		if (r < 0)
			return r == -2 ? CLI_NEXT_FAIL : CLI_NEXT_BAD;
	}
}

int cli_mqtt_stop(enum cli_next why, void (*usage)(FILE *))
{
	if (why == CLI_NEXT_FAIL)
		return VEIL_EXIT_FAIL;
	usage(why == CLI_NEXT_HELP ? stdout : stderr);
	return why == CLI_NEXT_HELP ? VEIL_EXIT_OK : VEIL_EXIT_USAGE;
}

/* The credential names the client id a token login must use. */
static int client_id_from_credential(struct cli_mqtt *m)
{
	uint8_t cred[VEIL_CREDENTIAL_MAX];
	size_t n = 0;
	struct veil_credential parsed;
	char err[512] = "";
	if (!m->o.credential_path)
		return -1;
	int rc = veil_credential_load(m->o.credential_path, cred, sizeof(cred), &n, err, sizeof(err));
	if (rc == VEIL_OK && (rc = veil_credential_parse(cred, n, &parsed)) != VEIL_OK)
		snprintf(err, sizeof(err), "%s: %s", m->o.credential_path, veil_strerror(rc));
	if (rc != VEIL_OK) {
		fprintf(stderr, "veil %s: credential %s\n", m->cmd, err[0] ? err : m->o.credential_path);
		return -2;
	}
	snprintf(m->id_buf, sizeof(m->id_buf), "%s", parsed.client_id);
	m->o.client_id = m->id_buf;
	return 0;
}

int cli_mqtt_finish(struct cli_mqtt *m)
{
	if (!m->o.keyring_path && m->o.key_service == VEIL_KEYS_OFF) {
		fprintf(stderr, "veil %s: --keyring (or --config with a keyring) is required with --key-service off\n",
		        m->cmd);
		return VEIL_EXIT_USAGE;
	}
	if (m->will_payload && !m->will_topic) {
		fprintf(stderr, "veil %s: --will-payload needs --will-topic\n", m->cmd);
		return VEIL_EXIT_USAGE;
	}
	if (m->will_topic) {
		/* Sealed by libveil at every connect, like any publish. */
		m->o.will_topic = m->will_topic;
		m->o.will_payload = m->will_payload ? m->will_payload : "";
		m->o.will_len = m->will_payload ? strlen(m->will_payload) : 0;
		m->o.will_qos = m->will_qos;
		m->o.will_retained = m->will_retain;
	}
	if (m->persistent && !m->client_id) {
		fprintf(stderr, "veil %s: -c needs -i: a persistent session is found again by its client id\n", m->cmd);
		return VEIL_EXIT_USAGE;
	}
	if (m->session_expiry == -1 && !m->client_id) {
		fprintf(stderr, "veil %s: -x -1 (a session that never expires) needs -i: it is found again by its "
		                "client id\n", m->cmd);
		return VEIL_EXIT_USAGE;
	}
	if (m->persistent && m->session_expiry == 0) {
		fprintf(stderr, "veil %s: -c -x 0 is a session that ends at disconnect: leave out -c\n", m->cmd);
		return VEIL_EXIT_USAGE;
	}
	if (m->client_id)
		m->o.client_id = m->client_id;
	if (!m->o.client_id) {
		int r = client_id_from_credential(m);
		if (r == -2)
			return VEIL_EXIT_FAIL;
		if (r != 0) {
			fprintf(stderr, "veil %s: -i is required (no --credential to take the client id from)\n", m->cmd);
			return VEIL_EXIT_USAGE;
		}
	}
	if (m->o.auth == VEIL_AUTH_TOKEN && (!m->o.identity_path || !m->o.credential_path)) {
		fprintf(stderr, "veil %s: token login needs --identity and --credential (or --auth none)\n", m->cmd);
		return VEIL_EXIT_USAGE;
	}
	if (m->o.auth == VEIL_AUTH_PASSWORD && !m->username) {
		fprintf(stderr, "veil %s: --auth password needs -u\n", m->cmd);
		return VEIL_EXIT_USAGE;
	}
	m->o.username = m->username;
	m->o.password = m->password;
	m->o.mqtt_version = m->mqtt_version;
	m->o.keepalive_s = m->keepalive;
	m->o.persistent_session = m->persistent;
	/* As mosquitto_pub/sub: -x without -c is a clean start whose session
	 * then lasts that long; with -c the session never expires unless -x
	 * says otherwise. */
	if (m->session_expiry > 0)
		m->o.session_expiry_s = (uint32_t)m->session_expiry;
	else if (m->session_expiry == -1 || (m->persistent && m->session_expiry == -2))
		m->o.session_expiry_s = UINT32_MAX;
	bool tls = m->cafile || m->cert || m->url_tls;
	int port = m->port ? m->port : (tls ? 8883 : 1883);
	snprintf(m->uri, sizeof(m->uri), "%s://%s:%d", tls ? "ssl" : "tcp", m->host, port);
	m->o.server_uri = m->uri;
	m->o.tls.ca_file = m->cafile;
	m->o.tls.cert_file = m->cert;
	m->o.tls.key_file = m->key;
	m->o.tls.no_hostname_check = m->insecure;
	m->o.log = on_log;
	m->o.log_ctx = m;
	return VEIL_EXIT_OK;
}

/* ---- requests ---- */

void cli_mqtt_wake(struct cli_mqtt *m)
{
	pthread_mutex_lock(&m->lock);
	m->events++;
	pthread_cond_broadcast(&m->cond);
	pthread_mutex_unlock(&m->lock);
}

void cli_done_init(struct cli_done *d, struct cli_mqtt *m)
{
	memset(d, 0, sizeof(*d));
	d->m = m;
}

void cli_done_cb(void *ctx, int rc, int reason)
{
	struct cli_done *d = ctx;
	pthread_mutex_lock(&d->m->lock);
	d->done = true;
	d->rc = rc;
	d->reason = reason;
	pthread_cond_broadcast(&d->m->cond);
	pthread_mutex_unlock(&d->m->lock);
}

bool cli_done_wait(struct cli_done *d, int base_ms)
{
	struct cli_mqtt *m = d->m;
	struct timespec until = cli_mono_at(cli_now_ms() + (uint64_t)base_ms);
	pthread_mutex_lock(&m->lock);
	while (!d->done && !m->lost && pthread_cond_timedwait(&m->cond, &m->lock, &until) != ETIMEDOUT)
		;
	bool done = d->done;
	pthread_mutex_unlock(&m->lock);
	return done;
}

static void on_lost(void *ctx, const char *cause)
{
	struct cli_mqtt *m = ctx;
	pthread_mutex_lock(&m->lock);
	m->lost = true;
	snprintf(m->lost_cause, sizeof(m->lost_cause), "%s", cause && *cause ? cause : "the broker closed it");
	m->events++;
	pthread_cond_broadcast(&m->cond);
	pthread_mutex_unlock(&m->lock);
}

/* A refused token login: the broker says only "not authorized", so give
 * what this side knows; a clock off by more than the broker's token window
 * is the cause no log on this machine shows. */
static void explain_token_refusal(const struct cli_mqtt *m)
{
	uint8_t cred[VEIL_CREDENTIAL_MAX];
	size_t n = 0;
	struct veil_credential c;
	char now_s[32], from[32], until[32];
	uint64_t now = (uint64_t)time(NULL);
	cli_utc(now, now_s, sizeof(now_s));
	if (veil_credential_load(m->o.credential_path, cred, sizeof(cred), &n, NULL, 0) == VEIL_OK &&
	    veil_credential_parse(cred, n, &c) == VEIL_OK) {
		cli_utc(c.issued_at, from, sizeof(from));
		cli_utc(c.expires_at, until, sizeof(until));
		cli_say(m, "this machine's clock says %s; credential %s (client id '%s') is valid from %s to %s", now_s,
		        m->o.credential_path, c.client_id, from, until);
	} else {
		cli_say(m, "this machine's clock says %s", now_s);
	}
	cli_say(m, "the broker refuses a login token dated more than its token window (plugin_opt_token_window, "
	           "default 60 s) away from its own clock: check the clock here and on the broker. Other causes: "
	           "an authority the broker does not trust, a revoked credential or client id (the broker's log "
	           "names the reason)");
}

int cli_mqtt_connect(struct cli_mqtt *m, veil_message_cb on_msg, veil_refusal_cb on_ref)
{
	int rc = veil_async_new(&m->o, &m->a);
	if (rc != VEIL_OK) {
		/* libveil has said why (the file, the line) through the log, unless
		 * it refused the options themselves. */
		if (!__atomic_load_n(&m->said, __ATOMIC_RELAXED))
			cli_say(m, "cannot set up the client: %s (%s)", veil_strerror(rc), veil_errname(rc));
		return VEIL_EXIT_FAIL;
	}
	veil_async_set_callbacks(m->a, m, on_msg, on_ref, on_lost);
	struct cli_done d;
	cli_done_init(&d, m);
	rc = veil_async_connect(m->a, cli_done_cb, &d);
	/* The CONNACK, then (key service) the keys, each within the timeout. */
	int limit_ms = (2 * (m->o.connect_timeout_s ? m->o.connect_timeout_s : 10) + 5) * 1000;
	if (rc == VEIL_OK && !cli_done_wait(&d, limit_ms))
		rc = VEIL_ERR_TIMEOUT;
	else if (rc == VEIL_OK)
		rc = d.rc;
	if (rc == VEIL_OK)
		return VEIL_EXIT_OK;
	if (d.reason <= 0 && rc == VEIL_ERR_AUTH) {
		/* Paho reports some refused CONNACKs without the reason code in the
		 * completion; libveil keeps the last code it translated. */
		struct veil_client_stats st = VEIL_STATS_INIT;
		veil_async_stats(m->a, &st);
		d.reason = st.last_mqtt_rc > 0 ? st.last_mqtt_rc : 0;
	}
	char why[160];
	if (d.reason > 0) {
		cli_say(m, "the broker at %s refused the connection as '%s': %s", m->uri, m->o.client_id,
		        cli_reason(m, d.reason, true, why, sizeof(why)));
		if (m->o.auth == VEIL_AUTH_TOKEN)
			explain_token_refusal(m);
	} else if (rc == VEIL_ERR_TIMEOUT) {
		cli_say(m, "no answer from %s within %d s", m->uri, limit_ms / 1000);
	} else {
		cli_say(m, "cannot connect to %s: no MQTT broker answered (is one listening there?%s)", m->uri,
		        m->o.tls.ca_file || m->url_tls ? " does its certificate chain to --cafile?" : "");
	}
	veil_async_free(&m->a);
	return VEIL_EXIT_FAIL;
}

void cli_mqtt_close(struct cli_mqtt *m)
{
	/* veil_async_free disconnects (bounded) and saves the replay state. */
	veil_async_free(&m->a);
	veil_client_config_free(&m->cfg);
	free(m->url);
	m->url = NULL;
	pthread_cond_destroy(&m->cond);
	pthread_mutex_destroy(&m->lock);
}
