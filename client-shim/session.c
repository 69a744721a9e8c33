/*
 * The client session core (session.h): loading, state directory, sequence,
 * replay windows and their save policy, seal, open, login token. Paho-free;
 * libveil (shim.c, client.c, async.c) and the preload (preload*.c) are thin
 * adapters over it.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "internal.h"
#include "device.h"
#include "session_private.h"
#include "util.h"

void veil__slog(const struct veil__session *s, int level, const char *fmt, ...)
{
	if (!s->log)
		return;
	char buf[768];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	s->log(s->log_ctx, level, buf);
}

uint64_t veil__mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000U + (uint64_t)ts.tv_nsec / 1000000U;
}

struct timespec veil__mono_after(uint64_t ms)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	t.tv_sec += (time_t)(ms / 1000U);
	t.tv_nsec += (long)(ms % 1000U) * 1000000L;
	if (t.tv_nsec >= 1000000000L) {
		t.tv_sec++;
		t.tv_nsec -= 1000000000L;
	}
	return t;
}

static uint64_t now_us(void)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	return (uint64_t)tv.tv_sec * 1000000U + (uint64_t)tv.tv_usec;
}

static char *join(const char *dir, const char *name)
{
	size_t n = strlen(dir) + 1U + strlen(name) + 1U;
	char *p = malloc(n);
	if (p)
		snprintf(p, n, "%s/%s", dir, name);
	return p;
}

/* Every refusal to start ends in "(<veil_errname>)", added here and only
 * here: libveil returns the code as well, but an app under the preload has
 * only the line (docs/PRELOAD.md, "Errors and counters"). */
static void name_err(char *err, size_t errlen, int rc)
{
	size_t n = err ? strnlen(err, errlen) : 0;
	if (err && n + 1 < errlen)
		snprintf(err + n, errlen - n, "%s(%s)", n ? " " : "", veil_errname(rc));
}

static void utc(uint64_t t, char *buf, size_t cap)
{
	time_t tt = (time_t)t;
	struct tm tm;
	if (gmtime_r(&tt, &tm))
		strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
	else
		snprintf(buf, cap, "%llu", (unsigned long long)t);
}

/* ---- state directory ---- */

/* A state file or directory must be ours and writable by us only: anyone
 * else who can write it can make old messages look new to this receiver
 * (replay windows) or reuse sequence numbers. */
static int state_owned(const char *path, bool dir, char *err, size_t errlen)
{
	struct stat st;
	if (lstat(path, &st) != 0) {
		veil__errf(err, errlen, "%s: %s", path, strerror(errno));
		return errno == ENOENT ? VEIL_ERR_NOT_FOUND : VEIL_ERR_STATE;
	}
	if (dir ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode)) {
		veil__errf(err, errlen, "%s: not a %s", path, dir ? "directory" : "regular file");
		return VEIL_ERR_STATE;
	}
	if (st.st_uid != geteuid()) {
		veil__errf(err, errlen, "%s: owned by uid %u, not by this process's uid %u", path, (unsigned)st.st_uid,
		           (unsigned)geteuid());
		return VEIL_ERR_STATE;
	}
	if (st.st_mode & 022) {
		veil__errf(err, errlen, "%s: writable by group or others (mode %03o); chmod go-w", path,
		           (unsigned)(st.st_mode & 0777));
		return VEIL_ERR_STATE;
	}
	return VEIL_OK;
}

static int state_dir_open(struct veil__session *s, const char *dir, char *err, size_t errlen)
{
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		veil__errf(err, errlen, "state dir %s: %s", dir, strerror(errno));
		return VEIL_ERR_STATE;
	}
	char why[512];
	int rc = state_owned(dir, true, why, sizeof(why));
	if (rc != VEIL_OK) {
		veil__errf(err, errlen, "state dir %s", why);
		return VEIL_ERR_STATE;
	}
	char *lock = join(dir, "lock");
	if (!lock)
		return VEIL_ERR_NOMEM;
	s->lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (s->lock_fd < 0 || flock(s->lock_fd, LOCK_EX | LOCK_NB) != 0) {
		veil__errf(err, errlen, "state dir %s is in use by another Veil client (each needs its own state_dir): %s",
		           dir, strerror(errno));
		free(lock);
		return VEIL_ERR_STATE;
	}
	free(lock);
	if (!(s->state_dir = strdup(dir)))
		return VEIL_ERR_NOMEM;
	return VEIL_OK;
}

