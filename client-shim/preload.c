/*
 * libveil_preload.so core: makes an unmodified Paho MQTT C application end to
 * end encrypted when loaded with LD_PRELOAD and VEIL_CONFIG=<client.conf>.
 *
 * This file owns the process-wide state: the config (config.c), the device
 * identity and credential, the keyring, the sender sequence, one record per
 * Paho handle (with its replay windows), and the seal / open / login helpers.
 * The interposed Paho entry points live in preload_client.c (MQTTClient) and
 * preload_async.c (MQTTAsync).
 *
 * Setup is lazy (first Paho call) rather than in a constructor: LD_PRELOAD is
 * inherited by every child process (shells, helpers) that never touch MQTT,
 * and they must not fail or print. A setup failure is recorded, printed once,
 * and then every create/connect/publish fails: nothing is ever sent in clear.
 */
#define _GNU_SOURCE
#include "preload.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "config.h"

#define REPLAY_MAX_SENDERS 4096U
#define REPLAY_SAVE_EVERY 16U

__thread int vpl_depth;
__thread const void *vpl_inflight;

static pthread_once_t once = PTHREAD_ONCE_INIT;
/* Guards everything below after setup: Paho delivers on its own threads
 * while the app publishes from others. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static struct {
	bool ready;
	char err[768];
	struct veil_config cfg;
	struct veil_identity *id;
	uint8_t *cred;              /* sodium_malloc'd */
	size_t cred_len;
	char cred_client_id[VEIL_CLIENT_ID_MAX + 1];
	struct veil_keyring *kr;
	struct veil_seq *seq;       /* opened at the first seal */
	char *seq_path;
	struct vpl_handle *handles;
	unsigned long sealed, opened, dropped, refused;
} g;

__attribute__((format(printf, 1, 0))) static void vlog(const char *fmt, va_list ap)
{
	char line[1024];
	vsnprintf(line, sizeof(line), fmt, ap);
	fprintf(stderr, "%s: %s\n", VPL_TAG, line);
}

void vpl_loud(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vlog(fmt, ap);
	va_end(ap);
}

void vpl_log(const char *fmt, ...)
{
	if (g.cfg.log == VEIL_CONFIG_LOG_NONE)
		return;
	va_list ap;
	va_start(ap, fmt);
	vlog(fmt, ap);
	va_end(ap);
}

void *vpl_real(const char *name)
{
	void *p = dlsym(RTLD_NEXT, name);
	if (!p)
		vpl_loud("%s not found in the application's Paho library (%s)", name, dlerror());
	return p;
}

__attribute__((format(printf, 1, 2))) static void fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(g.err, sizeof(g.err), fmt, ap);
	va_end(ap);
}

static char *join(const char *dir, const char *name)
{
	size_t n = strlen(dir) + 1U + strlen(name) + 1U;
	char *p = malloc(n);
	if (p)
		snprintf(p, n, "%s/%s", dir, name);
	return p;
}

static int load_secrets(void)
{
	char err[512] = "";
	int rc;
	if (g.cfg.identity) {
		rc = veil_identity_load(g.cfg.identity, &g.id, err, sizeof(err));
		if (rc != VEIL_OK) {
			fail("identity: %s (%s)", err[0] ? err : g.cfg.identity, veil_strerror(rc));
			return rc;
		}
	}
	if (g.cfg.credential) {
		g.cred = sodium_malloc(VEIL_CREDENTIAL_MAX);
		if (!g.cred) {
			fail("out of memory for the credential");
			return VEIL_ERR_NOMEM;
		}
		rc = veil_credential_load(g.cfg.credential, g.cred, VEIL_CREDENTIAL_MAX, &g.cred_len, err, sizeof(err));
		if (rc != VEIL_OK) {
			fail("credential: %s (%s)", err[0] ? err : g.cfg.credential, veil_strerror(rc));
			return rc;
		}
		struct veil_credential c;
		rc = veil_credential_parse(g.cred, g.cred_len, &c);
		if (rc != VEIL_OK) {
			fail("credential %s: %s", g.cfg.credential, veil_strerror(rc));
			return rc;
		}
		uint8_t pk[VEIL_PK_BYTES];
		veil_identity_public(g.id, pk);
		/* A credential for another key would make every login and every
		 * signed message fail later, far from the cause. */
		if (sodium_memcmp(pk, c.device_pk, VEIL_PK_BYTES) != 0) {
			fail("credential %s was issued for another device key than identity %s", g.cfg.credential,
			     g.cfg.identity);
			return VEIL_ERR_CLIENT_ID;
		}
		memcpy(g.cred_client_id, c.client_id, sizeof(g.cred_client_id));
		if (g.cfg.client_id && strcmp(g.cfg.client_id, c.client_id) != 0) {
			fail("%s: client_id '%s' differs from the credential's client id '%s'", g.cfg.path,
			     g.cfg.client_id, c.client_id);
			return VEIL_ERR_CLIENT_ID;
		}
	}
	rc = veil_keyring_load(g.cfg.keyring, &g.kr, err, sizeof(err));
	if (rc != VEIL_OK) {
		fail("keyring: %s (%s)", err[0] ? err : g.cfg.keyring, veil_strerror(rc));
		return rc;
	}
	if (g.cred) {
		const uint8_t(*pks)[VEIL_PK_BYTES] = NULL;
		size_t n = veil_keyring_authorities(g.kr, &pks);
		if (n > 0) {
			struct veil_credential c;
			rc = veil_credential_verify(g.cred, g.cred_len, pks, n, (uint64_t)time(NULL), &c);
			if (rc != VEIL_OK) {
				fail("credential %s does not verify against the keyring's authorities: %s",
				     g.cfg.credential, veil_strerror(rc));
				return rc;
			}
		}
	}
	return VEIL_OK;
}

