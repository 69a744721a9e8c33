/*
 * Bundles out (service.h): entitlement per device, the batch that commits
 * versions, grant rows and epochs in one transaction before anything is
 * published, rotations (time, `veil keys rotate`, revocation), the
 * revocation statement, start and reload.
 */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "veil/error.h"
#include "../core/bundle.h"
#include "../core/util.h"
#include "revoke.h"
#include "service_private.h"

static uint64_t secs(const struct kd_now *now)
{
	return now->unix_us / 1000000U;
}

void kd_svc__inst_check(struct kd_service *s, struct kd_inst *in)
{
	const struct kd_scope_conf *sc = kd_config__scope(s->cfg, in->scope);
	uint8_t attrs = 0;
	bool was = in->usable;
	in->usable = false;
	if (!sc)
		return; /* scope removed from the config: no more grants */
	if (!kd_acl__attrs(s->m.acl, in->filter, in->owner[0] ? in->owner : NULL, &attrs)) {
		kd_log__audit("scope", "refuse", "instance=%s reason=straddles-protection-attributes", in->filter);
		return;
	}
	in->attrs = attrs;
	in->usable = true;
	if (!was)
		kd_log__debug("scope", "usable", "instance=%s attrs=%u", in->filter, attrs);
}

/* d's entitlements, current with the ACL and every instance: recomputed
 * after a reload, extended with the instances that came since. */
int kd_svc__ent_refresh(struct kd_service *s, struct kd_dev *d)
{
	if (d->ent_acl == s->acl_gen && d->ent_seq == s->E.inst_gen)
		return VEIL_OK;
	if (d->ent_acl != s->acl_gen) {
		free(d->ent);
		d->ent = NULL;
		d->n_ent = 0;
		d->ent_seq = 0;
	}
	size_t from = d->n_ent;
	struct kd_who w = { d->row.client_id, d->row.roles };
	int rc = kd_grants__entitle(&s->E, s->m.acl, &w, d->ent_seq, &d->ent, &d->n_ent);
	if (rc != VEIL_OK) {
		d->ent_acl = 0; /* recompute everything next time */
		return rc;
	}
	d->ent_acl = s->acl_gen;
	d->ent_seq = s->E.inst_gen;
	for (size_t i = from; i < d->n_ent; i++) {
		if (d->ent[i].write_only) {
			char c[80];
			kd_log__audit("grant", "write-only", "client=%s instance=%s (granted by write rights, no read of the whole scope)",
			              kd_log__clean(d->row.client_id, c, sizeof(c)), d->ent[i].in->filter);
		}
	}
	return VEIL_OK;
}

static bool eligible(const struct kd_dev *d, uint64_t now)
{
	return !d->revoked && now < d->row.expires_at;
}

/* One device's bundle in a batch: built before the commit, published after. */
struct pending {
	struct kd_dev *d;
	uint8_t *buf;
	size_t len;
	uint64_t version;
	struct kd_grant_ref *refs;
	size_t n;
	const char *why;
};

static int build_one(struct kd_service *s, struct pending *p, const struct kd_now *now)
{
	struct kd_dev *d = p->d;
	struct veil__grants *g = NULL;
	int rc = kd_svc__ent_refresh(s, d);
	if (rc == VEIL_OK)
		rc = kd_grants__collect(d->ent, d->n_ent, s->cfg, secs(now), &g, &p->refs);
	if (rc != VEIL_OK)
		return rc;
	p->n = g->n;
	rc = kd_store__next_version(s->st, now->unix_us, &p->version);
	uint8_t sender[VEIL_SENDER_ID_BYTES];
	veil_sender_id(d->row.device_pk, sender);
	struct veil__bundle_params bp = {
		.keyd = s->m.id,
		.credential = s->m.cred,
		.credential_len = s->m.cred_len,
		.recipient_cred_id = d->row.cred_id,
		.recipient_sender_id = sender,
		.recipient_client_id = d->row.client_id,
		.receive_pk = d->row.rx_pk,
		.echo_nonce = d->row.msg_nonce,
		.version = p->version,
		.grants = g->g,
		.n_grants = g->n,
	};
	size_t cap = rc == VEIL_OK ? veil__bundle_len(&bp) : 0;
	if (rc == VEIL_OK && cap == 0)
		rc = VEIL_ERR_INVAL;
	if (rc == VEIL_OK) {
		p->buf = malloc(cap);
		rc = p->buf ? veil__bundle_build(&bp, p->buf, cap, &p->len) : VEIL_ERR_NOMEM;
	}
	veil__grants_free(&g);
	if (rc == VEIL_OK) {
		struct kd_device_row row = d->row;
		row.issued_version = p->version;
		row.last_issue = secs(now);
		rc = kd_store__grants_set(s->st, d->row.cred_id, p->version, p->refs, p->n);
		if (rc == VEIL_OK)
			rc = kd_store__device_put(s->st, &row);
		if (rc == VEIL_OK) {
			char f[200], c[80], id[40];
			snprintf(f, sizeof(f), "client=%s cred=%s version=%llu grants=%zu why=%s",
			         kd_log__clean(d->row.client_id, c, sizeof(c)),
			         kd_log__hex(d->row.cred_id, VEIL_CREDENTIAL_ID_BYTES, id, sizeof(id)),
			         (unsigned long long)p->version, p->n, p->why);
			rc = kd_store__audit(s->st, secs(now), "bundle", f);
		}
	}
	return rc;
}

