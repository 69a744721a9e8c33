/*
 * Request handling (service.h): device messages in, devices' rows, the
 * rate limit and the nonce cache. Issuing bundles, rotations and the
 * revocation statement are in issue.c; both share service_private.h.
 */
#include <libgen.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <sodium.h>

#include "veil/error.h"
#include "../core/bundle.h"
#include "revoke.h"
#include "service_private.h"

/* ---- small state: nonce cache, rate buckets ------------------------------- */

void kd_svc__nonces_prune(struct kd_service *s, uint64_t now)
{
	struct kd_nonce *n, *tmp;
	HASH_ITER(hh, s->nonces, n, tmp) {
		if (n->until <= now) {
			HASH_DEL(s->nonces, n);
			free(n);
			s->n_nonces--;
		}
	}
}

/* VEIL_ERR_REPLAY when seen inside the window, else remembered until
 * timestamp + window (after that the freshness check refuses it). */
static int nonce_check(struct kd_service *s, const uint8_t nonce[VEIL__DEVMSG_NONCE_BYTES], uint64_t ts,
                       uint64_t now)
{
	struct kd_nonce *n = NULL;
	HASH_FIND(hh, s->nonces, nonce, VEIL__DEVMSG_NONCE_BYTES, n);
	if (n && n->until > now)
		return VEIL_ERR_REPLAY;
	if (!n) {
		if (s->n_nonces >= KD_NONCES_MAX)
			kd_svc__nonces_prune(s, now);
		if (s->n_nonces >= KD_NONCES_MAX)
			return VEIL_ERR_REPLAY_FULL; /* never forget a live nonce */
		n = calloc(1, sizeof(*n));
		if (!n)
			return VEIL_ERR_NOMEM;
		memcpy(n->nonce, nonce, VEIL__DEVMSG_NONCE_BYTES);
		HASH_ADD(hh, s->nonces, nonce, VEIL__DEVMSG_NONCE_BYTES, n);
		s->n_nonces++;
	}
	n->until = ts + s->cfg->token_window + 1;
	return VEIL_OK;
}

/* A token bucket per topic client id, checked before any signature is:
 * a flood costs a hash lookup per message beyond the rate. *log: the
 * first drop of each second is audited, the rest only counted. */
static bool rate_ok(struct kd_service *s, const char *cid, uint64_t mono_ms, bool *log)
{
	struct kd_bucket *b = NULL;
	HASH_FIND_STR(s->buckets, cid, b);
	double rate = s->cfg->request_rate;
	*log = false;
	if (!b) {
		if (HASH_COUNT(s->buckets) >= KD_BUCKETS_MAX) {
			struct kd_bucket *x, *tmp;
			HASH_ITER(hh, s->buckets, x, tmp) { /* a full bucket is what a new one would be */
				if ((double)(mono_ms - x->at_ms) / 1000.0 * rate + x->tokens >= rate) {
					HASH_DEL(s->buckets, x);
					free(x);
				}
			}
			if (HASH_COUNT(s->buckets) >= KD_BUCKETS_MAX)
				return false;
		}
		b = calloc(1, sizeof(*b));
		if (!b)
			return false;
		snprintf(b->cid, sizeof(b->cid), "%s", cid);
		b->tokens = rate;
		b->at_ms = mono_ms;
		b->logged_ms = mono_ms - 1000;
		HASH_ADD_STR(s->buckets, cid, b);
	}
	b->tokens += (double)(mono_ms - b->at_ms) / 1000.0 * rate;
	if (b->tokens > rate)
		b->tokens = rate;
	b->at_ms = mono_ms;
	if (b->tokens < 1.0) {
		if (mono_ms - b->logged_ms >= 1000) {
			b->logged_ms = mono_ms;
			*log = true;
		}
		return false;
	}
	b->tokens -= 1.0;
	return true;
}

/* ---- devices ---------------------------------------------------------------- */

struct kd_dev *kd_svc__dev(const struct kd_service *s, const uint8_t cred_id[VEIL_CREDENTIAL_ID_BYTES])
{
	struct kd_dev *d = NULL;
	HASH_FIND(hh, s->devs, cred_id, VEIL_CREDENTIAL_ID_BYTES, d);
	return d;
}

void kd_svc__dev_free(struct kd_dev *d)
{
	free(d->ent);
	free(d->last);
	free(d);
}

struct kd_dev *kd_svc__dev_add(struct kd_service *s, const struct kd_device_row *row)
{
	struct kd_dev *d = calloc(1, sizeof(*d));
	if (!d)
		return NULL;
	d->row = *row;
	HASH_ADD(hh, s->devs, row.cred_id, VEIL_CREDENTIAL_ID_BYTES, d);
	return d;
}