static int prepare_state_dir(void)
{
	if (!g.cfg.state_dir)
		return VEIL_OK;
	if (mkdir(g.cfg.state_dir, 0700) != 0 && errno != EEXIST) {
		fail("state_dir %s: %s", g.cfg.state_dir, strerror(errno));
		return VEIL_ERR_IO;
	}
	struct stat st;
	if (stat(g.cfg.state_dir, &st) != 0 || !S_ISDIR(st.st_mode) || access(g.cfg.state_dir, W_OK) != 0) {
		fail("state_dir %s: not a writable directory", g.cfg.state_dir);
		return VEIL_ERR_IO;
	}
	g.seq_path = join(g.cfg.state_dir, "seq");
	if (!g.seq_path) {
		fail("out of memory");
		return VEIL_ERR_NOMEM;
	}
	return VEIL_OK;
}

static void setup(void)
{
	if (veil_init() != VEIL_OK) {
		fail("libsodium failed to initialise");
		return;
	}
	const char *path = getenv("VEIL_CONFIG");
	if (!path || !*path) {
		fail("VEIL_CONFIG is not set: refusing to run an MQTT client without end-to-end encryption");
		return;
	}
	char err[512] = "";
	int rc = veil_config_load(path, &g.cfg, err, sizeof(err));
	if (rc != VEIL_OK) {
		fail("config: %s", err);
		return;
	}
	if (load_secrets() != VEIL_OK || prepare_state_dir() != VEIL_OK)
		return;
	g.ready = true;
}

bool vpl_ready(void)
{
	pthread_once(&once, setup);
	if (!g.ready) {
		/* Printed on every refused call: a daemon's log may start late. */
		vpl_loud("NOT ACTIVE, refusing MQTT operation: %s", g.err);
	}
	return g.ready;
}

const char *vpl_error(void)
{
	return g.err;
}

const char *vpl_client_id(const char *app_id)
{
	if (g.cfg.auth == VEIL_CONFIG_AUTH_CREDENTIAL && g.cred_client_id[0]) {
		if (!app_id || strcmp(app_id, g.cred_client_id) != 0)
			vpl_log("client id '%s' replaced by the credential's '%s'", app_id ? app_id : "(null)",
			        g.cred_client_id);
		return g.cred_client_id;
	}
	if (g.cfg.client_id)
		return g.cfg.client_id;
	return app_id;
}

/* Receive windows per client id, so two clients of one process that
 * subscribe to the same topic do not see each other's deliveries as replays. */
static char *replay_file(const char *client_id)
{
	if (!g.cfg.state_dir || !client_id)
		return NULL;
	char name[VEIL_CLIENT_ID_MAX * 3 + 16];
	size_t o = (size_t)snprintf(name, sizeof(name), "replay-");
	for (const char *p = client_id; *p && o + 4 < sizeof(name); p++) {
		unsigned char ch = (unsigned char)*p;
		/* Client ids are not file names: escape anything but [A-Za-z0-9._-]. */
		if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-' ||
		    ch == '_' || (ch == '.' && p != client_id))
			name[o++] = (char)ch;
		else
			o += (size_t)snprintf(name + o, sizeof(name) - o, "%%%02x", ch);
	}
	name[o] = '\0';
	return join(g.cfg.state_dir, name);
}