/* Existing state files must pass state_owned; a missing one is fine. */
static int state_file_ok(const char *path, char *err, size_t errlen)
{
	int rc = state_owned(path, false, err, errlen);
	return rc == VEIL_ERR_NOT_FOUND ? VEIL_OK : rc;
}

/* ---- loading ---- */

static int load_credential(struct veil__session *s, const struct veil__session_opts *o, char *err, size_t errlen)
{
	char why[512] = "";
	if (!(s->cred = sodium_malloc(VEIL_CREDENTIAL_MAX)))
		return VEIL_ERR_NOMEM;
	int rc = veil_credential_load(o->credential_path, s->cred, VEIL_CREDENTIAL_MAX, &s->cred_len, why, sizeof(why));
	if (rc != VEIL_OK) {
		veil__errf(err, errlen, "credential %s", why[0] ? why : o->credential_path);
		return rc;
	}
	struct veil_credential c;
	rc = veil_credential_parse(s->cred, s->cred_len, &c);
	if (rc != VEIL_OK) {
		veil__errf(err, errlen, "credential %s: %s", o->credential_path, veil_strerror(rc));
		return rc;
	}
	if (s->id) {
		uint8_t pk[VEIL_PK_BYTES];
		veil_identity_public(s->id, pk);
		/* A credential for another key makes every login and every signed
		 * message fail later, far from the cause. */
		if (sodium_memcmp(pk, c.device_pk, VEIL_PK_BYTES) != 0) {
			veil__errf(err, errlen, "identity does not match credential: %s was issued for another device key "
			           "than identity %s", o->credential_path, o->identity_path);
			return VEIL_ERR_AUTH;
		}
	}
	if (!o->client_id && !(s->client_id = strdup(c.client_id)))
		return VEIL_ERR_NOMEM;
	if (o->token_login && o->client_id && strcmp(o->client_id, c.client_id) != 0) {
		veil__errf(err, errlen, "client id '%s' differs from the credential's client id '%s' (%s)", o->client_id,
		           c.client_id, o->credential_path);
		return VEIL_ERR_CLIENT_ID;
	}
	uint64_t now = (uint64_t)time(NULL);
	char when[32];
	if (now >= c.expires_at) {
		utc(c.expires_at, when, sizeof(when));
		veil__errf(err, errlen, "credential %s expired at %s", o->credential_path, when);
		return VEIL_ERR_EXPIRED;
	}
	if (now < c.issued_at) {
		utc(c.issued_at, when, sizeof(when));
		veil__errf(err, errlen, "credential %s is not valid before %s (check this machine's clock)",
		           o->credential_path, when);
		return VEIL_ERR_NOT_YET_VALID;
	}
	if (s->n_authorities > 0) {
		rc = veil_credential_verify(s->cred, s->cred_len, (const uint8_t(*)[VEIL_PK_BYTES])s->authorities,
		                            s->n_authorities, now, &c);
		if (rc != VEIL_OK) {
			veil__errf(err, errlen, "credential %s does not verify against the trusted authorities (%s%s%s): %s",
			           o->credential_path, o->keyring_path ? o->keyring_path : "",
			           o->keyring_path && o->authority_path ? ", " : "",
			           o->authority_path ? o->authority_path : "", veil_strerror(rc));
			return rc;
		}
	}
	return VEIL_OK;
}

/* The trusted authorities: the keyring's "authority" lines and the authority
 * file's keys, without duplicates. Nothing the key service sends ever adds
 * one. */
