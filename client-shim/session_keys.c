/*
 * The session core's side of the key service (session.h, "the key service"):
 * starting the device side (device.c), composing the keyring from the static
 * keyring file and the granted epochs, routing the key service's messages,
 * and messages held until a key arrives.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "bundle.h"
#include "device.h"
#include "session_private.h"
#include "util.h"

/* ---- composing the keyring --------------------------------------------- */

/* The latest granted epochs, copied (keys in sodium_malloc'd memory), so a
 * reload of the keyring file can compose again without the device. */
struct grant_copy {
	struct veil__keyring_grant g;
	char filter[VEIL__GRANT_SCOPE_MAX + 1];
	uint8_t key[VEIL_KEY_BYTES];
};
struct veil__session_grants {
	size_t n;
	struct grant_copy c[];
};

static void grants_free(struct veil__session_grants **g)
{
	if (*g)
		sodium_free(*g); /* wipes */
	*g = NULL;
}

static void refused_grant(void *ctx, const char *why)
{
	veil__slog(ctx, VEIL__LOG_ERROR, "%s", why);
}

/* Compose static_kr with the saved grants and swap it in; the caller holds
 * compose_lock (one composition at a time). */
static int compose(struct veil__session *s)
{
	size_t n = s->grants ? s->grants->n : 0;
	struct veil__keyring_grant *g = n ? calloc(n, sizeof(*g)) : NULL;
	if (n && !g)
		return VEIL_ERR_NOMEM;
	for (size_t i = 0; i < n; i++)
		g[i] = s->grants->c[i].g;
	struct veil_keyring *kr = NULL;
	int rc = veil__keyring_compose(s->static_kr, s->keyring_path, g, n, &kr, refused_grant, s);
	free(g);
	/* Signed messages are checked against the keyring's authorities: the
	 * authorities file's count as much as its lines (a device of the key
	 * service often has no keyring file at all). */
	if (rc == VEIL_OK && (rc = veil__keyring_add_authorities(kr, (const uint8_t(*)[VEIL_PK_BYTES])s->file_authorities,
	                                                         s->n_file_authorities)) != VEIL_OK)
		veil_keyring_free(&kr);
	if (rc != VEIL_OK) {
		veil__slog(s, VEIL__LOG_ERROR, "keyring with the key service's keys not built (%s): the previous one stays",
		           veil_errname(rc));
		return rc;
	}
	pthread_mutex_lock(&s->lock);
	struct veil_keyring *old = s->kr;
	s->kr = kr;
	pthread_mutex_unlock(&s->lock);
	if (old != s->static_kr)
		veil_keyring_free(&old);
	return VEIL_OK;
}

static void release_held(struct veil__session *s, bool expired_only);

/* The device handed new epochs over. */
static void keys_changed(void *ctx, const struct veil__keyring_grant *g, size_t n)
{
	struct veil__session *s = ctx;
	struct veil__session_grants *copy = sodium_malloc(sizeof(*copy) + n * sizeof(copy->c[0]));
	if (!copy) {
		veil__slog(s, VEIL__LOG_ERROR, "out of memory for the key service's keys: the previous ones stay");
		return;
	}
	copy->n = n;
	for (size_t i = 0; i < n; i++) {
		struct grant_copy *c = &copy->c[i];
		snprintf(c->filter, sizeof(c->filter), "%s", g[i].filter);
		memcpy(c->key, g[i].key, VEIL_KEY_BYTES);
		c->g = g[i];
		c->g.filter = c->filter;
		c->g.key = c->key;
	}
	pthread_mutex_lock(&s->compose_lock);
	struct veil__session_grants *old = s->grants;
	s->grants = copy;
	int rc = compose(s);
	if (rc != VEIL_OK) {
		s->grants = old;
		old = copy;
	}
	pthread_mutex_unlock(&s->compose_lock);
	grants_free(&old);
	if (rc == VEIL_OK)
		release_held(s, false);
}