static void pending_free(struct pending *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(p[i].buf);
		free(p[i].refs);
	}
	free(p);
}

/* Commit every bundle of the batch (inside the caller's open transaction,
 * which this ends), then publish them. */
static int commit_and_publish(struct kd_service *s, struct pending *p, size_t n, const struct kd_now *now)
{
	int rc = VEIL_OK;
	for (size_t i = 0; rc == VEIL_OK && i < n; i++)
		rc = build_one(s, &p[i], now);
	if (rc == VEIL_OK)
		rc = kd_store__commit(s->st);
	if (rc != VEIL_OK) {
		kd_store__rollback(s->st);
		kd_log__audit("store", "error", "during=issue bundles=%zu error=%s", n, veil_errname(rc));
		pending_free(p, n);
		kd_svc__reload_state(s);
		return rc;
	}
	for (size_t i = 0; i < n; i++) {
		struct kd_dev *d = p[i].d;
		d->prev_issued = d->row.issued_version;
		d->row.issued_version = p[i].version;
		d->row.last_issue = secs(now);
		free(d->last);
		d->last = p[i].refs;
		d->n_last = p[i].n;
		p[i].refs = NULL;
		d->due = 0;
		d->republish = false;
		d->resealed = !strcmp(p[i].why, "reseal");
		d->reseal_due = false;
		char c[80], id[40], topic[sizeof(VEIL__TOPIC_BUNDLE_PREFIX) + VEIL_CLIENT_ID_MAX];
		snprintf(topic, sizeof(topic), "%s%s", VEIL__TOPIC_BUNDLE_PREFIX, d->row.client_id);
		kd_log__audit("bundle", "issue", "client=%s cred=%s version=%llu grants=%zu why=%s bytes=%zu",
		              kd_log__clean(d->row.client_id, c, sizeof(c)),
		              kd_log__hex(d->row.cred_id, VEIL_CREDENTIAL_ID_BYTES, id, sizeof(id)),
		              (unsigned long long)p[i].version, d->n_last, p[i].why, p[i].len);
		s->stats.bundles++;
		if (s->publish)
			s->publish(s->publish_ctx, topic, p[i].buf, p[i].len, d->row.cred_id, p[i].version);
	}
	pending_free(p, n);
	return VEIL_OK;
}

int kd_svc__consider(struct kd_service *s, struct kd_dev *d, bool request, const struct kd_now *now)
{
	uint64_t t = secs(now);
	if (!eligible(d, t))
		return VEIL_OK;
	int rc = kd_svc__ent_refresh(s, d);
	struct veil__grants *g = NULL;
	struct kd_grant_ref *refs = NULL;
	if (rc == VEIL_OK)
		rc = kd_grants__collect(d->ent, d->n_ent, s->cfg, t, &g, &refs);
	if (rc != VEIL_OK)
		return rc;
	bool news = kd_grants__news(refs, g->n, d->last, d->n_last) || d->row.issued_version == 0;
	veil__grants_free(&g);
	free(refs);
	if (!news && !request)
		return VEIL_OK;
	if (!news && t < d->row.last_issue + s->cfg->reissue_interval) {
		/* Same content, asked again too soon: one bundle per interval, sealed
		 * to the newest receive key when it goes out. */
		if (!d->due) {
			char c[80];
			kd_log__audit("bundle", "defer", "client=%s until=%llu reason=reissue-interval",
			              kd_log__clean(d->row.client_id, c, sizeof(c)),
			              (unsigned long long)d->row.last_issue + s->cfg->reissue_interval);
		}
		d->due = d->row.last_issue + s->cfg->reissue_interval;
		s->stats.deferred++;
		return VEIL_OK;
	}
	struct pending *p = calloc(1, sizeof(*p));
	if (!p)
		return VEIL_ERR_NOMEM;
	p->d = d;
	p->why = news ? "grants" : "request";
	rc = kd_store__begin(s->st);
	if (rc != VEIL_OK) {
		pending_free(p, 1);
		return rc;
	}
	return commit_and_publish(s, p, 1, now);
}