static int load_authorities(struct veil__session *s, const struct veil__session_opts *o, char *err, size_t errlen)
{
	uint8_t file_pks[VEIL_MAX_AUTHORITIES][VEIL_PK_BYTES];
	size_t nfile = 0;
	if (o->authority_path) {
		char why[512] = "";
		int rc = veil_public_keys_load(o->authority_path, file_pks, VEIL_MAX_AUTHORITIES, &nfile, why, sizeof(why));
		if (rc != VEIL_OK) {
			veil__errf(err, errlen, "authorities %s", why[0] ? why : o->authority_path);
			return rc;
		}
	}
	if (nfile) {
		if (!(s->file_authorities = calloc(nfile, VEIL_PK_BYTES)))
			return VEIL_ERR_NOMEM;
		memcpy(s->file_authorities, file_pks, nfile * VEIL_PK_BYTES);
		s->n_file_authorities = nfile;
		/* The keyring opens signed messages: it trusts the file's too. */
		int rc = s->static_kr ? veil__keyring_add_authorities(s->static_kr,
		                                                      (const uint8_t(*)[VEIL_PK_BYTES])file_pks, nfile)
		                      : VEIL_OK;
		if (rc != VEIL_OK) {
			veil__errf(err, errlen, "more than %u authorities in the keyring and %s together", VEIL_MAX_AUTHORITIES,
			           o->authority_path);
			return rc;
		}
	}
	const uint8_t(*kr_pks)[VEIL_PK_BYTES] = NULL;
	size_t nkr = s->static_kr ? veil_keyring_authorities(s->static_kr, &kr_pks) : 0;
	if (nkr + nfile == 0)
		return VEIL_OK;
	if (!(s->authorities = calloc(nkr + nfile, VEIL_PK_BYTES)))
		return VEIL_ERR_NOMEM;
	for (size_t i = 0; i < nkr + nfile; i++) {
		const uint8_t *pk = i < nkr ? kr_pks[i] : file_pks[i - nkr];
		bool dup = false;
		for (size_t k = 0; k < s->n_authorities && !dup; k++)
			dup = sodium_memcmp(s->authorities[k], pk, VEIL_PK_BYTES) == 0;
		if (!dup)
			memcpy(s->authorities[s->n_authorities++], pk, VEIL_PK_BYTES);
	}
	return VEIL_OK;
}

static int load(struct veil__session *s, const struct veil__session_opts *o, char *err, size_t errlen)
{
	char why[512] = "";
	int rc = VEIL_OK;
	if (o->keyring_path && (rc = veil_keyring_load(o->keyring_path, &s->static_kr, why, sizeof(why))) != VEIL_OK) {
		veil__errf(err, errlen, "keyring %s", why[0] ? why : o->keyring_path);
		return rc;
	}
	if ((rc = load_authorities(s, o, err, errlen)) != VEIL_OK)
		return rc;
	if (o->identity_path) {
		rc = veil_identity_load(o->identity_path, &s->id, why, sizeof(why));
		if (rc != VEIL_OK) {
			veil__errf(err, errlen, "identity %s", why[0] ? why : o->identity_path);
			return rc;
		}
	}
	if (o->credential_path && (rc = load_credential(s, o, err, errlen)) != VEIL_OK)
		return rc;
	if (o->state_dir && (rc = state_dir_open(s, o->state_dir, err, errlen)) != VEIL_OK)
		return rc;
	if (s->id) {
		char *seq = s->state_dir ? join(s->state_dir, "seq") : NULL;
		if (s->state_dir && !seq)
			return VEIL_ERR_NOMEM;
		rc = seq ? state_file_ok(seq, why, sizeof(why)) : VEIL_OK;
		if (rc == VEIL_OK && (rc = veil_seq_open(seq, now_us(), &s->seq)) != VEIL_OK)
			snprintf(why, sizeof(why), "%s: %s", seq ? seq : "(memory)", veil_strerror(rc));
		if (rc != VEIL_OK)
			veil__errf(err, errlen, "sequence state %s", why);
		free(seq);
	}
	if (rc == VEIL_OK && s->state_dir)
		veil__writer_start(s);
	if (rc == VEIL_OK)
		rc = veil__session_keys_start(s, o, err, errlen);
	return rc;
}