bool kd_svc__revoked_row(const struct kd_service *s, const struct kd_device_row *r)
{
	if (vp_revoke__credential(s->m.rev, r->cred_id) || vp_revoke__client(s->m.rev, r->client_id))
		return true;
	/* An authority removed from the trusted set takes its credentials along. */
	for (size_t i = 0; i < s->m.n_auth; i++) {
		uint8_t id[VEIL_AUTHORITY_ID_BYTES];
		veil_authority_id(s->m.auth[i], id);
		if (!memcmp(id, r->authority_id, sizeof(id)))
			return false;
	}
	return true;
}

static bool trust_revoked(const struct veil_credential *c, void *ctx)
{
	const struct kd_service *s = ctx;
	return vp_revoke__credential(s->m.rev, c->id) || vp_revoke__client(s->m.rev, c->client_id);
}

/* A device keyd had not seen: its per-device scope instances appear (and
 * with them keys for whoever may read them). */
static int dev_instances(struct kd_service *s, const char *cid, uint64_t now)
{
	for (size_t i = 0; i < s->cfg->n_scopes; i++) {
		const struct kd_scope_conf *sc = &s->cfg->scopes[i];
		if (!sc->per_device)
			continue;
		struct kd_inst *in;
		int rc = kd_epochs__instance(&s->E, s->st, sc, cid, now, &in);
		if (rc == VEIL_ERR_TOO_LARGE) {
			char c[80];
			kd_log__audit("scope", "skip", "scope=%s client=%s reason=instance-filter-too-long", sc->filter,
			              kd_log__clean(cid, c, sizeof(c)));
			continue;
		}
		if (rc != VEIL_OK)
			return rc;
		kd_svc__inst_check(s, in);
		size_t added;
		rc = kd_epochs__advance(&s->E, s->st, in, sc, now, &added);
		if (rc != VEIL_OK)
			return rc;
	}
	return VEIL_OK;
}

/* An accepted acknowledgement, audited (store and log) by kd_service__sync. */
static int ack_note(struct kd_service *s, uint64_t t, const char *cid, const char *id, uint64_t version)
{
	if (s->n_acks == s->cap_acks) {
		size_t nc = s->cap_acks ? s->cap_acks * 2 : 64;
		void *p = realloc(s->acks, nc * sizeof(*s->acks));
		if (!p)
			return VEIL_ERR_NOMEM;
		s->acks = p;
		s->cap_acks = nc;
	}
	struct kd_ack_note *a = &s->acks[s->n_acks++];
	a->t = t;
	snprintf(a->fields, sizeof(a->fields), "client=%s cred=%s version=%llu", cid, id, (unsigned long long)version);
	return VEIL_OK;
}

/* Whether a new credential for client_id takes old's place. */
static bool replaced(const struct kd_dev *old, const char *client_id)
{
	return !old->revoked && !strcmp(old->row.client_id, client_id);
}

static void audit_refuse(struct kd_service *s, const char *cid, const struct veil__devmsg *m, bool parsed, int rc)
{
	char c[80], id[40];
	s->stats.refused++;
	kd_log__audit("request", "refuse", "client=%s cred=%s reason=%s", kd_log__clean(cid, c, sizeof(c)),
	              parsed ? kd_log__hex(m->cred.id, VEIL_CREDENTIAL_ID_BYTES, id, sizeof(id)) : "-",
	              veil_errname(rc));
}