/* A bundle issued while an older one was on its way (a rekey right after
 * a rotation's bundle) is sealed to the newest receive key keyd had then:
 * often the one the older bundle was sealed to, which the device spends
 * when it applies that one. Its acknowledgement of the older version (the
 * one issued just before the newest) brings a newer receive key: the
 * device's keys are sealed to it again at the next sync, rather than the
 * device asking after its rate limit (5 s; a revocation's rekey waited
 * that long on bench_keyd_revoke). Not held back by reissue_interval; at
 * most one reseal follows a bundle issued for any other reason, so
 * acknowledgements cannot make keyd seal without end. */
void kd_svc__reseal_due(struct kd_service *s, struct kd_dev *d, const struct kd_now *now)
{
	if (d->resealed || d->reseal_due)
		return;
	d->reseal_due = true;
	s->reseals_due = true;
	s->reseal_now = *now;
}

/* The reseals marked since the last sync, in one transaction, after the
 * acknowledgements that asked for them are in the store. */
static int reseal_all(struct kd_service *s)
{
	s->reseals_due = false;
	const struct kd_now *now = &s->reseal_now;
	size_t n = 0;
	for (struct kd_dev *d = s->devs; d; d = d->hh.next)
		n += d->reseal_due;
	struct pending *p = n ? calloc(n, sizeof(*p)) : NULL;
	if (!p) {
		for (struct kd_dev *d = s->devs; d; d = d->hh.next)
			d->reseal_due = false; /* the devices ask again themselves */
		return n ? VEIL_ERR_NOMEM : VEIL_OK;
	}
	size_t k = 0;
	for (struct kd_dev *d = s->devs; d; d = d->hh.next) {
		if (!d->reseal_due)
			continue;
		d->reseal_due = false;
		if (d->resealed || !eligible(d, secs(now)))
			continue;
		p[k].d = d;
		p[k].why = "reseal";
		k++;
	}
	if (k == 0) {
		free(p);
		return VEIL_OK;
	}
	int rc = kd_store__begin(s->st);
	if (rc != VEIL_OK) {
		pending_free(p, k);
		return rc;
	}
	return commit_and_publish(s, p, k, now);
}

/* ---- rotations ---------------------------------------------------------- */

/* Shared instances exist, every instance has its current and granted
 * epochs, expired ones are gone. Inside the caller's transaction. */
static int advance_all(struct kd_service *s, uint64_t t, size_t *purged)
{
	for (size_t i = 0; i < s->cfg->n_scopes; i++) {
		const struct kd_scope_conf *sc = &s->cfg->scopes[i];
		if (sc->per_device)
			continue;
		struct kd_inst *in;
		bool is_new = !kd_epochs__find(&s->E, sc->filter);
		int rc = kd_epochs__instance(&s->E, s->st, sc, NULL, t, &in);
		if (rc != VEIL_OK)
			return rc;
		if (is_new)
			kd_svc__inst_check(s, in);
	}
	uint64_t next = UINT64_MAX;
	for (struct kd_inst *in = s->E.by_filter; in; in = in->hh.next) {
		const struct kd_scope_conf *sc = kd_config__scope(s->cfg, in->scope);
		if (!sc || !in->usable)
			continue;
		size_t added;
		int rc = kd_epochs__advance(&s->E, s->st, in, sc, t, &added);
		if (rc != VEIL_OK)
			return rc;
		if (added)
			s->stats.rotations++;
		uint64_t nc = kd_epochs__next_change(in, sc, t);
		if (nc < next)
			next = nc;
	}
	s->next_change = next;
	return kd_epochs__purge(&s->E, s->st, t, s->cfg->rekey_grace, purged);
}

/* Forced rotation of every instance of scope (or of the instances a
 * credential lost). Inside the caller's transaction. */