int veil__session_new(const struct veil__session_opts *o, struct veil__session **out, char *err, size_t errlen)
{
	if (!o || !out || (!o->keyring_path && o->key_service == VEIL__KEYS_OFF)) {
		veil__errf(err, errlen, "a keyring is required without the key service");
		name_err(err, errlen, VEIL_ERR_INVAL);
		return VEIL_ERR_INVAL;
	}
	*out = NULL;
	if (o->credential_path && !o->identity_path) {
		veil__errf(err, errlen, "a credential (%s) needs its identity file", o->credential_path);
		name_err(err, errlen, VEIL_ERR_INVAL);
		return VEIL_ERR_INVAL;
	}
	if (o->sign_all && !o->credential_path) {
		veil__errf(err, errlen, "signing every message needs an identity and a credential");
		name_err(err, errlen, VEIL_ERR_INVAL);
		return VEIL_ERR_INVAL;
	}
	if (veil_init() != VEIL_OK)
		return VEIL_ERR_IO;
	struct veil__session *s = calloc(1, sizeof(*s));
	if (!s)
		return VEIL_ERR_NOMEM;
	pthread_mutex_init(&s->lock, NULL);
	pthread_mutex_init(&s->compose_lock, NULL);
	pthread_mutex_init(&s->release_lock, NULL);
	s->lock_fd = -1;
	s->sign_all = o->sign_all;
	s->refuse_plaintext_send = o->refuse_plaintext_send;
	s->max_per_key = o->max_per_key ? o->max_per_key : VEIL_REPLAY_DEFAULT_PER_KEY;
	s->log = o->log;
	s->log_ctx = o->log_ctx;
	bool copied = (!o->client_id || (s->client_id = strdup(o->client_id))) &&
	              (!o->audience || (s->audience = strdup(o->audience))) &&
	              (!o->keyring_path || (s->keyring_path = strdup(o->keyring_path)));
	int rc = copied ? load(s, o, err, errlen) : VEIL_ERR_NOMEM;
	if (rc == VEIL_OK && o->audience && !veil_audience_valid(o->audience)) {
		veil__errf(err, errlen, "audience '%.64s' is not a deployment name (the rule of a credential's client id)",
		           o->audience);
		rc = VEIL_ERR_INVAL;
	}
	if (rc != VEIL_OK) {
		name_err(err, errlen, rc);
		veil__session_free(&s);
		return rc;
	}
	*out = s;
	return VEIL_OK;
}

void veil__session_free(struct veil__session **sp)
{
	if (!sp || !*sp)
		return;
	struct veil__session *s = *sp;
	veil__session_keys_stop(s); /* its keeper thread touches the keyring */
	veil__writer_stop(s);
	veil_seq_close(&s->seq);
	if (s->kr != s->static_kr)
		veil_keyring_free(&s->kr);
	veil_keyring_free(&s->static_kr);
	free(s->authorities);
	free(s->file_authorities);
	veil_identity_free(&s->id);
	if (s->cred)
		sodium_free(s->cred); /* wipes */
	if (s->lock_fd >= 0)
		close(s->lock_fd); /* releases the flock */
	free(s->state_dir);
	free(s->client_id);
	free(s->audience);
	free(s->keyring_path);
	pthread_mutex_destroy(&s->lock);
	pthread_mutex_destroy(&s->compose_lock);
	pthread_mutex_destroy(&s->release_lock);
	free(s);
	*sp = NULL;
}

int veil__session_reload(struct veil__session *s, char *err, size_t errlen)
{
	if (!s->keyring_path)
		return VEIL_OK; /* the key service's keys change by themselves */
	struct veil_keyring *kr = NULL;
	char why[512] = "";
	int rc = veil_keyring_load(s->keyring_path, &kr, why, sizeof(why));
	if (rc != VEIL_OK) {
		veil__errf(err, errlen, "keyring %s", why[0] ? why : s->keyring_path);
		name_err(err, errlen, rc);
		return rc;
	}
	return veil__session_set_static(s, kr);
}

const char *veil__session_client_id(const struct veil__session *s)
{
	return s ? s->client_id : NULL;
}

bool veil__session_can_sign(const struct veil__session *s)
{
	return s && s->id && s->cred;
}

/* ---- login ---- */

int veil__session_token(struct veil__session *s, struct veil__token *t)
{
	memset(t, 0, sizeof(*t));
	if (!s->id || !s->cred) {
		veil__slog(s, VEIL__LOG_ERROR, "token login needs an identity and a credential");
		return VEIL_ERR_INVAL;
	}
	int rc = veil_token_create_for(s->id, s->cred, s->cred_len, s->client_id, s->audience, (uint64_t)time(NULL),
	                               t->tok, sizeof(t->tok), &t->len);
	if (rc == VEIL_OK)
		rc = veil_token_to_password(t->tok, t->len, t->password, sizeof(t->password));
	if (rc != VEIL_OK) {
		veil__slog(s, VEIL__LOG_ERROR, "cannot build the login token for '%s': %s", s->client_id, veil_strerror(rc));
		veil__token_wipe(t);
	}
	return rc;
}