int kd_service__message(struct kd_service *s, const char *topic, const uint8_t *payload, size_t len,
                        const struct kd_now *now)
{
	uint64_t t = now->unix_us / 1000000U;
	const size_t plen = strlen(VEIL__TOPIC_REQ_PREFIX);
	const char *cid = topic && !strncmp(topic, VEIL__TOPIC_REQ_PREFIX, plen) ? topic + plen : NULL;
	struct veil__devmsg m;
	memset(&m, 0, sizeof(m));
	if (!cid || !*cid || strchr(cid, '/') || strlen(cid) > VEIL_CLIENT_ID_MAX) {
		char c[80];
		s->stats.refused++;
		kd_log__audit("request", "refuse", "topic=%s reason=not-a-request-topic",
		              kd_log__clean(topic, c, sizeof(c)));
		return VEIL_ERR_PARSE;
	}
	bool log_drop;
	if (!rate_ok(s, cid, now->mono_ms, &log_drop)) {
		s->stats.dropped++;
		if (log_drop) {
			char c[80];
			kd_log__audit("request", "drop", "client=%s reason=rate-limit rate=%u/s dropped=%llu",
			              kd_log__clean(cid, c, sizeof(c)), s->cfg->request_rate,
			              (unsigned long long)s->stats.dropped);
		}
		return VEIL_ERR_TIMEOUT;
	}
	struct veil__trust tr = { .authorities = (const uint8_t(*)[VEIL_PK_BYTES])s->m.auth,
		                  .n_authorities = s->m.n_auth,
		                  .now = t,
		                  .revoked = trust_revoked,
		                  .revoked_ctx = s };
	int rc = veil__devmsg_verify(payload, len, cid, &tr, s->cfg->token_window, &m);
	bool parsed = rc == VEIL_OK || (rc != VEIL_ERR_TRUNCATED && rc != VEIL_ERR_TOO_LARGE &&
	                                rc != VEIL_ERR_VERSION && rc != VEIL_ERR_PARSE &&
	                                rc != VEIL_ERR_RESERVED_FLAGS && rc != VEIL_ERR_NOMEM &&
	                                rc != VEIL_ERR_INVAL);
	if (rc != VEIL_OK) {
		audit_refuse(s, cid, &m, parsed, rc);
		return rc;
	}
	/* Section 11's order: the nonce (step 8), then not older than the
	 * newest accepted message of this credential (step 9). The same second
	 * is fine: a device's request and its acknowledgements often share one,
	 * and demanding a later second made a burst of them run ahead of the
	 * clock until keyd refused them stale. The nonce cache tells messages
	 * of one second apart; across a restart the stored nonce of the newest
	 * one still does. */
	rc = nonce_check(s, m.nonce, m.timestamp, t);
	struct kd_dev *d = kd_svc__dev(s, m.cred.id);
	if (rc == VEIL_OK && d && m.timestamp < d->row.msg_ts)
		rc = VEIL_ERR_OUTDATED;
	else if (rc == VEIL_OK && d && m.timestamp == d->row.msg_ts &&
	         sodium_memcmp(m.nonce, d->row.msg_nonce, sizeof(d->row.msg_nonce)) == 0)
		rc = VEIL_ERR_REPLAY;
	if (rc != VEIL_OK) {
		audit_refuse(s, cid, &m, true, rc);
		return rc;
	}
	/* Accepted: this message's receive key is the one the next bundle is
	 * sealed to, whatever its kind. */
	struct kd_device_row row;
	if (d) {
		row = d->row;
	} else {
		memset(&row, 0, sizeof(row));
		memcpy(row.cred_id, m.cred.id, VEIL_CREDENTIAL_ID_BYTES);
	}
	snprintf(row.client_id, sizeof(row.client_id), "%s", m.cred.client_id);
	memcpy(row.device_pk, m.cred.device_pk, VEIL_PK_BYTES);
	snprintf(row.roles, sizeof(row.roles), "%s", m.cred.roles);
	memcpy(row.authority_id, m.cred.authority_id, sizeof(row.authority_id));
	row.expires_at = m.cred.expires_at;
	row.msg_ts = m.timestamp;
	memcpy(row.msg_nonce, m.nonce, sizeof(row.msg_nonce));
	memcpy(row.rx_pk, m.receive_pk, sizeof(row.rx_pk));
	char c[80], id[40];
	kd_log__hex(m.cred.id, VEIL_CREDENTIAL_ID_BYTES, id, sizeof(id));
	kd_log__clean(cid, c, sizeof(c));
	bool acked = false;
	if (m.kind == VEIL__KIND_ACK) {
		if (m.version > row.acked_version && m.version <= row.issued_version) {
			row.acked_version = m.version;
			acked = true;
		} else {
			kd_log__audit("ack", "ignore", "client=%s cred=%s version=%llu issued=%llu reason=%s", c, id,
			              (unsigned long long)m.version, (unsigned long long)row.issued_version,
			              m.version > row.issued_version ? "never-issued" : "not-newer");
		}
	}
	if (d && m.kind == VEIL__KIND_ACK) {
		/* Nothing to decide on: the row and the audit line wait for
		 * kd_service__sync, which commits every acknowledgement handled
		 * together in one transaction (a rotation's thousand acks cost one
		 * fsync per batch, not one each). Memory is ahead of the store until
		 * then, as it is for a message Paho queued and keyd not yet read. */
		if (acked) {
			rc = ack_note(s, t, c, id, m.version);
			if (rc != VEIL_OK)
				return rc;
		}
		d->row = row;
		d->row_dirty = true;
		s->rows_dirty = true;
		s->stats.accepted++;
		if (acked && m.version == row.issued_version)
			d->due = 0; /* it holds the newest: a deferred re-issue is moot */
		else if (acked && m.version == d->prev_issued)
			kd_svc__reseal_due(s, d, now);
		return VEIL_OK;
	}
	/* A new credential for a client id keyd serves replaces the old one:
	 * both would publish on the one retained bundle topic of that client id,
	 * and the device holds only the newer. The newest accepted message wins.
	 * A revoked one stays until it expires: the statement keeps naming it. */
	struct kd_dev *old, *tmp;
	rc = kd_store__begin(s->st);
	if (rc == VEIL_OK && !d)
		rc = dev_instances(s, row.client_id, t);
	for (old = d ? NULL : s->devs; old; old = old->hh.next) {
		if (rc == VEIL_OK && replaced(old, row.client_id))
			rc = kd_store__device_delete(s->st, old->row.cred_id);
	}
	if (rc == VEIL_OK)
		rc = kd_store__device_put(s->st, &row);
	if (rc == VEIL_OK && acked) {
		char f[160];
		snprintf(f, sizeof(f), "client=%s cred=%s version=%llu", c, id, (unsigned long long)m.version);
		rc = kd_store__audit(s->st, t, "ack", f);
	}
	if (rc == VEIL_OK)
		rc = kd_store__commit(s->st);
	if (rc != VEIL_OK) {
		kd_store__rollback(s->st);
		kd_svc__reload_state(s); /* memory follows the store, never the other way */
		kd_log__audit("store", "error", "client=%s cred=%s during=request error=%s", c, id, veil_errname(rc));
		return rc;
	}
	for (old = d ? NULL : s->devs; old; old = tmp) {
		tmp = old->hh.next;
		if (replaced(old, row.client_id)) {
			char oid[40];
			kd_log__audit("device", "replace", "client=%s cred=%s by=%s", c,
			              kd_log__hex(old->row.cred_id, VEIL_CREDENTIAL_ID_BYTES, oid, sizeof(oid)), id);
			HASH_DEL(s->devs, old);
			kd_svc__dev_free(old);
		}
	}
	if (!d) {
		d = kd_svc__dev_add(s, &row);
		if (!d)
			return VEIL_ERR_NOMEM;
		s->scan = true;
	} else {
		d->row = row;
	}
	s->stats.accepted++;
	if (m.kind == VEIL__KIND_ACK) {
		if (acked)
			kd_log__audit("ack", "record", "client=%s cred=%s version=%llu", c, id, (unsigned long long)m.version);
		return VEIL_OK;
	}
	kd_log__audit("request", "accept", "client=%s cred=%s held=%llu", c, id, (unsigned long long)m.version);
	return kd_svc__consider(s, d, true, now);
}