int kd_svc__rotate_instance(struct kd_service *s, struct kd_inst *in, uint64_t t, const char *why)
{
	const struct kd_scope_conf *sc = kd_config__scope(s->cfg, in->scope);
	if (!sc)
		return VEIL_OK;
	int rc = kd_epochs__rotate(&s->E, s->st, in, sc, t, s->cfg->token_window, s->cfg->rekey_grace);
	if (rc == VEIL_OK) {
		s->stats.rotations++;
		kd_log__audit("epoch", "rotate", "instance=%s key_id=0x%08x why=%s", in->filter,
		              in->n ? in->ep[in->n - 1].key_id : 0U, why);
	}
	return rc;
}

static int rotate_requests(struct kd_service *s, uint64_t t)
{
	int64_t id;
	char scope[VEIL__GRANT_SCOPE_MAX + 1];
	int rc;
	while ((rc = kd_store__rotate_next(s->st, &id, scope, sizeof(scope))) == VEIL_OK) {
		size_t n = 0;
		for (struct kd_inst *in = s->E.by_filter; rc == VEIL_OK && in; in = in->hh.next) {
			if (!strcmp(in->scope, scope) || !strcmp(in->filter, scope)) {
				rc = kd_svc__rotate_instance(s, in, t, "operator");
				n++;
			}
		}
		char result[64];
		snprintf(result, sizeof(result), n ? "rotated %zu instance(s)" : "no such scope", n);
		if (rc == VEIL_OK)
			rc = kd_store__rotate_done(s->st, id, t, result);
		if (rc != VEIL_OK)
			return rc;
		if (!n)
			kd_log__audit("epoch", "rotate-refused", "scope=%.64s reason=no-such-scope", scope);
	}
	return rc == VEIL_ERR_NOT_FOUND ? VEIL_OK : rc;
}

/* ---- tick ------------------------------------------------------------------- */

int kd_service__tick(struct kd_service *s, const struct kd_now *now)
{
	uint64_t t = secs(now);
	int rc = VEIL_OK;
	size_t purged = 0;
	kd_svc__poll_files(s, now);
	if (now->mono_ms - s->prune_ms >= 60000 || s->prune_ms == 0) {
		s->prune_ms = now->mono_ms;
		kd_svc__nonces_prune(s, t);
		/* The audit grows with every bundle (about 0.2 KiB per device and
		 * rotation): kept audit_days, so short epochs do not fill the disk. */
		uint64_t keep = (uint64_t)s->cfg->audit_days * 86400U, gone = 0;
		if (keep && t > keep && kd_store__audit_prune(s->st, t - keep, &gone) == VEIL_OK && gone)
			kd_log__audit("store", "prune", "rows=%llu before=%llu", (unsigned long long)gone,
			              (unsigned long long)(t - keep));
	}
	bool poll = now->mono_ms - s->rotate_poll_ms >= KD_ROTATE_POLL_MS || s->rotate_poll_ms == 0;
	if (poll || t >= s->next_change || s->scan) {
		if (poll)
			s->rotate_poll_ms = now->mono_ms;
		rc = kd_store__begin(s->st);
		if (rc == VEIL_OK && poll)
			rc = rotate_requests(s, t);
		if (rc == VEIL_OK)
			rc = advance_all(s, t, &purged);
		if (rc == VEIL_OK)
			rc = kd_store__commit(s->st);
		if (rc != VEIL_OK) {
			kd_store__rollback(s->st);
			kd_log__audit("store", "error", "during=rotation error=%s", veil_errname(rc));
			kd_svc__reload_state(s);
			return rc;
		}
		if (purged) {
			kd_log__audit("epoch", "purge", "deleted=%zu", purged);
			s->checkpoint_due = true;
			s->checkpoint_ms = 0;
		}
	}
	/* The deleted keys' pages leave the WAL only with a truncating
	 * checkpoint; a reader (`veil keys`) can hold it off: again each second. */
	if (s->checkpoint_due && (s->checkpoint_ms == 0 || now->mono_ms - s->checkpoint_ms >= 1000)) {
		s->checkpoint_ms = now->mono_ms;
		s->checkpoint_due = kd_store__checkpoint(s->st) != VEIL_OK;
		if (s->checkpoint_due)
			kd_log__debug("store", "checkpoint-busy", "retry_ms=1000");
	}
	/* One batch, one transaction: every device lacking a grant, every
	 * deferred re-issue now due, every bundle a restart left unpublished. */
	bool full = s->scan || s->scanned != (s->E.gen ^ (s->acl_gen << 40));
	size_t n = 0, cap = 0;
	struct pending *p = NULL;
	for (struct kd_dev *d = s->devs; d; d = d->hh.next) {
		if (!eligible(d, t))
			continue;
		const char *why = NULL;
		if (d->due && d->due <= t)
			why = "request";
		else if (d->republish)
			why = "restart";
		if (!why && full) {
			struct veil__grants *g = NULL;
			struct kd_grant_ref *refs = NULL;
			rc = kd_svc__ent_refresh(s, d);
			if (rc == VEIL_OK)
				rc = kd_grants__collect(d->ent, d->n_ent, s->cfg, t, &g, &refs);
			if (rc != VEIL_OK) {
				pending_free(p, n);
				return rc;
			}
			if (kd_grants__news(refs, g->n, d->last, d->n_last))
				why = "grants";
			veil__grants_free(&g);
			free(refs);
		}
		if (!why)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			void *np = realloc(p, cap * sizeof(*p));
			if (!np) {
				pending_free(p, n);
				return VEIL_ERR_NOMEM;
			}
			p = np;
		}
		memset(&p[n], 0, sizeof(p[n]));
		p[n].d = d;
		p[n].why = why;
		n++;
	}
	if (full) {
		s->scan = false;
		s->scanned = s->E.gen ^ (s->acl_gen << 40);
	}
	if (n) {
		rc = kd_store__begin(s->st);
		if (rc != VEIL_OK) {
			pending_free(p, n);
			return rc;
		}
		rc = commit_and_publish(s, p, n, now);
	} else {
		free(p);
	}
	if (rc == VEIL_OK && s->statement_due)
		rc = kd_rekey__statement(s, now);
	return rc;
}

