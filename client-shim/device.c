/*
 * The device side of the key service (device.h): receive keys, granted
 * epochs, superseded epochs, requests and acknowledgements, readiness, and
 * the keeper thread that expires keys, sends device messages and asks
 * again. Revocation statements: device_revoked.c.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "device_private.h"
#include "util.h"

#define RETRY_MIN_MS 5000U         /* ask again when no bundle came, backing off */
#define RETRY_MAX_MS 60000U
#define WANT_MIN_MS 5000U          /* an unknown key id asks at most this often */

void veil__device_log(const struct veil__device *d, int level, const char *fmt, ...)
{
	if (!d->log)
		return;
	char buf[640];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	d->log(d->log_ctx, level, buf);
}

static char *join(const char *dir, const char *name)
{
	size_t n = strlen(dir) + 1U + strlen(name) + 1U;
	char *p = malloc(n);
	if (p)
		snprintf(p, n, "%s/%s", dir, name);
	return p;
}

/* ---- granted keys -------------------------------------------------------- */

/* Hand the current epochs to the session, which composes its keyring: the
 * granted epochs not yet past accept-until, then the superseded ones (for
 * receiving only). The keys are copied under the lock and handed over
 * without it (the session takes its own lock). */
static void publish_keys(struct veil__device *d)
{
	if (!d->keys_changed)
		return;
	pthread_mutex_lock(&d->publish_lock);
	pthread_mutex_lock(&d->lock);
	size_t cap = (d->grants ? d->grants->n : 0) + d->nsup, n = 0;
	struct veil__grant *copy = cap ? sodium_malloc(cap * sizeof(*copy)) : NULL;
	uint64_t now = (uint64_t)time(NULL);
	for (size_t i = 0; copy && d->grants && i < d->grants->n; i++) {
		if (d->grants->g[i].accept_until > now)
			copy[n++] = d->grants->g[i];
	}
	for (size_t i = 0; copy && i < d->nsup; i++) {
		copy[n] = d->sup[i].g;
		copy[n++].flags &= (uint8_t)~VEIL__GRANT_MAY_SEND;
	}
	pthread_mutex_unlock(&d->lock);
	struct veil__keyring_grant *g = n ? calloc(n, sizeof(*g)) : NULL;
	if (n && !g)
		n = 0;
	for (size_t i = 0; i < n; i++)
		g[i] = (struct veil__keyring_grant){ copy[i].scope, copy[i].key_id, copy[i].key, copy[i].send_from,
			                             copy[i].send_until, copy[i].accept_until,
			                             (copy[i].flags & VEIL__GRANT_SIGNED) != 0,
			                             (copy[i].flags & VEIL__GRANT_MAY_SEND) != 0 };
	if (!cap || copy)
		d->keys_changed(d->keys_ctx, g, n);
	else
		veil__device_log(d, VEIL__LOG_ERROR, "out of memory handing granted keys over: the old ones stay in use");
	free(g);
	if (copy)
		sodium_free(copy); /* wipes */
	pthread_mutex_unlock(&d->publish_lock);
}

/* ---- device messages ----------------------------------------------------- */

/* Caller holds the lock. A fresh receive key, remembered (the oldest of
 * RX_KEYS goes), then the signed message; the caller sends it. */