/* The files a reload reads, in kd_service.sig order. */
static void watched(const struct kd_service *s, const char *paths[KD_WATCHED])
{
	paths[0] = s->watch_path;
	paths[1] = s->cfg->acl_file;
	paths[2] = s->cfg->revocation_file;
	paths[3] = s->cfg->runtime_revocation_file;
	paths[4] = s->cfg->authorities;
	paths[5] = s->cfg->credential;
}

static void sigs_now(const struct kd_service *s, struct vp_file_sig sig[KD_WATCHED])
{
	const char *paths[KD_WATCHED];
	watched(s, paths);
	for (size_t i = 0; i < KD_WATCHED; i++) {
		memset(&sig[i], 0, sizeof(sig[i]));
		if (paths[i])
			vp_file__sig(paths[i], &sig[i]);
	}
}

/* inotify on the watched files' directories (a list replaced by a
 * rename is a new inode: the directory sees it), so a revocation is read
 * when it is written, not at the next once-a-second look, which stays as
 * the fallback (a file system without inotify, a watch that failed). */
static void watch_arm(struct kd_service *s)
{
	if (s->inotify < 0)
		return;
	const char *paths[KD_WATCHED];
	watched(s, paths);
	for (size_t i = 0; i < KD_WATCHED; i++) {
		if (s->wd[i] >= 0)
			inotify_rm_watch(s->inotify, s->wd[i]); /* shared directories: later ones fail, harmless */
		s->wd[i] = -1;
	}
	for (size_t i = 0; i < KD_WATCHED; i++) {
		char dir[PATH_MAX];
		if (!paths[i] || snprintf(dir, sizeof(dir), "%s", paths[i]) >= (int)sizeof(dir))
			continue;
		s->wd[i] = inotify_add_watch(s->inotify, dirname(dir),
		                             IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE | IN_ATTRIB);
	}
}