struct vpl_handle *vpl_handle_new(void *handle, bool async, const char *client_id)
{
	struct vpl_handle *h = calloc(1, sizeof(*h));
	if (!h)
		return NULL;
	h->handle = handle;
	h->async = async;
	h->client_id = client_id ? strdup(client_id) : NULL;
	if (veil_replay_new(REPLAY_MAX_SENDERS, &h->replay) != VEIL_OK) {
		free(h->client_id);
		free(h);
		return NULL;
	}
	h->replay_path = replay_file(client_id);
	if (h->replay_path && access(h->replay_path, F_OK) == 0) {
		int rc = veil_replay_load(h->replay, h->replay_path);
		if (rc != VEIL_OK)
			vpl_loud("replay state %s unusable (%s): starting with empty windows", h->replay_path,
			         veil_strerror(rc));
	}
	pthread_mutex_lock(&lock);
	h->next = g.handles;
	g.handles = h;
	pthread_mutex_unlock(&lock);
	return h;
}

struct vpl_handle *vpl_handle_find(void *handle)
{
	pthread_mutex_lock(&lock);
	struct vpl_handle *h = g.handles;
	while (h && h->handle != handle)
		h = h->next;
	pthread_mutex_unlock(&lock);
	return h;
}

/* Caller holds lock. */
static void save_replay(struct vpl_handle *h)
{
	if (!h->replay_path || h->unsaved == 0)
		return;
	int rc = veil_replay_save(h->replay, h->replay_path);
	if (rc != VEIL_OK)
		vpl_log("cannot save replay state %s: %s", h->replay_path, veil_strerror(rc));
	else
		h->unsaved = 0;
}

void vpl_handle_free(void *handle)
{
	pthread_mutex_lock(&lock);
	struct vpl_handle **pp = &g.handles;
	while (*pp && (*pp)->handle != handle)
		pp = &(*pp)->next;
	struct vpl_handle *h = *pp;
	if (h) {
		*pp = h->next;
		save_replay(h);
	}
	pthread_mutex_unlock(&lock);
	if (!h)
		return;
	veil_replay_free(&h->replay);
	free(h->replay_path);
	free(h->client_id);
	free(h);
}

static uint64_t now_us(void)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	return (uint64_t)tv.tv_sec * 1000000U + (uint64_t)tv.tv_usec;
}

int vpl_seal(const char *topic, const void *pt, size_t len, uint8_t **out, size_t *out_len)
{
	*out = NULL;
	*out_len = 0;
	if (!topic) {
		vpl_loud("publish refused: no topic");
		return VEIL_ERR_INVAL;
	}
	if (!g.id) {
		vpl_loud("publish on '%s' refused: no identity configured, cannot seal", topic);
		pthread_mutex_lock(&lock);
		g.refused++;
		pthread_mutex_unlock(&lock);
		return VEIL_ERR_INVAL;
	}
	if (len > VEIL_MAX_PLAINTEXT || (len > 0 && !pt)) {
		vpl_loud("publish on '%s' refused: payload of %zu bytes", topic, len);
		return VEIL_ERR_TOO_LARGE;
	}
	size_t cap = veil_sealed_signed_len(len, g.cred_len);
	uint8_t *buf = malloc(cap ? cap : 1U);
	if (!buf) {
		vpl_loud("publish on '%s' refused: out of memory", topic);
		return VEIL_ERR_NOMEM;
	}
	pthread_mutex_lock(&lock);
	int rc = VEIL_OK;
	if (!g.seq) {
		rc = veil_seq_open(g.seq_path, now_us(), &g.seq);
		if (rc != VEIL_OK)
			vpl_loud("sequence state %s: %s", g.seq_path ? g.seq_path : "(memory)", veil_strerror(rc));
	}
	bool sealed = false;
	if (rc == VEIL_OK) {
		struct veil_sender s = { g.id, g.cred, g.cred_len, g.seq };
		rc = veil_message_seal(g.kr, &s, topic, pt, len, g.cfg.sign == VEIL_CONFIG_SIGN_ALWAYS, buf, cap,
		                       out_len, &sealed);
	}
	if (rc == VEIL_OK)
		g.sealed++;
	else
		g.refused++;
	pthread_mutex_unlock(&lock);
	if (rc != VEIL_OK) {
		free(buf);
		*out_len = 0;
		if (rc == VEIL_ERR_NO_POLICY)
			vpl_loud("publish on '%s' REFUSED: no keyring entry for this topic (nothing sent)", topic);
		else
			vpl_loud("publish on '%s' REFUSED: %s (nothing sent)", topic, veil_strerror(rc));
		return rc;
	}
	if (!sealed)
		vpl_log("'%s' sent in clear: the keyring policy allows plaintext on it", topic);
	*out = buf;
	return VEIL_OK;
}