static int devmsg(struct veil__device *d, uint8_t kind, uint64_t version, uint8_t *out, size_t cap, size_t *len)
{
	if (d->nrx == RX_KEYS) {
		veil__rxkey_free(&d->rx[0].k);
		memmove(&d->rx[0], &d->rx[1], (RX_KEYS - 1) * sizeof(d->rx[0]));
		d->nrx--;
		memset(&d->rx[d->nrx], 0, sizeof(d->rx[0]));
	}
	struct rx *r = &d->rx[d->nrx];
	/* keyd takes a credential's messages only with timestamps that never go
	 * back (PROTOCOL.md section 11, step 9): a clock stepped back repeats
	 * the last one. Never ahead of the clock: a burst of acknowledgements
	 * would otherwise run past keyd's freshness window. */
	uint64_t now = (uint64_t)time(NULL), ts = now > d->last_ts ? now : d->last_ts;
	int rc = veil__rxkey_generate(&r->k);
	if (rc != VEIL_OK)
		return rc;
	randombytes_buf(r->nonce, sizeof(r->nonce));
	struct veil__devmsg_params p = {
		.device = d->identity,
		.credential = d->credential,
		.credential_len = d->credential_len,
		.client_id = d->client_id,
		.kind = kind,
		.timestamp = ts,
		.nonce = r->nonce,
		.receive_pk = veil__rxkey_public(r->k),
		.version = version,
	};
	rc = veil__devmsg_build(&p, out, cap, len);
	if (rc != VEIL_OK) {
		veil__rxkey_free(&r->k);
		return rc;
	}
	d->nrx++;
	d->last_ts = ts;
	return VEIL_OK;
}

static const char *kind_name(uint8_t kind)
{
	return kind == VEIL__KIND_REQUEST ? "request" : "acknowledgement";
}

static void send_devmsg(struct veil__device *d, uint8_t kind)
{
	veil__device_send(d, kind, NULL);
}

void veil__device_send(struct veil__device *d, uint8_t kind, const uint64_t *version)
{
	pthread_mutex_lock(&d->lock);
	if (!d->send || !d->connected) {
		pthread_mutex_unlock(&d->lock);
		return; /* not connected: the next connect asks */
	}
	if (d->nout == OUT_MAX) { /* only the newest matter to keyd */
		memmove(&d->out[0], &d->out[1], (OUT_MAX - 1) * sizeof(d->out[0]));
		d->nout--;
	}
	struct out *o = &d->out[d->nout];
	int rc = devmsg(d, kind, version ? *version : d->have_version ? d->version : 0, o->buf, sizeof(o->buf), &o->len);
	if (rc == VEIL_OK) {
		o->kind = kind;
		d->nout++;
		if (kind == VEIL__KIND_REQUEST) {
			d->awaiting = true;
			d->request_ms = veil__mono_ms();
		}
	}
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->lock);
	if (rc != VEIL_OK)
		veil__device_log(d, VEIL__LOG_WARNING, "key service %s not built (%s)", kind_name(kind), veil_errname(rc));
}

/* Send what is queued, in order, on the calling thread; stops at the first
 * VEIL__SEND_LATER (the channel wants another thread). A failed send is
 * dropped (a request is asked again by the keeper, an acknowledgement
 * only informs keyd). Returns whether the channel said later. */
static bool flush(struct veil__device *d)
{
	bool later = false;
	pthread_mutex_lock(&d->send_lock);
	for (;;) {
		pthread_mutex_lock(&d->lock);
		veil__send_fn send = d->send;
		void *ctx = d->send_ctx;
		if (!d->nout || !d->connected || !send) {
			d->nout = d->connected ? d->nout : 0;
			pthread_mutex_unlock(&d->lock);
			break;
		}
		struct out o = d->out[0]; /* sent outside the lock: the front end may block */
		pthread_mutex_unlock(&d->lock);
		int rc = send(ctx, d->req_topic, o.buf, o.len);
		if (rc == VEIL__SEND_LATER) {
			later = true;
			break;
		}
		pthread_mutex_lock(&d->lock);
		if (d->nout && !memcmp(d->out[0].buf, o.buf, o.len)) {
			memmove(&d->out[0], &d->out[1], (d->nout - 1) * sizeof(d->out[0]));
			d->nout--;
		}
		pthread_mutex_unlock(&d->lock);
		if (rc != VEIL_OK)
			veil__device_log(d, VEIL__LOG_WARNING, "key service %s not sent (%s): asking again later", kind_name(o.kind),
			     veil_errname(rc));
		else
			veil__device_log(d, VEIL__LOG_DEBUG, "key service %s sent (holding version %llu)", kind_name(o.kind),
			     (unsigned long long)d->version);
	}
	pthread_mutex_unlock(&d->send_lock);
	return later;
}