int kd_service__watch(struct kd_service *s, const char *config_path)
{
	free(s->watch_path);
	s->watch_path = strdup(config_path);
	if (!s->watch_path)
		return VEIL_ERR_NOMEM;
	sigs_now(s, s->sig);
	if (s->inotify < 0)
		s->inotify = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	watch_arm(s);
	return VEIL_OK;
}

int kd_service__watch_fd(const struct kd_service *s)
{
	return s->inotify;
}

void kd_service__watch_read(struct kd_service *s)
{
	const char *paths[KD_WATCHED];
	watched(s, paths);
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	ssize_t n;
	while (s->inotify >= 0 && (n = read(s->inotify, buf, sizeof(buf))) > 0) {
		for (char *p = buf; p < buf + n;) {
			const struct inotify_event *ev = (const struct inotify_event *)(void *)p;
			for (size_t i = 0; ev->len && i < KD_WATCHED; i++) {
				char name[PATH_MAX];
				if (paths[i] && snprintf(name, sizeof(name), "%s", paths[i]) < (int)sizeof(name) &&
				    !strcmp(basename(name), ev->name))
					s->watch_kick = true;
			}
			if (ev->mask & IN_Q_OVERFLOW)
				s->watch_kick = true;
			p += sizeof(*ev) + ev->len;
		}
	}
}

void kd_svc__poll_files(struct kd_service *s, const struct kd_now *now)
{
	if (!s->watch_path || (!s->watch_kick && now->mono_ms - s->watch_ms < 1000))
		return;
	s->watch_kick = false;
	s->watch_ms = now->mono_ms;
	struct vp_file_sig cur[KD_WATCHED];
	sigs_now(s, cur);
	bool changed = false;
	for (size_t i = 0; i < KD_WATCHED; i++)
		changed = changed || !vp_file__sig_equal(&cur[i], &s->sig[i]);
	if (!changed)
		return;
	/* Copies: a successful reload frees the old config the paths live in. */
	const char *named[KD_WATCHED];
	watched(s, named);
	char before[KD_WATCHED][PATH_MAX];
	bool kept[KD_WATCHED]; /* the same file before and after the reload */
	for (size_t i = 0; i < KD_WATCHED; i++)
		kept[i] = named[i] && snprintf(before[i], sizeof(before[i]), "%s", named[i]) < (int)sizeof(before[i]);
	char err[512] = "";
	if (kd_service__reload(s, s->watch_path, now, err, sizeof(err)) != VEIL_OK)
		kd_log__audit("config", "reload-failed", "why=changed kept=old error=%s", err);
	/* Remember the files as they were before the reload read them, not
	 * after: one written again meanwhile (a credential deleted, then saved,
	 * while the reload found it missing) differs from this snapshot and is
	 * read again; a broken file is retried only when it changes. A file the
	 * reload newly names has no "before": it is taken as found now. */
	const char *after[KD_WATCHED];
	watched(s, after);
	for (size_t i = 0; i < KD_WATCHED; i++) {
		if (kept[i] && after[i] && !strcmp(before[i], after[i]))
			s->sig[i] = cur[i];
		else if (after[i])
			vp_file__sig(after[i], &s->sig[i]);
		else
			memset(&s->sig[i], 0, sizeof(s->sig[i]));
	}
	watch_arm(s); /* the reload may name other files */
}

void kd_service__set_publisher(struct kd_service *s, kd_publish_fn fn, void *ctx)
{
	s->publish = fn;
	s->publish_ctx = ctx;
}

void kd_service__stats(const struct kd_service *s, struct kd_stats *out)
{
	*out = s->stats;
}

const struct kd_config *kd_service__config(const struct kd_service *s)
{
	return s->cfg;
}

void kd_svc__free_state(struct kd_service *s)
{
	struct kd_dev *d, *dt;
	HASH_ITER(hh, s->devs, d, dt) {
		HASH_DEL(s->devs, d);
		kd_svc__dev_free(d);
	}
	struct kd_nonce *n, *nt;
	HASH_ITER(hh, s->nonces, n, nt) {
		HASH_DEL(s->nonces, n);
		free(n);
	}
	s->n_nonces = 0;
	struct kd_bucket *b, *bt;
	HASH_ITER(hh, s->buckets, b, bt) {
		HASH_DEL(s->buckets, b);
		free(b);
	}
	kd_epochs__free(&s->E);
}

void kd_service__free(struct kd_service **sp)
{
	if (!sp || !*sp)
		return;
	struct kd_service *s = *sp;
	kd_svc__free_state(s);
	kd_material__free(&s->m);
	kd_config__free(s->cfg);
	free(s->cfg);
	free(s->watch_path);
	if (s->inotify >= 0)
		close(s->inotify);
	free(s->acks);
	free(s);
	*sp = NULL;
}