void vpl_sealed_free(uint8_t *buf, size_t len)
{
	if (!buf)
		return;
	sodium_memzero(buf, len);
	free(buf);
}

int vpl_open_inplace(struct vpl_handle *h, const char *topic, int topic_len, void *payload, int *len)
{
	char *tcopy = NULL;
	const char *t = topic;
	int rc = VEIL_OK;
	if (!topic || *len < 0 || (*len > 0 && !payload)) {
		rc = VEIL_ERR_INVAL;
		goto out;
	}
	if (topic_len > 0) {
		/* Paho passes a length only when the topic has embedded NULs, or for
		 * topics it did not terminate; MQTT forbids NUL in topic names. */
		if (memchr(topic, '\0', (size_t)topic_len)) {
			rc = VEIL_ERR_PARSE;
			goto out;
		}
		tcopy = strndup(topic, (size_t)topic_len);
		if (!tcopy) {
			rc = VEIL_ERR_NOMEM;
			goto out;
		}
		t = tcopy;
	}
	size_t in_len = (size_t)*len;
	/* Not in place: the AEAD output would overlap its input at an offset. */
	uint8_t *tmp = malloc(in_len ? in_len : 1U);
	if (!tmp) {
		rc = VEIL_ERR_NOMEM;
		goto out;
	}
	size_t out_len = 0;
	struct veil_open_info info;
	pthread_mutex_lock(&lock);
	rc = veil_message_open(g.kr, h->replay, t, payload, in_len, (uint64_t)time(NULL), tmp, in_len, &out_len,
	                       &info);
	if (rc == VEIL_OK) {
		g.opened++;
		h->unsaved++;
		if (h->unsaved >= REPLAY_SAVE_EVERY)
			save_replay(h);
	} else {
		g.dropped++;
	}
	pthread_mutex_unlock(&lock);
	if (rc == VEIL_OK) {
		memcpy(payload, tmp, out_len);
		/* Apps often print payloads as C strings; the envelope was longer, so
		 * this byte is inside Paho's buffer unless the message was plaintext. */
		if (out_len < in_len)
			((uint8_t *)payload)[out_len] = 0;
		*len = (int)out_len;
	}
	sodium_memzero(tmp, in_len);
	free(tmp);
out:
	if (rc != VEIL_OK)
		vpl_log("message on '%s' DROPPED: %s (%s)", t ? t : "(null)", veil_strerror(rc), veil_errname(rc));
	free(tcopy);
	return rc;
}

bool vpl_login(const char *client_id, char *pw, size_t pwcap, int *rc)
{
	*rc = VEIL_OK;
	if (g.cfg.auth != VEIL_CONFIG_AUTH_CREDENTIAL)
		return false;
	uint8_t tok[VEIL_TOKEN_MAX];
	size_t tok_len = 0;
	*rc = veil_token_create(g.id, g.cred, g.cred_len, client_id, (uint64_t)time(NULL), tok, sizeof(tok), &tok_len);
	if (*rc == VEIL_OK)
		*rc = veil_token_to_password(tok, tok_len, pw, pwcap);
	sodium_memzero(tok, sizeof(tok));
	if (*rc != VEIL_OK) {
		sodium_memzero(pw, pwcap);
		vpl_loud("cannot build the login token for '%s': %s", client_id ? client_id : "(null)",
		         veil_strerror(*rc));
	}
	return true;
}

__attribute__((destructor)) static void vpl_fini(void)
{
	if (!g.ready)
		return;
	pthread_mutex_lock(&lock);
	for (struct vpl_handle *h = g.handles; h; h = h->next)
		save_replay(h);
	if (g.dropped || g.refused)
		vpl_log("summary: %lu sealed, %lu opened, %lu dropped, %lu publishes refused", g.sealed, g.opened,
		        g.dropped, g.refused);
	/* Persist the sequence mark; Paho threads may still run, so keep the
	 * other structures (the OS reclaims them). */
	veil_seq_close(&g.seq);
	pthread_mutex_unlock(&lock);
}