/* ---- bundles ------------------------------------------------------------- */

static bool in_grants(const struct veil__grants *gs, uint32_t key_id);

/* Caller holds the lock. key_id's epoch is dropped for good. */
static void gone_note(struct veil__device *d, uint32_t key_id)
{
	d->gone[d->ngone++ % GONE_IDS] = key_id;
}

bool veil__device_gone(struct veil__device *d, uint32_t key_id)
{
	pthread_mutex_lock(&d->lock);
	size_t n = d->ngone < GONE_IDS ? d->ngone : GONE_IDS;
	bool gone = false;
	for (size_t i = 0; i < n && !gone; i++)
		gone = d->gone[i] == key_id;
	/* Granted again after all (not by keyd, whose ids are never reused,
	 * but a bundle is the authority): not gone. */
	gone = gone && !in_grants(d->grants, key_id);
	pthread_mutex_unlock(&d->lock);
	return gone;
}

/* Caller holds the lock. Room for n more superseded epochs. */
static int sup_reserve(struct veil__device *d, size_t n)
{
	if (d->nsup + n <= d->supcap)
		return VEIL_OK;
	size_t cap = d->supcap ? d->supcap * 2 : 16;
	while (cap < d->nsup + n)
		cap *= 2;
	struct superseded *s = sodium_malloc(cap * sizeof(*s));
	if (!s)
		return VEIL_ERR_NOMEM;
	if (d->sup) {
		memcpy(s, d->sup, d->nsup * sizeof(*s));
		sodium_free(d->sup);
	}
	d->sup = s;
	d->supcap = cap;
	return VEIL_OK;
}

static bool in_grants(const struct veil__grants *gs, uint32_t key_id)
{
	for (size_t i = 0; gs && i < gs->n; i++)
		if (gs->g[i].key_id == key_id)
			return true;
	return false;
}

/* Caller holds the lock. Epochs of the old set that a grant of the new one
 * supersedes (same scope, smaller key id, not granted again) stay for
 * receiving during that grant's grace; every other epoch not in the new
 * bundle goes at once (the bundle holds every key the device may have). */
static int supersede(struct veil__device *d, const struct veil__grants *fresh)
{
	uint64_t now = veil__mono_ms();
	for (size_t i = 0; d->grants && i < d->grants->n; i++) {
		const struct veil__grant *old = &d->grants->g[i];
		if (in_grants(fresh, old->key_id))
			continue;
		uint32_t grace = 0;
		bool superseded = false;
		for (size_t k = 0; k < fresh->n; k++) {
			const struct veil__grant *g = &fresh->g[k];
			if ((g->flags & VEIL__GRANT_SUPERSEDES) && g->key_id > old->key_id && !strcmp(g->scope, old->scope)) {
				superseded = true;
				grace = g->grace_s > grace ? g->grace_s : grace;
			}
		}
		if (!superseded || grace == 0)
			continue;
		int rc = sup_reserve(d, 1);
		if (rc != VEIL_OK)
			return rc;
		d->sup[d->nsup].g = *old;
		d->sup[d->nsup].drop_at_ms = now + (uint64_t)grace * 1000U;
		d->nsup++;
	}
	return VEIL_OK;
}

