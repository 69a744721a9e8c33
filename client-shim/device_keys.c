/*
 * The device's granted-keys file, <state_dir>/keys: its format, its load at
 * start, and its write-behind. A bundle is applied in memory at once (its
 * keys seal and open from then on) and the keeper thread writes the file
 * after, off the thread that delivered the bundle; the version is
 * acknowledged to keyd only once the file holding it is on disk. Deletions
 * (an epoch past accept-until) are written by the keeper before the smaller
 * key set is handed to the session. Crash semantics: docs/KEYS.md.
 */
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "device_private.h"
#include "util.h"

#define KEYS_MAGIC "VEILKEYS"   /* version, grants (before 1.0.0) */
#define KEYS_MAGIC2 "VEILKEY2"  /* version, signer's credential id, grants */
#define SAVE_RETRY_MS 1000U     /* after a failed write */

/* Caller holds the lock. "VEILKEY2" || u64 version || the signer's
 * credential id || the grants as a bundle plaintext encodes them, in a
 * sodium_malloc'd buffer. */
static int keys_encode(struct veil__device *d, uint8_t **out, size_t *out_len)
{
	size_t n = d->grants ? d->grants->n : 0;
	const struct veil__grant *g = d->grants ? d->grants->g : NULL;
	const size_t head = 16 + VEIL_CREDENTIAL_ID_BYTES;
	size_t len = head + veil__grants_encoded_len(g, n), body = 0;
	uint8_t *buf = sodium_malloc(len);
	if (!buf)
		return VEIL_ERR_NOMEM;
	memcpy(buf, KEYS_MAGIC2, 8);
	veil__put_u64(buf + 8, d->version);
	if (d->have_signer)
		memcpy(buf + 16, d->version_signer, VEIL_CREDENTIAL_ID_BYTES);
	else
		memset(buf + 16, 0, VEIL_CREDENTIAL_ID_BYTES);
	int rc = veil__grants_encode(g, n, buf + head, len - head, &body);
	if (rc != VEIL_OK) {
		sodium_free(buf);
		return rc;
	}
	*out = buf;
	*out_len = head + body;
	return VEIL_OK;
}

void veil__device_keys_due(struct veil__device *d, bool ack)
{
	if (!d->keys_path)
		return;
	d->save_due = true;
	d->ack_due = d->ack_due || ack;
	d->save_retry_ms = 0;
	/* No wakeup here: d->cond also wakes the readiness waiters, who must
	 * not run before the keys are handed over; the caller wakes the keeper
	 * after that (the keeper itself, for an expiry). */
}

void veil__device_keys_persist(struct veil__device *d, bool may_ack)
{
	if (!d->save_due)
		return;
	bool ack = d->ack_due;
	uint64_t version = d->version;
	uint8_t *buf = NULL;
	size_t len = 0;
	int rc = keys_encode(d, &buf, &len);
	if (rc == VEIL_OK) {
		d->save_due = false;
		d->ack_due = false;
		/* Only the keeper writes (and device_free after it): no two writes
		 * race, so the file never goes back to an older set. */
		pthread_mutex_unlock(&d->lock);
		rc = veil__file_write_atomic(d->keys_path, buf, len, 0600, false);
		sodium_free(buf); /* wipes */
		pthread_mutex_lock(&d->lock);
	}
	if (rc != VEIL_OK) {
		d->save_due = true;
		d->ack_due = d->ack_due || ack;
		d->save_retry_ms = veil__mono_ms() + SAVE_RETRY_MS;
		veil__device_log(d, VEIL__LOG_ERROR, "saving granted keys %s failed (%s): version %llu is in use but "
		                 "not acknowledged; trying again", d->keys_path, veil_errname(rc),
		                 (unsigned long long)version);
		return;
	}
	if (ack && may_ack) {
		pthread_mutex_unlock(&d->lock);
		veil__device_send(d, VEIL__KIND_ACK, &version);
		pthread_mutex_lock(&d->lock);
	}
}

int veil__device_keys_load(struct veil__device *d, char *err, size_t errlen)
{
	if (access(d->keys_path, F_OK) != 0)
		return VEIL_OK;
	struct veil__text t;
	int rc = veil__file_read(d->keys_path, VEIL__FILE_SECRET, 16U + VEIL__BUNDLE_PT_MAX, &t, err, errlen);
	const uint8_t *b = (const uint8_t *)t.text;
	bool v2 = rc == VEIL_OK && t.len >= 8 && memcmp(b, KEYS_MAGIC2, 8) == 0;
	size_t head = v2 ? 16 + VEIL_CREDENTIAL_ID_BYTES : 16;
	if (rc == VEIL_OK && (t.len < head + 2 || (!v2 && memcmp(b, KEYS_MAGIC, 8) != 0) ||
	                      veil__grants_parse(b + head, t.len - head, &d->grants) != VEIL_OK)) {
		veil__errf(err, errlen, "%s: not a granted-keys state file (refusing to start: move it away to "
		           "request every key anew)", d->keys_path);
		rc = VEIL_ERR_STATE;
	}
	if (rc == VEIL_OK) {
		d->version = veil__get_u64(b + 8);
		d->have_version = true;
		static const uint8_t zero[VEIL_CREDENTIAL_ID_BYTES];
		d->have_signer = v2 && sodium_memcmp(b + 16, zero, VEIL_CREDENTIAL_ID_BYTES) != 0;
		if (d->have_signer)
			memcpy(d->version_signer, b + 16, VEIL_CREDENTIAL_ID_BYTES);
	}
	veil__text_free(&t);
	return rc;
}