void veil__token_wipe(struct veil__token *t)
{
	/* Single-use, but valid for the freshness window: do not leave it around. */
	sodium_memzero(t, sizeof(*t));
}

/* ---- seal ---- */

static int seal(struct veil__session *s, bool will, const char *topic, const void *payload, size_t len,
                bool retained, uint8_t *stackbuf, size_t stackcap, uint8_t **out, size_t *out_len, bool *sealed)
{
	*out = NULL;
	*out_len = 0;
	*sealed = false;
	if (!topic || (!payload && len))
		return VEIL_ERR_INVAL;
	if (len == 0 && retained) {
		/* Clearing a retained message: nothing to seal, nothing readable. */
		uint8_t *buf = stackcap ? stackbuf : malloc(1);
		if (!buf)
			return VEIL_ERR_NOMEM;
		pthread_mutex_lock(&s->lock);
		s->seal.published++;
		pthread_mutex_unlock(&s->lock);
		veil__slog(s, VEIL__LOG_INFO, "retained message on '%s' cleared (an empty retained publish)", topic);
		*out = buf;
		return VEIL_OK;
	}
	if (len > VEIL_MAX_PLAINTEXT) {
		veil__slog(s, VEIL__LOG_WARNING, "publish on '%s' REFUSED: %zu bytes is over the %u byte limit, nothing sent (%s)",
		     topic, len, VEIL_MAX_PLAINTEXT, veil_errname(VEIL_ERR_TOO_LARGE));
		pthread_mutex_lock(&s->lock);
		s->seal.publish_refused++;
		pthread_mutex_unlock(&s->lock);
		return VEIL_ERR_TOO_LARGE;
	}
	size_t cap = veil_sealed_signed_len(len, s->cred_len);
	/* Small messages (the common case) need no allocation. */
	uint8_t *buf = cap <= stackcap ? stackbuf : malloc(cap ? cap : 1);
	if (!buf)
		return VEIL_ERR_NOMEM;
	struct veil_sender snd = { s->id, s->cred, s->cred_len, s->seq };
	struct veil_topic_policy pol;
	char filter[256] = ""; /* for the log: pol.filter dies with the keyring (reload) */
	unsigned line = 0;
	pthread_mutex_lock(&s->lock);
	int rc = veil_keyring_policy(s->kr, topic, &pol);
	bool have_pol = rc == VEIL_OK || rc == VEIL_ERR_NO_KEY;
	if (rc == VEIL_OK && !pol.send_key && s->refuse_plaintext_send)
		rc = VEIL_ERR_CLEAR_REFUSED;
	/* Without an identity only plaintext-policy topics pass (seal says INVAL). */
	if (rc == VEIL_OK)
		rc = veil_message_seal(s->kr, &snd, topic, payload, len, s->sign_all, buf, cap, out_len, sealed);
	if (rc == VEIL_OK) {
		s->seal.published++;
		if (*sealed)
			s->seal.published_sealed++;
	} else {
		s->seal.publish_refused++;
	}
	/* Only what is logged needs the filter (a sealed publish logs nothing). */
	if (have_pol && (rc != VEIL_OK || !*sealed)) {
		snprintf(filter, sizeof(filter), "%s", pol.filter);
		line = pol.line;
	}
	pthread_mutex_unlock(&s->lock);
	if (rc == VEIL_OK && *sealed)
		veil__writer_after_seal(s);
	/* Before its first bundle a device does not know its scopes: any
	 * topic the keyring file does not cover may be one, so it waits for a
	 * key (no-key), it is not refused for want of a policy. */
	bool unknown_scope = rc == VEIL_ERR_NO_POLICY && s->dev && !veil__device_has_bundle(s->dev);
	if (unknown_scope)
		rc = VEIL_ERR_NO_KEY;
	if (rc == VEIL_ERR_NO_KEY && s->dev)
		veil__device_want_bundle(s->dev);
	if (rc != VEIL_OK) {
		if (buf != stackbuf)
			free(buf);
		/* Ends in the error's name, like every refusal: the preload's app
		 * gets only Paho's failure code. */
		char why[512];
		if (rc == VEIL_ERR_NO_POLICY)
			snprintf(why, sizeof(why), "no keyring entry for this topic");
		else if (unknown_scope)
			snprintf(why, sizeof(why), "no key from the key service yet (no bundle has come; asked for one)");
		else if (rc == VEIL_ERR_NO_KEY)
			snprintf(why, sizeof(why), "no key of the key service's scope '%s' may seal now (asked for one)",
			         filter);
		else if (rc == VEIL_ERR_CLEAR_REFUSED)
			snprintf(why, sizeof(why), "the keyring policy for '%s' says plaintext (%s:%u) and sending in "
			         "clear is not allowed here", filter, s->keyring_path ? s->keyring_path : "keyring",
			         line);
		else if (rc == VEIL_ERR_INVAL && !s->id)
			snprintf(why, sizeof(why), "no identity configured, cannot seal");
		else
			snprintf(why, sizeof(why), "%s", veil_strerror(rc));
		if (!will)
			veil__slog(s, VEIL__LOG_WARNING, "publish on '%s' REFUSED: %s, nothing sent (%s)", topic, why,
			           veil_errname(rc));
		else if (rc == VEIL_ERR_NO_KEY)
			veil__slog(s, VEIL__LOG_ERROR, "Will on '%s' REFUSED: %s; a Will is sealed at CONNECT, so under a key "
			           "service scope it needs keys kept in state_dir from an earlier connection (connect once "
			           "without the Will), not connecting (%s)", topic, why, veil_errname(rc));
		else
			veil__slog(s, VEIL__LOG_ERROR, "Will on '%s' REFUSED: %s, not connecting (%s)", topic, why,
			           veil_errname(rc));
		return rc;
	}
	if (!*sealed)
		veil__slog(s, VEIL__LOG_INFO, "'%s' sent in clear: the keyring policy for '%s' allows plaintext", topic, filter);
	*out = buf;
	return VEIL_OK;
}

