/*
 * Taking keys away (issue 13; service_private.h, "rekey.c"): a credential
 * that may no longer hold an instance's keys, because it was revoked, its
 * authority is no longer trusted or its ACL rights are gone, makes every
 * instance in which it still holds a live epoch start a superseding one; a
 * new keyd identity (after a compromise) does that for every instance. And
 * the revocation statement that lets receivers refuse revoked senders.
 *
 * "Holds" is what keyd last committed for it (kd_dev.last): a device never
 * keeps an epoch its newest bundle lacks, but for superseded ones (which
 * are no longer live) and for the instances it lost, which were rotated
 * when it lost them. So a rekey happens once per loss, at the reload that
 * shows it, or at keyd's start for what changed while keyd was down.
 */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>
#include <uthash.h>

#include "veil/error.h"
#include "../core/bundle.h"
#include "revoke.h"
#include "service_private.h"

/* A live epoch's instance, by key id. */
struct live {
	uint32_t key_id;
	struct kd_inst *in;
	UT_hash_handle hh;
};

static void live_free(struct live **map)
{
	struct live *l, *tmp;
	HASH_ITER(hh, *map, l, tmp) {
		HASH_DEL(*map, l);
		free(l);
	}
}

static int live_map(const struct kd_service *s, struct live **map)
{
	*map = NULL;
	for (struct kd_inst *in = s->E.by_filter; in; in = in->hh.next) {
		for (size_t i = 0; i < in->n; i++) {
			if (in->ep[i].superseded_at)
				continue;
			struct live *l = calloc(1, sizeof(*l));
			if (!l) {
				live_free(map);
				return VEIL_ERR_NOMEM;
			}
			l->key_id = in->ep[i].key_id;
			l->in = in;
			HASH_ADD(hh, *map, key_id, sizeof(l->key_id), l);
		}
	}
	return VEIL_OK;
}

static bool entitled(const struct kd_dev *d, const struct kd_inst *in)
{
	for (size_t i = 0; i < d->n_ent; i++)
		if (d->ent[i].in == in)
			return true;
	return false;
}

/* The instances d holds a live epoch of and may no longer have, added to
 * *marks (an instance once); how many of them in *n. stamp tells this
 * device's visit apart from every other. */
static int lost_by(struct kd_service *s, struct kd_dev *d, const struct live *map, bool revoked, uint64_t stamp,
                   struct kd_inst ***marks, size_t *n_marks, size_t *cap, size_t *n)
{
	*n = 0;
	bool refreshed = false;
	for (size_t k = 0; k < d->n_last; k++) {
		struct live *l = NULL;
		HASH_FIND(hh, map, &d->last[k].key_id, sizeof(d->last[k].key_id), l);
		if (!l || !l->in->usable || l->in->lost_by == stamp)
			continue;
		if (!revoked) {
			if (!refreshed) {
				int rc = kd_svc__ent_refresh(s, d);
				if (rc != VEIL_OK)
					return rc;
				refreshed = true;
			}
			if (entitled(d, l->in))
				continue;
		}
		l->in->lost_by = stamp;
		(*n)++;
		if (l->in->lost)
			continue;
		if (*n_marks == *cap) {
			size_t nc = *cap ? *cap * 2 : 16;
			void *p = realloc(*marks, nc * sizeof(**marks));
			if (!p)
				return VEIL_ERR_NOMEM;
			*marks = p;
			*cap = nc;
		}
		l->in->lost = true;
		(*marks)[(*n_marks)++] = l->in;
	}
	return VEIL_OK;
}

int kd_rekey__lost(struct kd_service *s, uint64_t t)
{
	struct live *map = NULL;
	struct kd_inst **marks = NULL;
	size_t n_marks = 0, cap = 0;
	int rc = live_map(s, &map);
	for (struct kd_inst *in = s->E.by_filter; in; in = in->hh.next)
		in->lost = false;
	for (struct kd_dev *d = s->devs; rc == VEIL_OK && d; d = d->hh.next) {
		bool revoked = kd_svc__revoked_row(s, &d->row);
		bool newly = revoked && !d->revoked;
		d->revoked = revoked;
		/* An expired credential keeps what it holds until those epochs end
		 * (docs/SECURITY.md): expiry is routine, not a loss. */
		if (!revoked && t >= d->row.expires_at)
			continue;
		size_t n = 0;
		rc = lost_by(s, d, map, revoked, ++s->lost_stamp, &marks, &n_marks, &cap, &n);
		if (rc == VEIL_OK && (newly || n)) {
			char c[80];
			kd_log__audit(revoked ? "revocation" : "rights", "rekey", "client=%s instances=%zu",
			              kd_log__clean(d->row.client_id, c, sizeof(c)), n);
		}
	}
	for (size_t i = 0; rc == VEIL_OK && i < n_marks; i++)
		rc = kd_svc__rotate_instance(s, marks[i], t, "lost");
	free(marks);
	live_free(&map);
	return rc;
}