static int apply_bundle(struct veil__device *d, const uint8_t *payload, size_t len)
{
	pthread_mutex_lock(&d->lock);
	struct veil__rxkey *keys[RX_KEYS];
	for (size_t i = 0; i < d->nrx; i++)
		keys[i] = d->rx[i].k;
	struct veil__bundle_self self = {
		.cred = &d->cred,
		.rxkeys = keys,
		.n_rxkeys = d->nrx,
		.held_version = d->have_version ? d->version : 0,
		/* Without a version of its own a device trusts only a bundle that
		 * answers its latest request: a retained old bundle cannot roll
		 * it back to keys it no longer should hold. */
		.echo_nonce = d->have_version ? NULL : (d->nrx ? d->rx[d->nrx - 1].nonce : (const uint8_t *)""),
	};
	if (!d->have_version && self.n_rxkeys == 0) {
		pthread_mutex_unlock(&d->lock);
		veil__device_log(d, VEIL__LOG_INFO, "bundle ignored: no request of this device answered yet");
		return VEIL_ERR_NO_NONCE_ECHO;
	}
	struct veil__trust t = { (const uint8_t(*)[VEIL_PK_BYTES])d->authorities, d->n_authorities,
		                 (uint64_t)time(NULL), veil__device_rev_signer, d };
	struct veil__bundle_view v;
	size_t idx = 0;
	struct veil__grants *fresh = NULL;
	/* Under the lock: the keeper may rotate the receive keys meanwhile
	 * (rev_signer takes only rev_lock). */
	int rc = veil__bundle_open(payload, len, &t, &self, &v, &idx, &fresh);
	if (rc != VEIL_OK) {
		pthread_mutex_unlock(&d->lock);
		/* Signed by keyd for this device, but sealed to a receive key it
		 * has spent: keyd sealed it before our latest message reached it,
		 * so keyd holds something newer for us. Ask again (rate limited). */
		if (rc == VEIL_ERR_WRONG_RECEIVE_KEY)
			veil__device_want_bundle(d);
		if (rc == VEIL_ERR_OUTDATED)
			veil__device_log(d, VEIL__LOG_DEBUG, "bundle not newer than version %llu: kept what is held",
			     (unsigned long long)self.held_version);
		else
			veil__device_log(d, VEIL__LOG_WARNING, "bundle refused: %s (%s); the keys held stay", veil_strerror(rc),
			     veil_errname(rc));
		return rc;
	}
	rc = supersede(d, fresh);
	struct veil__grants *old = d->grants;
	if (rc == VEIL_OK) {
		d->grants = fresh;
		d->version = v.version;
		d->have_version = true;
		/* Another keyd (a new store, a restored one) may hand out key ids
		 * again: what the old one's dropped ids said holds no more. */
		if (d->have_signer && sodium_memcmp(d->version_signer, v.signer.id, VEIL_CREDENTIAL_ID_BYTES) != 0)
			d->ngone = 0;
		memcpy(d->version_signer, v.signer.id, VEIL_CREDENTIAL_ID_BYTES);
		d->have_signer = true;
		/* In use from here; durable shortly after, written by the keeper,
		 * which acknowledges the version only once it is on disk
		 * (device_keys.c; docs/KEYS.md, "Crash semantics"). */
		veil__device_keys_due(d, true);
	}
	if (rc != VEIL_OK) {
		pthread_mutex_unlock(&d->lock);
		veil__grants_free(&fresh);
		veil__device_log(d, VEIL__LOG_ERROR, "bundle version %llu not applied (%s): the keys held stay",
		     (unsigned long long)v.version, veil_errname(rc));
		return rc;
	}
	veil__grants_free(&old);
	/* The receive key that opened it and every older one are spent. */
	for (size_t i = 0; i <= idx && i < d->nrx; i++)
		veil__rxkey_free(&d->rx[i].k);
	memmove(&d->rx[0], &d->rx[idx + 1], (d->nrx - idx - 1) * sizeof(d->rx[0]));
	d->nrx -= idx + 1;
	memset(&d->rx[d->nrx], 0, (RX_KEYS - d->nrx) * sizeof(d->rx[0]));
	d->awaiting = false;
	d->want_pending = false;
	d->applied = true;
	d->retry_ms = RETRY_MIN_MS;
	size_t ngrants = d->grants->n;
	pthread_mutex_unlock(&d->lock);
	publish_keys(d);
	/* Said once the keys are in use. */
	veil__device_log(d, VEIL__LOG_INFO, "key service bundle version %llu applied: %zu epoch(s)", (unsigned long long)v.version,
	     ngrants);
	if (!d->keys_path)
		send_devmsg(d, VEIL__KIND_ACK); /* memory only: nothing to wait for */
	pthread_cond_broadcast(&d->cond);
	return VEIL_OK;
}