int veil__session_seal(struct veil__session *s, const char *topic, const void *payload, size_t len, bool retained,
                       uint8_t *stackbuf, size_t stackcap, uint8_t **out, size_t *out_len, bool *sealed)
{
	return seal(s, false, topic, payload, len, retained, stackbuf, stackcap, out, out_len, sealed);
}

int veil__session_seal_will(struct veil__session *s, const char *topic, const void *payload, size_t len,
                            bool retained, uint8_t **out, size_t *out_len)
{
	bool sealed = false;
	return seal(s, true, topic, payload, len, retained, NULL, 0, out, out_len, &sealed);
}

void veil__sealed_release(uint8_t *out, size_t len, const uint8_t *stackbuf)
{
	if (!out)
		return;
	/* An envelope is ciphertext, but a plaintext-policy "envelope" is not. */
	sodium_memzero(out, len);
	if (out != stackbuf)
		free(out);
}

void veil__session_seal_stats(struct veil__session *s, struct veil__seal_stats *out)
{
	pthread_mutex_lock(&s->lock);
	*out = s->seal;
	pthread_mutex_unlock(&s->lock);
}

/* ---- receivers ---- */

/* "replay-" + the client id with anything but [A-Za-z0-9._-] escaped as %xx
 * (a leading '.' too): client ids are not file names. */
static char *replay_file(const char *dir, const char *client_id)
{
	char name[VEIL_CLIENT_ID_MAX * 3 + 16];
	size_t o = (size_t)snprintf(name, sizeof(name), "replay-");
	for (const char *p = client_id; *p && o + 4 < sizeof(name); p++) {
		unsigned char ch = (unsigned char)*p;
		if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-' ||
		    ch == '_' || (ch == '.' && p != client_id))
			name[o++] = (char)ch;
		else
			o += (size_t)snprintf(name + o, sizeof(name) - o, "%%%02x", ch);
	}
	name[o] = '\0';
	return join(dir, name);
}

