/*
 * The device's knowledge of revocations (device_private.h): the union of
 * the entries of every valid revocation statement keyd published
 * (docs/PROTOCOL.md section 13), each kept until its keep-until and
 * persisted in <state_dir>/revoked ("VEILREV1" || u32 n || n x (kind ||
 * 16-byte id || u64 keep-until)). A later statement never removes an entry.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "device_private.h"
#include "util.h"

#define REV_MAGIC "VEILREV1"
#define REV_MAX 1048576U

static bool rev_has(struct veil__device *d, uint8_t kind, const uint8_t *id, size_t idlen)
{
	uint8_t key[1 + VEIL_CREDENTIAL_ID_BYTES] = { kind };
	memcpy(key + 1, id, idlen);
	uint64_t now = (uint64_t)time(NULL);
	pthread_mutex_lock(&d->rev_lock);
	struct rev *r = NULL;
	HASH_FIND(hh, d->revs, key, sizeof(key), r);
	bool hit = r && r->keep_until > now;
	pthread_mutex_unlock(&d->rev_lock);
	return hit;
}

static bool rev_credential(void *ctx, const uint8_t id[VEIL_CREDENTIAL_ID_BYTES])
{
	return rev_has(ctx, VEIL__REV_CREDENTIAL, id, VEIL_CREDENTIAL_ID_BYTES);
}

static bool rev_sender(void *ctx, const uint8_t id[VEIL_SENDER_ID_BYTES])
{
	return rev_has(ctx, VEIL__REV_SENDER, id, VEIL_SENDER_ID_BYTES);
}

/* For veil__trust: a keyd credential the statements revoked. */
bool veil__device_rev_signer(const struct veil_credential *c, void *ctx)
{
	return rev_has(ctx, VEIL__REV_CREDENTIAL, c->id, VEIL_CREDENTIAL_ID_BYTES);
}

/* Caller holds rev_lock. Union: an entry only ever gains time. */
static int rev_add(struct veil__device *d, const struct veil__rev_entry *e)
{
	uint8_t key[1 + VEIL_CREDENTIAL_ID_BYTES] = { e->kind };
	memcpy(key + 1, e->id, VEIL_CREDENTIAL_ID_BYTES);
	struct rev *r = NULL;
	HASH_FIND(hh, d->revs, key, sizeof(key), r);
	if (r) {
		if (e->keep_until > r->keep_until)
			r->keep_until = e->keep_until;
		return 0;
	}
	if (HASH_COUNT(d->revs) >= REV_MAX)
		return -1;
	if (!(r = calloc(1, sizeof(*r))))
		return -1;
	memcpy(r->key, key, sizeof(key));
	r->keep_until = e->keep_until;
	HASH_ADD(hh, d->revs, key, sizeof(r->key), r);
	if (!veil__table_added(r)) {
		free(r);
		return -1;
	}
	return 1;
}

/* Caller holds rev_lock. "VEILREV1" || u32 n || n x (kind || id16 || u64). */
static void rev_save(struct veil__device *d)
{
	if (!d->revoked_path)
		return;
	size_t n = HASH_COUNT(d->revs), len = 12 + n * VEIL__REV_ENTRY_BYTES;
	uint8_t *buf = malloc(len);
	if (!buf)
		return;
	memcpy(buf, REV_MAGIC, 8);
	veil__put_u32(buf + 8, (uint32_t)n);
	uint8_t *p = buf + 12;
	for (struct rev *r = d->revs; r; r = r->hh.next, p += VEIL__REV_ENTRY_BYTES) {
		memcpy(p, r->key, sizeof(r->key));
		veil__put_u64(p + sizeof(r->key), r->keep_until);
	}
	if (veil__file_write_atomic(d->revoked_path, buf, len, 0600, false) != VEIL_OK)
		veil__device_log(d, VEIL__LOG_WARNING, "saving revocations %s failed", d->revoked_path);
	free(buf);
}

int veil__device_rev_load(struct veil__device *d, char *err, size_t errlen)
{
	if (access(d->revoked_path, F_OK) != 0)
		return VEIL_OK;
	struct veil__text t;
	int rc = veil__file_read(d->revoked_path, VEIL__FILE_SECRET, 12U + (size_t)REV_MAX * VEIL__REV_ENTRY_BYTES, &t,
	                         err, errlen);
	const uint8_t *b = (const uint8_t *)t.text;
	if (rc == VEIL_OK && (t.len < 12 || memcmp(b, REV_MAGIC, 8) != 0 ||
	                      t.len != 12 + (size_t)veil__get_u32(b + 8) * VEIL__REV_ENTRY_BYTES)) {
		veil__errf(err, errlen, "%s: not a revocation state file", d->revoked_path);
		rc = VEIL_ERR_STATE;
	}
	uint64_t now = (uint64_t)time(NULL);
	for (size_t off = 12; rc == VEIL_OK && off < t.len; off += VEIL__REV_ENTRY_BYTES) {
		struct veil__rev_entry e = { .kind = b[off] };
		memcpy(e.id, b + off + 1, VEIL_CREDENTIAL_ID_BYTES);
		e.keep_until = veil__get_u64(b + off + 1 + VEIL_CREDENTIAL_ID_BYTES);
		if (e.keep_until > now && rev_add(d, &e) < 0)
			rc = VEIL_ERR_NOMEM;
	}
	veil__text_free(&t);
	return rc;
}

int veil__device_rev_statement(struct veil__device *d, const uint8_t *payload, size_t len)
{
	struct veil__trust t = { (const uint8_t(*)[VEIL_PK_BYTES])d->authorities, d->n_authorities,
		                 (uint64_t)time(NULL), veil__device_rev_signer, d };
	struct veil__revstmt_view v;
	int rc = veil__revstmt_verify(payload, len, &t, &v);
	if (rc != VEIL_OK) {
		veil__device_log(d, VEIL__LOG_WARNING, "revocation statement refused: %s (%s)", veil_strerror(rc), veil_errname(rc));
		return rc;
	}
	/* A union: no statement removes an entry, whatever its version, so a
	 * stolen key service key can neither un-revoke nor freeze revocation. */
	size_t added = 0;
	pthread_mutex_lock(&d->rev_lock);
	for (size_t i = 0; i < v.n_entries; i++) {
		struct veil__rev_entry e;
		veil__revstmt_entry(&v, i, &e);
		if (e.keep_until <= t.now)
			continue;
		int r = rev_add(d, &e);
		if (r < 0) {
			rc = VEIL_ERR_NOMEM;
			break;
		}
		added += (size_t)r;
	}
	if (added)
		rev_save(d);
	pthread_mutex_unlock(&d->rev_lock);
	if (added) {
		veil__device_log(d, VEIL__LOG_INFO, "revocation statement: %zu new entr%s", added, added == 1 ? "y" : "ies");
		veil__device_version_recheck(d);
	}
	return rc;
}

void veil__device_rev_init(struct veil__device *d)
{
	d->revoked = (struct veil__revoked){ rev_credential, rev_sender, d };
}

void veil__device_rev_expire(struct veil__device *d, uint64_t now_s)
{
	struct rev *r, *tmp;
	pthread_mutex_lock(&d->rev_lock);
	HASH_ITER(hh, d->revs, r, tmp) {
		if (r->keep_until <= now_s) {
			HASH_DEL(d->revs, r);
			free(r);
		}
	}
	pthread_mutex_unlock(&d->rev_lock);
}

void veil__device_rev_free(struct veil__device *d)
{
	struct rev *r, *tmp;
	HASH_ITER(hh, d->revs, r, tmp) {
		HASH_DEL(d->revs, r);
		free(r);
	}
}