int kd_rekey__issuer(struct kd_service *s, uint64_t t)
{
	uint8_t pk[VEIL_PK_BYTES], had[VEIL_PK_BYTES];
	veil_identity_public(s->m.id, pk);
	int rc = kd_store__issuer_get(s->st, had);
	if (rc == VEIL_ERR_NOT_FOUND)
		return kd_store__issuer_set(s->st, pk); /* a new store, or one from before schema 2 */
	if (rc != VEIL_OK || !sodium_memcmp(pk, had, sizeof(pk)))
		return rc;
	size_t n = 0;
	for (struct kd_inst *in = s->E.by_filter; rc == VEIL_OK && in; in = in->hh.next) {
		if (!in->usable)
			continue;
		rc = kd_svc__rotate_instance(s, in, t, "new-keyd-identity");
		n++;
	}
	if (rc == VEIL_OK)
		rc = kd_store__issuer_set(s->st, pk);
	if (rc == VEIL_OK) {
		char was[2 * VEIL_SENDER_ID_BYTES + 1], is[2 * VEIL_SENDER_ID_BYTES + 1];
		uint8_t a[VEIL_SENDER_ID_BYTES], b[VEIL_SENDER_ID_BYTES];
		veil_sender_id(had, a);
		veil_sender_id(pk, b);
		kd_log__audit("keyd", "identity-changed", "was=%s is=%s instances=%zu (every key the previous identity "
		              "issued is superseded)", kd_log__hex(a, sizeof(a), was, sizeof(was)),
		              kd_log__hex(b, sizeof(b), is, sizeof(is)), n);
	}
	return rc;
}

/* ---- the statement -------------------------------------------------------- */

struct entries {
	struct veil__rev_entry *e;
	size_t n, cap;
	int rc;
	const struct kd_service *s;
};

static void entry_add(struct entries *x, uint8_t kind, const uint8_t *id, size_t idlen, uint64_t keep_until)
{
	if (x->rc != VEIL_OK)
		return;
	if (x->n == x->cap) {
		size_t nc = x->cap ? x->cap * 2 : 16;
		void *p = realloc(x->e, nc * sizeof(*x->e));
		if (!p) {
			x->rc = VEIL_ERR_NOMEM;
			return;
		}
		x->e = p;
		x->cap = nc;
	}
	struct veil__rev_entry *e = &x->e[x->n++];
	memset(e, 0, sizeof(*e));
	e->kind = kind;
	memcpy(e->id, id, idlen);
	e->keep_until = keep_until;
}

/* A credential id of the lists that no row keyd knows carries: named
 * without end (keyd cannot tell when it expires; a credential id is never
 * reused). Another keyd's credential, a device that never asked keyd. */
static void unknown_credential(void *arg, const uint8_t *credential_id, const char *client_id)
{
	struct entries *x = arg;
	(void)client_id;
	if (!credential_id || kd_svc__dev(x->s, credential_id))
		return;
	entry_add(x, VEIL__REV_CREDENTIAL, credential_id, VEIL_CREDENTIAL_ID_BYTES, UINT64_MAX);
}

int kd_rekey__statement(struct kd_service *s, const struct kd_now *now)
{
	uint64_t t = now->unix_us / 1000000U;
	struct entries x = { .s = s };
	for (struct kd_dev *d = s->devs; d; d = d->hh.next) {
		if (!d->revoked || d->row.expires_at <= t)
			continue;
		uint8_t sid[VEIL_SENDER_ID_BYTES];
		veil_sender_id(d->row.device_pk, sid);
		entry_add(&x, VEIL__REV_CREDENTIAL, d->row.cred_id, VEIL_CREDENTIAL_ID_BYTES, d->row.expires_at);
		entry_add(&x, VEIL__REV_SENDER, sid, sizeof(sid), d->row.expires_at);
	}
	vp_revoke__each(s->m.rev, unknown_credential, &x);
	int rc = x.rc;
	if (rc == VEIL_OK && x.n > VEIL__REV_ENTRIES_MAX)
		rc = VEIL_ERR_TOO_LARGE;
	uint64_t version = 0;
	if (rc == VEIL_OK)
		rc = kd_store__begin(s->st);
	if (rc == VEIL_OK) {
		rc = kd_store__next_version(s->st, now->unix_us, &version);
		if (rc == VEIL_OK)
			rc = kd_store__commit(s->st);
		else
			kd_store__rollback(s->st);
	}
	size_t len = rc == VEIL_OK ? veil__revstmt_len(x.n, s->m.cred_len) : 0;
	uint8_t *buf = len ? malloc(len) : NULL;
	if (rc == VEIL_OK && !buf)
		rc = VEIL_ERR_NOMEM;
	if (rc == VEIL_OK) {
		struct veil__revstmt_params p = { .keyd = s->m.id, .credential = s->m.cred,
			                          .credential_len = s->m.cred_len, .version = version,
			                          .issued_at = t, .entries = x.e, .n_entries = x.n };
		rc = veil__revstmt_build(&p, buf, len, &len);
	}
	if (rc == VEIL_OK) {
		kd_log__audit("revocation", "statement", "version=%llu entries=%zu", (unsigned long long)version, x.n);
		s->stats.statements++;
		s->statement_due = false;
		if (s->publish)
			s->publish(s->publish_ctx, VEIL__TOPIC_REVOCATION, buf, len, NULL, version);
	} else if (rc == VEIL_ERR_TOO_LARGE) {
		/* Not retried until the lists change (the next reload asks again). */
		s->statement_due = false;
		kd_log__audit("revocation", "statement-refused", "entries=%zu reason=too-many-entries", x.n);
	} else {
		kd_log__debug("revocation", "statement-retry", "entries=%zu error=%s", x.n, veil_errname(rc));
	}
	free(buf);
	free(x.e);
	return rc;
}