/* ---- the keeper ---------------------------------------------------------- */

/* Caller holds the lock. Drop what is past its time; true when the set of
 * epochs changed. Forward secrecy by epochs: a key past accept-until is
 * wiped from memory and the key file is rewritten without it. */
static bool expire(struct veil__device *d, uint64_t now_s, uint64_t now_ms, uint64_t *next_ms)
{
	bool changed = false;
	if (d->grants) {
		size_t w = 0;
		for (size_t i = 0; i < d->grants->n; i++) {
			struct veil__grant *g = &d->grants->g[i];
			if (g->accept_until <= now_s) {
				gone_note(d, g->key_id);
				changed = true;
				continue;
			}
			uint64_t in = (g->accept_until - now_s) * 1000U;
			if (now_ms + in < *next_ms)
				*next_ms = now_ms + in;
			if (w != i)
				d->grants->g[w] = *g;
			w++;
		}
		if (w != d->grants->n) {
			sodium_memzero(&d->grants->g[w], (d->grants->n - w) * sizeof(d->grants->g[0]));
			d->grants->n = w;
			veil__device_keys_due(d, false); /* written before the keys are handed over */
		}
	}
	size_t w = 0;
	for (size_t i = 0; i < d->nsup; i++) {
		if (d->sup[i].drop_at_ms <= now_ms || d->sup[i].g.accept_until <= now_s) {
			gone_note(d, d->sup[i].g.key_id);
			changed = true;
			continue;
		}
		if (d->sup[i].drop_at_ms < *next_ms)
			*next_ms = d->sup[i].drop_at_ms;
		d->sup[w++] = d->sup[i];
	}
	if (w != d->nsup)
		sodium_memzero(&d->sup[w], (d->nsup - w) * sizeof(d->sup[0]));
	d->nsup = w;
	veil__device_rev_expire(d, now_s);
	return changed;
}

static void *keeper_main(void *arg)
{
	struct veil__device *d = arg;
	pthread_mutex_lock(&d->lock);
	while (!d->stop) {
		uint64_t now_ms = veil__mono_ms(), next = now_ms + 3600U * 1000U;
		bool changed = expire(d, (uint64_t)time(NULL), now_ms, &next);
		bool ask = d->connected && d->awaiting && now_ms - d->request_ms >= d->retry_ms;
		if (ask)
			d->retry_ms = d->retry_ms * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : d->retry_ms * 2;
		if (d->connected && d->awaiting && d->request_ms + d->retry_ms < next)
			next = d->request_ms + d->retry_ms;
		/* A bundle is wanted and no request is out (a refused bundle, a
		 * want that came too soon after the last one): ask once the rate
		 * limit allows; an unanswered request then backs off as above. */
		bool want = d->connected && d->want_pending && !d->awaiting;
		if (want && now_ms - d->want_ms >= WANT_MIN_MS) {
			d->want_ms = now_ms;
			ask = true;
		} else if (want && d->want_ms + WANT_MIN_MS < next) {
			next = d->want_ms + WANT_MIN_MS;
		}
		bool save = d->save_due && now_ms >= d->save_retry_ms;
		if (d->save_due && !save && d->save_retry_ms < next)
			next = d->save_retry_ms;
		if (changed || ask || save) {
			/* Deletions reach the disk before the keys are handed over. */
			if (save)
				veil__device_keys_persist(d, true);
			pthread_mutex_unlock(&d->lock);
			if (changed)
				publish_keys(d);
			if (ask) {
				veil__device_log(d, VEIL__LOG_INFO, "no usable bundle from the key service yet: asking again");
				send_devmsg(d, VEIL__KIND_REQUEST);
			}
			pthread_mutex_lock(&d->lock);
			continue;
		}
		if (d->nout && !d->out_later) {
			pthread_mutex_unlock(&d->lock);
			bool later = flush(d);
			pthread_mutex_lock(&d->lock);
			/* Only the front end's own thread may send: veil__device_flush. */
			d->out_later = later;
			continue;
		}
		/* At least once a second: the session's held messages. */
		if (d->tick && next > now_ms + 1000U)
			next = now_ms + 1000U;
		struct timespec until = { (time_t)(next / 1000U), (long)(next % 1000U) * 1000000L };
		pthread_cond_timedwait(&d->cond, &d->lock, &until);
		if (d->tick && !d->stop) {
			pthread_mutex_unlock(&d->lock);
			d->tick(d->keys_ctx);
			pthread_mutex_lock(&d->lock);
		}
	}
	/* Stopping: what is in memory reaches the disk (no acknowledgement). */
	if (d->save_due)
		veil__device_keys_persist(d, false);
	pthread_mutex_unlock(&d->lock);
	return NULL;
}