static int load_windows(struct veil__receiver *r, const char *path, char *err, size_t errlen)
{
	char why[512];
	int rc = state_owned(path, false, why, sizeof(why));
	if (rc == VEIL_ERR_NOT_FOUND)
		return VEIL_OK;
	if (rc == VEIL_OK && (rc = veil_replay_load(r->replay, path)) != VEIL_OK)
		snprintf(why, sizeof(why), "%s: %s", path,
		         rc == VEIL_ERR_STATE ? "not a replay state file (malformed)" : veil_strerror(rc));
	if (rc != VEIL_OK) {
		/* Starting with empty windows would silently reopen every replay. */
		veil__errf(err, errlen, "replay state %s (refusing to start: move the file away to accept replays of "
		           "old messages once)", why);
		return VEIL_ERR_STATE;
	}
	return VEIL_OK;
}

int veil__receiver_new(struct veil__session *s, const char *client_id, struct veil__receiver **out, char *err,
                       size_t errlen)
{
	if (!s || !client_id || !out)
		return VEIL_ERR_INVAL;
	*out = NULL;
	struct veil__receiver *r = calloc(1, sizeof(*r));
	if (!r)
		return VEIL_ERR_NOMEM;
	r->s = s;
	pthread_mutex_init(&r->save_lock, NULL);
	r->saved_at_ms = veil__mono_ms();
	int rc = veil_replay_new(s->max_per_key, &r->replay);
	if (rc == VEIL_OK && s->state_dir) {
		r->path = replay_file(s->state_dir, client_id);
		r->legacy_path = join(s->state_dir, "replay");
		if (!r->path || !r->legacy_path)
			rc = VEIL_ERR_NOMEM;
		else if (access(r->path, F_OK) != 0 && access(r->legacy_path, F_OK) == 0)
			rc = load_windows(r, r->legacy_path, err, errlen);
		else
			rc = load_windows(r, r->path, err, errlen);
	}
	if (rc != VEIL_OK) {
		name_err(err, errlen, rc);
		free(r->legacy_path);
		r->legacy_path = NULL;
		veil__receiver_free(&r);
		return rc;
	}
	pthread_mutex_lock(&s->lock);
	r->next = s->receivers;
	s->receivers = r;
	pthread_mutex_unlock(&s->lock);
	*out = r;
	return VEIL_OK;
}

void veil__receiver_save(struct veil__receiver *r)
{
	if (!r || !r->path)
		return;
	struct veil__session *s = r->s;
	pthread_mutex_lock(&r->save_lock);
	uint8_t *buf = NULL;
	size_t len = 0;
	pthread_mutex_lock(&s->lock);
	int rc = veil__replay_serialize(r->replay, &buf, &len);
	unsigned unsaved = r->unsaved;
	r->unsaved = 0;
	r->saved_at_ms = veil__mono_ms();
	pthread_mutex_unlock(&s->lock);
	/* The write and its fsync run outside the session lock: publishing and
	 * receiving go on meanwhile. */
	if (rc == VEIL_OK)
		rc = veil__file_write_atomic(r->path, buf, len, 0600, false);
	free(buf);
	if (rc == VEIL_OK && r->legacy_path) {
		unlink(r->legacy_path);
		free(r->legacy_path);
		r->legacy_path = NULL;
	}
	pthread_mutex_unlock(&r->save_lock);
	if (rc != VEIL_OK) {
		pthread_mutex_lock(&s->lock);
		r->unsaved += unsaved; /* try again at the next message */
		pthread_mutex_unlock(&s->lock);
		veil__slog(s, VEIL__LOG_WARNING, "saving replay state %s failed (%s)", r->path, veil_errname(rc));
	}
}

void veil__receiver_free(struct veil__receiver **rp)
{
	if (!rp || !*rp)
		return;
	struct veil__receiver *r = *rp;
	pthread_mutex_lock(&r->s->release_lock);
	veil__receiver_drop_held(r);
	pthread_mutex_lock(&r->s->lock);
	for (struct veil__receiver **pp = &r->s->receivers; *pp; pp = &(*pp)->next) {
		if (*pp == r) {
			*pp = r->next;
			break;
		}
	}
	pthread_mutex_unlock(&r->s->lock);
	pthread_mutex_unlock(&r->s->release_lock);
	veil__writer_receiver_gone(r);
	if (r->replay && r->path && (r->unsaved || r->legacy_path))
		veil__receiver_save(r);
	veil_replay_free(&r->replay);
	free(r->path);
	free(r->legacy_path);
	pthread_mutex_destroy(&r->save_lock);
	free(r);
	*rp = NULL;
}