int veil__session_set_static(struct veil__session *s, struct veil_keyring *kr)
{
	/* A re-read keyring trusts the authorities file's keys too. */
	int arc = veil__keyring_add_authorities(kr, (const uint8_t(*)[VEIL_PK_BYTES])s->file_authorities,
	                                        s->n_file_authorities);
	if (arc != VEIL_OK) {
		veil__slog(s, VEIL__LOG_ERROR, "keyring not re-read: more than %u authorities with the authorities file",
		           VEIL_MAX_AUTHORITIES);
		veil_keyring_free(&kr);
		return arc;
	}
	pthread_mutex_lock(&s->compose_lock);
	struct veil_keyring *old_static = s->static_kr;
	int rc = VEIL_OK;
	if (s->dev) {
		s->static_kr = kr;
		rc = compose(s);
		if (rc != VEIL_OK) {
			s->static_kr = old_static;
			old_static = kr;
		}
	} else {
		pthread_mutex_lock(&s->lock);
		s->static_kr = kr;
		s->kr = kr;
		pthread_mutex_unlock(&s->lock);
	}
	pthread_mutex_unlock(&s->compose_lock);
	veil_keyring_free(&old_static);
	return rc;
}

/* ---- starting and stopping ------------------------------------------------ */

static void tick(void *ctx)
{
	release_held(ctx, true);
}

int veil__session_keys_start(struct veil__session *s, const struct veil__session_opts *o, char *err, size_t errlen)
{
	s->kr = s->static_kr;
	bool on = o->key_service == VEIL__KEYS_ON || (o->key_service == VEIL__KEYS_AUTO && !o->keyring_path);
	if (!on)
		return VEIL_OK;
	if (!s->id || !s->cred) {
		veil__errf(err, errlen, "the key service needs this device's identity and credential");
		return VEIL_ERR_INVAL;
	}
	if (s->n_authorities == 0) {
		veil__errf(err, errlen, "the key service needs the authority's public key (an authorities file, or "
		           "'authority' lines in the keyring) to check what it signs");
		return VEIL_ERR_INVAL;
	}
	struct veil__device_opts d = {
		.client_id = s->client_id,
		.identity = s->id,
		.credential = s->cred,
		.credential_len = s->cred_len,
		.authorities = (const uint8_t(*)[VEIL_PK_BYTES])s->authorities,
		.n_authorities = s->n_authorities,
		.state_dir = s->state_dir,
		.log = s->log,
		.log_ctx = s->log_ctx,
		.keys_changed = keys_changed,
		.keys_ctx = s,
		.tick = tick,
	};
	int rc = veil__device_new(&d, &s->dev, err, errlen);
	if (rc != VEIL_OK)
		return rc;
	/* What the state dir kept: usable before the first connect. */
	veil__device_publish_keys(s->dev);
	return VEIL_OK;
}

void veil__session_keys_stop(struct veil__session *s)
{
	veil__device_free(&s->dev);
	grants_free(&s->grants);
}

const struct veil__revoked *veil__session_revoked(struct veil__session *s)
{
	return s->dev ? veil__device_revoked(s->dev) : NULL;
}

/* ---- the front end's hooks --------------------------------------------- */

bool veil__session_key_service(const struct veil__session *s)
{
	return s && s->dev;
}

void veil__session_set_send(struct veil__session *s, veil__send_fn fn, void *ctx)
{
	if (s && s->dev)
		veil__device_set_send(s->dev, fn, ctx);
}

size_t veil__session_topics(const struct veil__session *s, const char *topics[2])
{
	return s && s->dev ? veil__device_topics(s->dev, topics) : 0;
}

void veil__session_connected(struct veil__session *s)
{
	if (s && s->dev)
		veil__device_connected(s->dev);
}

void veil__session_disconnected(struct veil__session *s)
{
	if (s && s->dev)
		veil__device_disconnected(s->dev);
}

void veil__session_flush(struct veil__session *s)
{
	if (s && s->dev)
		veil__device_flush(s->dev);
}

bool veil__session_service_topic(const struct veil__session *s, const char *topic)
{
	return s && s->dev && veil__device_topic(s->dev, topic);
}

int veil__session_service_message(struct veil__session *s, const char *topic, const uint8_t *payload, size_t len)
{
	return s && s->dev ? veil__device_message(s->dev, topic, payload, len) : VEIL_ERR_INVAL;
}

/* ---- readiness ----------------------------------------------------------- */

bool veil__session_ready(struct veil__session *s)
{
	return !s || !s->dev || veil__device_ready(s->dev);
}