/* ---- public (internal) API ---------------------------------------------- */

int veil__device_new(const struct veil__device_opts *o, struct veil__device **out, char *err, size_t errlen)
{
	if (!o || !out || !o->client_id || !o->identity || !o->credential)
		return VEIL_ERR_INVAL;
	*out = NULL;
	struct veil__device *d = calloc(1, sizeof(*d));
	if (!d)
		return VEIL_ERR_NOMEM;
	pthread_mutex_init(&d->send_lock, NULL);
	pthread_mutex_init(&d->publish_lock, NULL);
	pthread_mutex_init(&d->rev_lock, NULL);
	pthread_mutex_init(&d->lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&d->cond, &ca);
	pthread_condattr_destroy(&ca);
	d->identity = o->identity;
	d->credential = o->credential;
	d->credential_len = o->credential_len;
	d->log = o->log;
	d->log_ctx = o->log_ctx;
	d->keys_changed = o->keys_changed;
	d->keys_ctx = o->keys_ctx;
	d->tick = o->tick;
	d->retry_ms = RETRY_MIN_MS;
	veil__device_rev_init(d);
	if (!(d->out = sodium_malloc(OUT_MAX * sizeof(*d->out)))) {
		veil__device_free(&d);
		return VEIL_ERR_NOMEM;
	}
	snprintf(d->bundle_topic, sizeof(d->bundle_topic), "%s%s", VEIL__TOPIC_BUNDLE_PREFIX, o->client_id);
	snprintf(d->req_topic, sizeof(d->req_topic), "%s%s", VEIL__TOPIC_REQ_PREFIX, o->client_id);
	int rc = veil_credential_parse(o->credential, o->credential_len, &d->cred);
	if (rc == VEIL_OK && !(d->client_id = strdup(o->client_id)))
		rc = VEIL_ERR_NOMEM;
	if (rc == VEIL_OK && o->n_authorities) {
		if (!(d->authorities = calloc(o->n_authorities, VEIL_PK_BYTES)))
			rc = VEIL_ERR_NOMEM;
		else
			memcpy(d->authorities, o->authorities, o->n_authorities * VEIL_PK_BYTES);
		d->n_authorities = o->n_authorities;
	}
	if (rc == VEIL_OK && o->state_dir) {
		d->keys_path = join(o->state_dir, "keys");
		d->revoked_path = join(o->state_dir, "revoked");
		if (!d->keys_path || !d->revoked_path)
			rc = VEIL_ERR_NOMEM;
		if (rc == VEIL_OK)
			rc = veil__device_keys_load(d, err, errlen);
		if (rc == VEIL_OK)
			rc = veil__device_rev_load(d, err, errlen);
		if (rc == VEIL_OK)
			veil__device_version_recheck(d);
	}
	if (rc == VEIL_OK && pthread_create(&d->keeper, NULL, keeper_main, d) == 0)
		d->keeper_started = true;
	else if (rc == VEIL_OK)
		rc = VEIL_ERR_NOMEM;
	if (rc != VEIL_OK) {
		veil__device_free(&d);
		return rc;
	}
	*out = d;
	return VEIL_OK;
}