int kd_service__next_ms(const struct kd_service *s, const struct kd_now *now)
{
	uint64_t t = secs(now);
	if (s->scan || s->statement_due || s->watch_kick || t >= s->next_change)
		return 0;
	uint64_t since = now->mono_ms - s->rotate_poll_ms;
	return since >= KD_ROTATE_POLL_MS ? 0 : (int)(KD_ROTATE_POLL_MS - since);
}

void kd_service__published(struct kd_service *s, const uint8_t *cred_id, uint64_t version)
{
	struct kd_dev *d = cred_id ? kd_svc__dev(s, cred_id) : NULL;
	if (d && d->row.published_version < version) {
		d->row.published_version = version;
		d->published_dirty = true;
		s->published_dirty = true;
	}
}

int kd_service__sync(struct kd_service *s)
{
	if (!s->published_dirty && !s->rows_dirty)
		return s->reseals_due ? reseal_all(s) : VEIL_OK;
	/* One transaction for every PUBACK and acknowledgement handled
	 * together: a crash before it only makes keyd publish those bundles
	 * again at start, and the devices acknowledge them again. */
	int rc = kd_store__begin(s->st);
	for (struct kd_dev *d = s->devs; rc == VEIL_OK && d; d = d->hh.next) {
		if (d->row_dirty)
			rc = kd_store__device_put(s->st, &d->row);
		else if (d->published_dirty)
			rc = kd_store__device_published(s->st, d->row.cred_id, d->row.published_version);
	}
	for (size_t i = 0; rc == VEIL_OK && i < s->n_acks; i++)
		rc = kd_store__audit(s->st, s->acks[i].t, "ack", s->acks[i].fields);
	if (rc == VEIL_OK)
		rc = kd_store__commit(s->st);
	if (rc != VEIL_OK) {
		kd_store__rollback(s->st); /* kept dirty: the next sync tries again */
		return rc;
	}
	for (struct kd_dev *d = s->devs; d; d = d->hh.next)
		d->published_dirty = d->row_dirty = false;
	for (size_t i = 0; i < s->n_acks; i++)
		kd_log__audit("ack", "record", "%s", s->acks[i].fields);
	s->n_acks = 0;
	s->published_dirty = s->rows_dirty = false;
	return s->reseals_due ? reseal_all(s) : VEIL_OK;
}

void kd_service__reconnected(struct kd_service *s)
{
	s->scan = true;
}

/* ---- start, reload ---------------------------------------------------------- */

static int load_dev(void *ctx, const struct kd_device_row *row)
{
	struct kd_service *s = ctx;
	struct kd_dev *d = kd_svc__dev_add(s, row);
	if (!d)
		return VEIL_ERR_NOMEM;
	d->revoked = kd_svc__revoked_row(s, row);
	d->republish = row->issued_version > row->published_version;
	return kd_store__grants_get(s->st, row->cred_id, &d->last, &d->n_last);
}