static int receiver_open(struct veil__receiver *r, const char *topic, size_t topic_len, const uint8_t *in,
                         size_t len, uint8_t *out, size_t out_cap, size_t *out_len, struct veil_open_info *info,
                         bool again)
{
	struct veil__session *s = r->s;
	struct veil_open_info scratch;
	if (!info)
		info = &scratch;
	*out_len = 0;
	if (out_cap < len + 1)
		return VEIL_ERR_INVAL;
	/* Paho gives a length when the topic may hold a NUL: such a topic can
	 * never match what a sender sealed for. */
	bool bad_topic = !topic || (topic_len && strnlen(topic, topic_len) != topic_len);
	char *tcopy = NULL;
	if (!bad_topic && topic_len) {
		if (!(tcopy = strndup(topic, topic_len)))
			return VEIL_ERR_NOMEM;
		topic = tcopy;
	}
	bool save = false;
	char filter[256] = ""; /* for the log, copied under the lock */
	const struct veil__revoked *rev = veil__session_revoked(s);
	pthread_mutex_lock(&s->lock);
	if (!again)
		r->st.received++;
	int rc = bad_topic ? VEIL_ERR_WRONG_TOPIC
	                   : veil__message_open_rev(s->kr, r->replay, rev, topic, in, len, (uint64_t)time(NULL), out,
	                                            out_cap, out_len, info);
	/* A key the key service has not granted yet: the front end may wait. */
	bool wait = rc != VEIL_OK && !bad_topic && veil__session_holdable(s, topic, in, len, rc);
	struct veil_topic_policy pol;
	if (rc == VEIL_OK && info->plaintext && veil_keyring_policy(s->kr, topic, &pol) == VEIL_OK)
		snprintf(filter, sizeof(filter), "%s", pol.filter);
	if (rc == VEIL_OK) {
		r->st.delivered++;
		r->unsaved += !info->plaintext; /* only envelopes move the windows */
		save = r->path &&
		       (r->unsaved >= VEIL__SAVE_EVERY || veil__mono_ms() - r->saved_at_ms >= VEIL__SAVE_SECONDS * 1000U);
	} else if (!wait) {
		r->st.refused++;
		if (rc < 0 && rc > -(int)(sizeof(r->st.refused_by_err) / sizeof(r->st.refused_by_err[0])))
			r->st.refused_by_err[-rc]++;
	}
	pthread_mutex_unlock(&s->lock);
	if (wait) {
		free(tcopy);
		*out_len = 0;
		return VEIL__WAIT;
	}
	if (rc == VEIL_OK) {
		out[*out_len] = '\0';
		/* The preload's only way to flag it to an app; libveil's app also
		 * gets veil_message.plaintext. */
		if (info->plaintext)
			veil__slog(s, VEIL__LOG_INFO, "message on '%s' accepted in clear: the keyring policy for '%s' allows "
			     "plaintext (not verified)", topic, filter);
	} else {
		*out_len = 0;
		veil__slog(s, VEIL__LOG_INFO, "message on '%s' DROPPED: %s (%s)", bad_topic ? "<NUL in topic>" : topic,
		     veil_strerror(rc), veil_errname(rc));
	}
	free(tcopy);
	if (save)
		veil__writer_receiver_due(r);
	return rc;
}

int veil__receiver_open(struct veil__receiver *r, const char *topic, size_t topic_len, const uint8_t *in,
                        size_t len, uint8_t *out, size_t out_cap, size_t *out_len, struct veil_open_info *info)
{
	return receiver_open(r, topic, topic_len, in, len, out, out_cap, out_len, info, false);
}

int veil__receiver_open_again(struct veil__receiver *r, const char *topic, size_t topic_len, const uint8_t *in,
                              size_t len, uint8_t *out, size_t out_cap, size_t *out_len,
                              struct veil_open_info *info)
{
	return receiver_open(r, topic, topic_len, in, len, out, out_cap, out_len, info, true);
}

void veil__receiver_stats(struct veil__receiver *r, struct veil__recv_stats *out)
{
	pthread_mutex_lock(&r->s->lock);
	*out = r->st;
	pthread_mutex_unlock(&r->s->lock);
}