void veil__device_free(struct veil__device **dp)
{
	if (!dp || !*dp)
		return;
	struct veil__device *d = *dp;
	if (d->keeper_started) {
		pthread_mutex_lock(&d->lock);
		d->stop = true;
		pthread_cond_broadcast(&d->cond);
		pthread_mutex_unlock(&d->lock);
		pthread_join(d->keeper, NULL);
	}
	veil__grants_free(&d->grants);
	if (d->sup)
		sodium_free(d->sup); /* wipes */
	if (d->out)
		sodium_free(d->out);
	for (size_t i = 0; i < d->nrx; i++)
		veil__rxkey_free(&d->rx[i].k);
	veil__device_rev_free(d);
	free(d->authorities);
	free(d->keys_path);
	free(d->revoked_path);
	free(d->client_id);
	pthread_cond_destroy(&d->cond);
	pthread_mutex_destroy(&d->lock);
	pthread_mutex_destroy(&d->rev_lock);
	pthread_mutex_destroy(&d->publish_lock);
	pthread_mutex_destroy(&d->send_lock);
	sodium_memzero(d, sizeof(*d));
	free(d);
	*dp = NULL;
}

void veil__device_version_recheck(struct veil__device *d)
{
	pthread_mutex_lock(&d->lock);
	bool have = d->have_version && d->have_signer;
	uint8_t signer[VEIL_CREDENTIAL_ID_BYTES];
	memcpy(signer, d->version_signer, sizeof(signer));
	pthread_mutex_unlock(&d->lock);
	if (!have || !d->revoked.credential(d->revoked.ctx, signer))
		return;
	/* A revoked key service credential (a stolen keyd key) could have
	 * raised the version past anything the new keyd would send, and the
	 * device would refuse the new keyd's bundles as outdated for ever: the
	 * version goes, and the device trusts only a bundle that answers its
	 * own latest request (as one without a version does). */
	pthread_mutex_lock(&d->lock);
	d->have_version = false;
	d->version = 0;
	d->have_signer = false;
	pthread_mutex_unlock(&d->lock);
	veil__device_log(d, VEIL__LOG_WARNING, "the bundle held was signed by a revoked key service credential: its "
	                 "version is forgotten and a bundle asked anew");
	veil__device_want_bundle(d);
}

void veil__device_publish_keys(struct veil__device *d)
{
	publish_keys(d);
}

void veil__device_set_send(struct veil__device *d, veil__send_fn fn, void *ctx)
{
	/* send_lock first, as flush takes it: a send running on the keeper
	 * ends before this returns, so a front end that detaches (fn NULL)
	 * may destroy its connection right after. */
	pthread_mutex_lock(&d->send_lock);
	pthread_mutex_lock(&d->lock);
	d->send = fn;
	d->send_ctx = ctx;
	pthread_mutex_unlock(&d->lock);
	pthread_mutex_unlock(&d->send_lock);
}

size_t veil__device_topics(const struct veil__device *d, const char *topics[2])
{
	topics[0] = d->bundle_topic;
	topics[1] = VEIL__TOPIC_REVOCATION;
	return 2;
}

void veil__device_disconnected(struct veil__device *d)
{
	pthread_mutex_lock(&d->lock);
	d->connected = false;
	d->nout = 0; /* the next connect asks anew */
	pthread_mutex_unlock(&d->lock);
}

void veil__device_flush(struct veil__device *d)
{
	pthread_mutex_lock(&d->lock);
	bool any = d->nout > 0;
	pthread_mutex_unlock(&d->lock);
	if (!any)
		return;
	bool later = flush(d);
	pthread_mutex_lock(&d->lock);
	d->out_later = later;
	pthread_mutex_unlock(&d->lock);
}

void veil__device_connected(struct veil__device *d)
{
	pthread_mutex_lock(&d->lock);
	d->connected = true;
	d->out_later = false;
	d->retry_ms = RETRY_MIN_MS;
	pthread_mutex_unlock(&d->lock);
	send_devmsg(d, VEIL__KIND_REQUEST);
}