bool veil__session_wait_ready(struct veil__session *s, unsigned timeout_ms, const bool *cancel, bool warn)
{
	if (!s || !s->dev)
		return true;
	struct timespec until = veil__mono_after(timeout_ms);
	if (veil__device_wait_ready(s->dev, &until, cancel))
		return true;
	if (warn && !(cancel && __atomic_load_n(cancel, __ATOMIC_ACQUIRE)))
		veil__session_not_ready(s, timeout_ms);
	return false;
}

void veil__session_not_ready(struct veil__session *s, unsigned waited_ms)
{
	char within[32];
	if (waited_ms % 1000U)
		snprintf(within, sizeof(within), "%u ms", waited_ms);
	else
		snprintf(within, sizeof(within), "%u s", waited_ms / 1000U);
	veil__slog(s, VEIL__LOG_WARNING, "connected, but no bundle came from the key service within %s: publishes "
	           "under its scopes are refused (no-key) until one does (it keeps asking)", within);
}

void veil__session_wake(struct veil__session *s)
{
	if (s && s->dev)
		veil__device_wake(s->dev);
}

/* ---- held messages -------------------------------------------------------- */

bool veil__session_holdable(struct veil__session *s, const char *topic, const uint8_t *in, size_t len, int rc)
{
	if (!s->dev || (rc != VEIL_ERR_UNKNOWN_KEY && rc != VEIL_ERR_NO_POLICY))
		return false;
	struct veil_envelope_view v;
	if (veil_envelope_parse(in, len, &v) != VEIL_OK || v.h.key_id < VEIL_GRANTED_KEY_ID_MIN)
		return false;
	/* An unknown epoch of one of its scopes (or of any topic before the
	 * first bundle: the device does not know its scopes yet), or a topic
	 * no keyring entry covers: a scope instance that came since its last
	 * bundle (a new device of a %c scope a dashboard reads). A topic of the
	 * keyring file is never the key service's. */
	if (rc == VEIL_ERR_UNKNOWN_KEY && !veil__keyring_granted_topic(s->kr, topic) && veil__device_has_bundle(s->dev))
		return false;
	/* An epoch this device dropped (expired, or superseded and its grace
	 * over) never comes back: refused now. Held, it asked keyd for a
	 * bundle every 5 s for as long as it could wait (bench_keyd_revoke's
	 * straggling old-epoch messages did, after every rekey). */
	if (rc == VEIL_ERR_UNKNOWN_KEY && veil__device_gone(s->dev, v.h.key_id))
		return false;
	veil__device_want_bundle(s->dev);
	return true;
}

void veil__receiver_set_held(struct veil__receiver *r, veil__held_fn fn, void *ctx)
{
	pthread_mutex_lock(&r->s->lock);
	r->held_fn = fn;
	r->held_ctx = ctx;
	pthread_mutex_unlock(&r->s->lock);
}

/* Count and log a held message refused for good (unknown-key), as an open
 * would have. */
static void refuse_held(struct veil__receiver *r, const char *topic)
{
	struct veil__session *s = r->s;
	pthread_mutex_lock(&s->lock);
	r->st.refused++;
	r->st.refused_by_err[-VEIL_ERR_UNKNOWN_KEY]++;
	pthread_mutex_unlock(&s->lock);
	veil__slog(s, VEIL__LOG_INFO, "message on '%s' DROPPED: %s (%s)", topic ? topic : "?",
	           veil_strerror(VEIL_ERR_UNKNOWN_KEY), veil_errname(VEIL_ERR_UNKNOWN_KEY));
}