int kd_svc__reload_state(struct kd_service *s)
{
	struct kd_dev *d, *dt;
	HASH_ITER(hh, s->devs, d, dt) {
		HASH_DEL(s->devs, d);
		kd_svc__dev_free(d);
	}
	kd_epochs__free(&s->E);
	s->n_acks = 0; /* their rows went with the devices: memory follows the store */
	s->reseals_due = false;
	s->rows_dirty = s->published_dirty = false;
	int rc = kd_epochs__load(&s->E, s->st);
	if (rc == VEIL_OK)
		rc = kd_store__devices_each(s->st, load_dev, s);
	for (struct kd_inst *in = s->E.by_filter; in; in = in->hh.next)
		kd_svc__inst_check(s, in);
	s->scan = true;
	s->next_change = 0;
	return rc;
}

/* Keys a credential may no longer hold, and those of a previous keyd
 * identity, are superseded: one transaction. */
static int take_back(struct kd_service *s, uint64_t t)
{
	int rc = kd_store__begin(s->st);
	if (rc == VEIL_OK)
		rc = kd_rekey__issuer(s, t);
	if (rc == VEIL_OK)
		rc = kd_rekey__lost(s, t);
	if (rc == VEIL_OK)
		rc = kd_store__commit(s->st);
	if (rc != VEIL_OK)
		kd_store__rollback(s->st);
	return rc;
}

int kd_service__new(struct kd_config *cfg, struct kd_material *m, struct kd_store *st, const struct kd_now *now,
                    struct kd_service **out, char *err, size_t errlen)
{
	*out = NULL;
	struct kd_service *s = calloc(1, sizeof(*s));
	if (!s)
		return VEIL_ERR_NOMEM;
	s->inotify = -1;
	for (size_t i = 0; i < KD_WATCHED; i++)
		s->wd[i] = -1;
	s->cfg = malloc(sizeof(*s->cfg));
	if (!s->cfg) {
		free(s);
		return VEIL_ERR_NOMEM;
	}
	*s->cfg = *cfg;
	memset(cfg, 0, sizeof(*cfg));
	s->m = *m;
	memset(m, 0, sizeof(*m));
	s->st = st;
	s->acl_gen = 1;
	int rc = kd_svc__reload_state(s);
	if (rc != VEIL_OK) {
		veil__errf(err, errlen, "%s: cannot load the store: %s", s->cfg->database, veil_strerror(rc));
		kd_service__free(&s);
		return rc;
	}
	/* What changed while keyd was down: revocations, rights, its identity. */
	rc = take_back(s, secs(now));
	if (rc != VEIL_OK) {
		veil__errf(err, errlen, "%s: store error at start: %s", s->cfg->database, veil_strerror(rc));
		kd_service__free(&s);
		return rc;
	}
	s->statement_due = true;
	*out = s;
	return VEIL_OK;
}

int kd_service__reload(struct kd_service *s, const char *config_path, const struct kd_now *now, char *err,
                       size_t errlen)
{
	struct kd_config cfg;
	struct kd_material m;
	int rc = kd_config__load(config_path, &cfg, err, errlen);
	if (rc != VEIL_OK)
		return rc;
	rc = kd_material__load(&cfg, secs(now), &m, err, errlen);
	if (rc != VEIL_OK) {
		kd_config__free(&cfg);
		return rc;
	}
	kd_config__free(s->cfg);
	*s->cfg = cfg;
	kd_material__free(&s->m);
	s->m = m;
	s->acl_gen++;
	s->scan = true;
	s->next_change = 0;
	for (struct kd_inst *in = s->E.by_filter; in; in = in->hh.next)
		kd_svc__inst_check(s, in);
	/* Credentials revoked or stripped of rights since the last load get
	 * nothing more, and every instance they held starts a superseding
	 * epoch; a new keyd identity replaces every key. The statement is
	 * published again: the lists may name credentials keyd never saw. */
	s->statement_due = true;
	rc = take_back(s, secs(now));
	if (rc != VEIL_OK) {
		kd_svc__reload_state(s);
		veil__errf(err, errlen, "%s: store error during reload: %s", s->cfg->database, veil_strerror(rc));
	}
	kd_log__audit("config", "reload", "scopes=%zu authorities=%zu result=%s", s->cfg->n_scopes, s->m.n_auth,
	              veil_errname(rc));
	return rc;
}