bool veil__device_topic(const struct veil__device *d, const char *topic)
{
	return topic && (!strcmp(topic, d->bundle_topic) || !strcmp(topic, VEIL__TOPIC_REVOCATION));
}

int veil__device_message(struct veil__device *d, const char *topic, const uint8_t *payload, size_t len)
{
	if (!d || !topic)
		return VEIL_ERR_INVAL;
	if (len == 0)
		return VEIL_OK; /* a cleared retained message: nothing to apply */
	if (!strcmp(topic, d->bundle_topic))
		return apply_bundle(d, payload, len);
	if (!strcmp(topic, VEIL__TOPIC_REVOCATION))
		return veil__device_rev_statement(d, payload, len);
	return VEIL_ERR_INVAL;
}

const struct veil__revoked *veil__device_revoked(struct veil__device *d)
{
	return d ? &d->revoked : NULL;
}

void veil__device_want_bundle(struct veil__device *d)
{
	pthread_mutex_lock(&d->lock);
	uint64_t now = veil__mono_ms();
	d->want_pending = true; /* the keeper asks later when it cannot be now */
	bool ask = d->connected && now - d->want_ms >= WANT_MIN_MS && !(d->awaiting && now - d->request_ms < WANT_MIN_MS);
	if (ask)
		d->want_ms = now;
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->lock);
	if (ask)
		send_devmsg(d, VEIL__KIND_REQUEST);
}

bool veil__device_has_bundle(struct veil__device *d)
{
	pthread_mutex_lock(&d->lock);
	bool have = d->have_version;
	pthread_mutex_unlock(&d->lock);
	return have;
}

/* Under d->lock: a bundle came in this run, or the persisted one still
 * holds an epoch to send with now. */
static bool ready_locked(const struct veil__device *d, uint64_t now)
{
	if (d->applied)
		return true;
	for (size_t i = 0; d->have_version && d->grants && i < d->grants->n; i++) {
		if (d->grants->g[i].send_from <= now && now < d->grants->g[i].send_until)
			return true;
	}
	return false;
}

bool veil__device_ready(struct veil__device *d)
{
	pthread_mutex_lock(&d->lock);
	bool ready = ready_locked(d, (uint64_t)time(NULL));
	pthread_mutex_unlock(&d->lock);
	return ready;
}

bool veil__device_wait_ready(struct veil__device *d, const struct timespec *deadline, const bool *cancel)
{
	pthread_mutex_lock(&d->lock);
	bool ready;
	/* The cancel flag is read under the lock veil__device_wake takes: a
	 * cancel set before the wake is never missed. */
	while (!(ready = ready_locked(d, (uint64_t)time(NULL))) && !d->stop &&
	       !(cancel && __atomic_load_n(cancel, __ATOMIC_ACQUIRE))) {
		if (pthread_cond_timedwait(&d->cond, &d->lock, deadline) == ETIMEDOUT) {
			ready = ready_locked(d, (uint64_t)time(NULL));
			break;
		}
	}
	pthread_mutex_unlock(&d->lock);
	return ready;
}

void veil__device_wake(struct veil__device *d)
{
	pthread_mutex_lock(&d->lock);
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->lock);
}

uint32_t veil__device_hold_seconds(struct veil__device *d)
{
	/* A held message may wait as long as a receiver keeps accepting an
	 * epoch after its send window (the scope's grace), or a superseded
	 * one after a rekey. */
	uint32_t s = 0;
	pthread_mutex_lock(&d->lock);
	for (size_t i = 0; d->grants && i < d->grants->n; i++) {
		const struct veil__grant *g = &d->grants->g[i];
		uint64_t accept = g->accept_until - g->send_until; /* the bundle parser checked the order */
		uint32_t grace = accept > UINT32_MAX ? UINT32_MAX : (uint32_t)accept;
		grace = g->grace_s > grace ? g->grace_s : grace;
		s = grace > s ? grace : s;
	}
	pthread_mutex_unlock(&d->lock);
	return s ? s : HOLD_DEFAULT_S;
}