int veil__receiver_hold(struct veil__receiver *r, void *handle, const char *topic)
{
	struct veil__session *s = r->s;
	if (!s->dev || !handle) {
		refuse_held(r, topic);
		return VEIL_ERR_UNKNOWN_KEY;
	}
	uint32_t hold_s = veil__device_hold_seconds(s->dev);
	uint64_t deadline = veil__mono_ms() + (uint64_t)hold_s * 1000U;
	int rc = VEIL_OK;
	pthread_mutex_lock(&s->lock);
	if (!r->held_fn || r->nheld >= VEIL__HELD_MAX) {
		rc = VEIL_ERR_UNKNOWN_KEY;
	} else {
		if (r->nheld == r->heldcap) {
			size_t cap = r->heldcap ? r->heldcap * 2 : 16;
			struct veil__held *h = realloc(r->held, cap * sizeof(*h));
			if (!h)
				rc = VEIL_ERR_NOMEM;
			else {
				r->held = h;
				r->heldcap = cap;
			}
		}
		char *t = rc == VEIL_OK ? strdup(topic ? topic : "") : NULL;
		if (rc == VEIL_OK && !t)
			rc = VEIL_ERR_NOMEM;
		if (rc == VEIL_OK)
			r->held[r->nheld++] = (struct veil__held){ handle, deadline, t };
	}
	pthread_mutex_unlock(&s->lock);
	if (rc != VEIL_OK) {
		veil__slog(s, VEIL__LOG_INFO, "a message waiting for a key of the key service cannot be held (%s)",
		           rc == VEIL_ERR_UNKNOWN_KEY ? "256 already wait" : veil_errname(rc));
		refuse_held(r, topic);
		return VEIL_ERR_UNKNOWN_KEY;
	}
	veil__slog(s, VEIL__LOG_INFO, "message on '%s' held: its key is not here yet, the key service was asked "
	           "(waits up to %u s)", topic ? topic : "?", hold_s);
	return VEIL_OK;
}

/* One receiver's held messages: the due ones (all, for keys that changed;
 * only those past their deadline otherwise) are taken out under the lock and
 * handed to the front end without it; those it keeps come back. */
static void release_receiver(struct veil__receiver *r, bool expired_only)
{
	struct veil__session *s = r->s;
	uint64_t now = veil__mono_ms();
	pthread_mutex_lock(&s->lock);
	veil__held_fn fn = r->held_fn;
	void *ctx = r->held_ctx;
	size_t n = 0, keep = 0;
	struct veil__held *due = r->nheld ? calloc(r->nheld, sizeof(*due)) : NULL;
	for (size_t i = 0; due && i < r->nheld; i++) {
		bool expired = r->held[i].deadline_ms <= now;
		if (expired || !expired_only)
			due[n++] = r->held[i];
		else
			r->held[keep++] = r->held[i];
	}
	if (due)
		r->nheld = keep;
	pthread_mutex_unlock(&s->lock);
	for (size_t i = 0; i < n; i++) {
		bool expired = due[i].deadline_ms <= now;
		if (expired)
			refuse_held(r, due[i].topic);
		bool done = fn(ctx, due[i].handle, expired) || expired;
		if (done) {
			free(due[i].topic);
			continue;
		}
		pthread_mutex_lock(&s->lock);
		if (r->nheld < r->heldcap)
			r->held[r->nheld++] = due[i]; /* keeps its first deadline */
		else
			done = true;
		pthread_mutex_unlock(&s->lock);
		if (done) { /* cannot happen: the array only shrank; refuse rather than lose it silently */
			refuse_held(r, due[i].topic);
			fn(ctx, due[i].handle, true);
			free(due[i].topic);
		}
	}
	free(due);
}

static void release_held(struct veil__session *s, bool expired_only)
{
	/* release_lock keeps a receiver from leaving while its messages are
	 * handed out (veil__receiver_free takes it). */
	pthread_mutex_lock(&s->release_lock);
	pthread_mutex_lock(&s->lock);
	size_t n = 0;
	for (struct veil__receiver *r = s->receivers; r; r = r->next)
		n += r->nheld > 0;
	struct veil__receiver **list = n ? calloc(n, sizeof(*list)) : NULL;
	size_t k = 0;
	for (struct veil__receiver *r = s->receivers; list && r; r = r->next)
		if (r->nheld > 0)
			list[k++] = r;
	pthread_mutex_unlock(&s->lock);
	for (size_t i = 0; i < k; i++)
		release_receiver(list[i], expired_only);
	pthread_mutex_unlock(&s->release_lock);
	free(list);
}

void veil__receiver_drop_held(struct veil__receiver *r)
{
	struct veil__session *s = r->s;
	pthread_mutex_lock(&s->lock);
	struct veil__held *held = r->held;
	size_t n = r->nheld;
	veil__held_fn fn = r->held_fn;
	void *ctx = r->held_ctx;
	r->held = NULL;
	r->nheld = r->heldcap = 0;
	pthread_mutex_unlock(&s->lock);
	for (size_t i = 0; i < n; i++) {
		refuse_held(r, held[i].topic);
		if (fn)
			fn(ctx, held[i].handle, true);
		free(held[i].topic);
	}
	free(held);
}
