/*
 * Replay windows (receiver) and sequence state (sender); see replay.h and
 * docs/PROTOCOL.md section 7.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "veil/replay.h"
#include "credcache.h"
#include "internal.h"
#include "table.h"
#include "util.h"

#define WORDS (VEIL_REPLAY_WINDOW / 64U)
#define REPLAY_MAGIC_V1 "VEILRPL1"   /* one table, windows keyed by H(sender, key id)[0..7] */
#define REPLAY_MAGIC "VEILRPL2"      /* partitions: key id, then windows by sender id */
#define REPLAY_MAX_PER_KEY (1U << 24)

struct window {
	uint8_t sender[VEIL_SENDER_ID_BYTES];
	uint64_t top;             /* highest accepted sequence */
	uint64_t bits[WORDS];     /* bit i: top - i accepted */
	UT_hash_handle hh;
};

/* The windows of one key id. */
struct partition {
	uint32_t key_id;
	struct window *windows;   /* uthash by sender */
	size_t count;
	UT_hash_handle hh;
};

/* A window of the previous file format, waiting for its pair to return. */
struct legacy {
	uint8_t id[VEIL_SENDER_ID_BYTES];
	uint64_t top;
	uint64_t bits[WORDS];
	UT_hash_handle hh;
};

#define CRED_CACHE 64U

struct veil_replay {
	struct veil__credcache *creds;    /* senders' verified credentials */
	struct partition *parts;          /* uthash by key id */
	struct legacy *legacy;            /* uthash by old window id */
	size_t max_per_key;
};

int veil_replay_new(size_t max_per_key, struct veil_replay **out)
{
	if (!out || max_per_key == 0 || max_per_key > REPLAY_MAX_PER_KEY)
		return VEIL_ERR_INVAL;
	struct veil_replay *r = calloc(1, sizeof(*r));
	if (!r)
		return VEIL_ERR_NOMEM;
	int rc = veil__credcache_new(CRED_CACHE, &r->creds);
	if (rc != VEIL_OK) {
		free(r);
		return rc;
	}
	r->max_per_key = max_per_key;
	*out = r;
	return VEIL_OK;
}

void veil_replay_free(struct veil_replay **rp)
{
	if (!rp || !*rp)
		return;
	struct veil_replay *r = *rp;
	struct partition *p, *ptmp;
	HASH_ITER(hh, r->parts, p, ptmp) {
		struct window *w, *wtmp;
		HASH_ITER(hh, p->windows, w, wtmp) {
			HASH_DEL(p->windows, w);
			free(w);
		}
		HASH_DEL(r->parts, p);
		free(p);
	}
	struct legacy *l, *ltmp;
	HASH_ITER(hh, r->legacy, l, ltmp) {
		HASH_DEL(r->legacy, l);
		free(l);
	}
	veil__credcache_free(&r->creds);
	free(r);
	*rp = NULL;
}

static struct partition *part_find(const struct veil_replay *r, uint32_t key_id)
{
	struct partition *p = NULL;
	HASH_FIND(hh, r->parts, &key_id, sizeof(key_id), p);
	return p;
}

static struct window *win_find(const struct partition *p, const uint8_t sender[VEIL_SENDER_ID_BYTES])
{
	struct window *w = NULL;
	if (p)
		HASH_FIND(hh, p->windows, sender, VEIL_SENDER_ID_BYTES, w);
	return w;
}

/* The previous format's window id of (sender, key id). */
static void legacy_id(const uint8_t sender[VEIL_SENDER_ID_BYTES], uint32_t key_id, uint8_t out[VEIL_SENDER_ID_BYTES])
{
	static const char domain[] = "veil-replay-window-v1";
	uint8_t in[sizeof(domain) - 1 + VEIL_SENDER_ID_BYTES + 4];
	uint8_t h[crypto_generichash_BYTES_MIN];
	memcpy(in, domain, sizeof(domain) - 1);
	memcpy(in + sizeof(domain) - 1, sender, VEIL_SENDER_ID_BYTES);
	veil__put_u32(in + sizeof(domain) - 1 + VEIL_SENDER_ID_BYTES, key_id);
	crypto_generichash(h, sizeof(h), in, sizeof(in), NULL, 0);
	memcpy(out, h, VEIL_SENDER_ID_BYTES);
}

static const struct legacy *legacy_find(const struct veil_replay *r, uint32_t key_id,
                                        const uint8_t sender[VEIL_SENDER_ID_BYTES])
{
	if (!r->legacy)
		return NULL;
	uint8_t id[VEIL_SENDER_ID_BYTES];
	legacy_id(sender, key_id, id);
	struct legacy *l = NULL;
	HASH_FIND(hh, r->legacy, id, sizeof(id), l);
	return l;
}

static bool seen(uint64_t top, const uint64_t bits[WORDS], uint64_t seq)
{
	if (seq > top)
		return false;
	uint64_t d = top - seq;
	if (d >= VEIL_REPLAY_WINDOW)
		return true; /* too old to tell: treat as replay */
	return (bits[d / 64] >> (d % 64)) & 1U;
}

int veil_replay_check(const struct veil_replay *r, uint32_t key_id, const uint8_t sender[VEIL_SENDER_ID_BYTES],
                      uint64_t seq)
{
	if (!r || !sender)
		return VEIL_ERR_INVAL;
	const struct partition *p = part_find(r, key_id);
	const struct window *w = win_find(p, sender);
	if (w)
		return seen(w->top, w->bits, seq) ? VEIL_ERR_REPLAY : VEIL_OK;
	const struct legacy *l = legacy_find(r, key_id, sender);
	if (l)
		return seen(l->top, l->bits, seq) ? VEIL_ERR_REPLAY : VEIL_OK;
	return (p && p->count >= r->max_per_key) ? VEIL_ERR_REPLAY_FULL : VEIL_OK;
}

static void shift(struct window *w, uint64_t by)
{
	if (by >= VEIL_REPLAY_WINDOW) {
		memset(w->bits, 0, sizeof(w->bits));
		return;
	}
	size_t words = (size_t)(by / 64), bits = (size_t)(by % 64);
	for (size_t i = WORDS; i-- > 0;) {
		uint64_t v = 0;
		if (i >= words) {
			v = w->bits[i - words] << bits;
			if (bits && i > words)
				v |= w->bits[i - words - 1] >> (64 - bits);
		}
		w->bits[i] = v;
	}
}

/* A new window for sender under p: seeded from the previous format's
 * window of the pair when there is one, else empty. */
static int win_new(struct veil_replay *r, struct partition *p, const uint8_t sender[VEIL_SENDER_ID_BYTES],
                   struct window **out)
{
	if (p->count >= r->max_per_key)
		return VEIL_ERR_REPLAY_FULL;
	struct window *w = calloc(1, sizeof(*w));
	if (!w)
		return VEIL_ERR_NOMEM;
	memcpy(w->sender, sender, VEIL_SENDER_ID_BYTES);
	struct legacy *l = (struct legacy *)legacy_find(r, p->key_id, sender);
	if (l) {
		w->top = l->top;
		memcpy(w->bits, l->bits, sizeof(w->bits));
	}
	HASH_ADD(hh, p->windows, sender, VEIL_SENDER_ID_BYTES, w);
	if (!veil__table_added(w)) {
		free(w); /* the legacy window stays: nothing forgotten */
		return VEIL_ERR_NOMEM;
	}
	if (l) {
		HASH_DEL(r->legacy, l);
		free(l);
	}
	p->count++;
	*out = w;
	return VEIL_OK;
}

static struct partition *part_get(struct veil_replay *r, uint32_t key_id)
{
	struct partition *p = part_find(r, key_id);
	if (!p && (p = calloc(1, sizeof(*p)))) {
		p->key_id = key_id;
		HASH_ADD(hh, r->parts, key_id, sizeof(p->key_id), p);
		if (!veil__table_added(p)) {
			free(p);
			p = NULL;
		}
	}
	return p;
}

/* Record seq in w (the caller checked it was not seen). */
static void record(struct window *w, uint64_t seq, bool fresh)
{
	if (fresh) {
		w->top = seq;
		w->bits[0] = 1;
	} else if (seq > w->top) {
		shift(w, seq - w->top);
		w->top = seq;
		w->bits[0] |= 1;
	} else {
		uint64_t d = w->top - seq;
		w->bits[d / 64] |= (uint64_t)1 << (d % 64);
	}
}

int veil_replay_accept(struct veil_replay *r, uint32_t key_id, const uint8_t sender[VEIL_SENDER_ID_BYTES],
                       uint64_t seq)
{
	if (!r || !sender)
		return VEIL_ERR_INVAL;
	int rc = veil_replay_check(r, key_id, sender, seq);
	if (rc != VEIL_OK)
		return rc;
	struct partition *p = part_get(r, key_id);
	if (!p)
		return VEIL_ERR_NOMEM;
	struct window *w = win_find(p, sender);
	bool fresh = false;
	if (!w) {
		bool seeded = legacy_find(r, key_id, sender) != NULL;
		if ((rc = win_new(r, p, sender, &w)) != VEIL_OK)
			return rc;
		fresh = !seeded;
	}
	record(w, seq, fresh);
	return VEIL_OK;
}

size_t veil_replay_count(const struct veil_replay *r, uint32_t key_id)
{
	const struct partition *p = r ? part_find(r, key_id) : NULL;
	return p ? p->count : 0;
}

#define REC_V2 (4U + VEIL_SENDER_ID_BYTES + 8U + WORDS * 8U)
#define REC_V1 (VEIL_SENDER_ID_BYTES + 8U + WORDS * 8U)

static uint8_t *put_window(uint8_t *q, const uint8_t *id, uint64_t top, const uint64_t bits[WORDS])
{
	memcpy(q, id, VEIL_SENDER_ID_BYTES);
	veil__put_u64(q + 8, top);
	for (size_t k = 0; k < WORDS; k++)
		veil__put_u64(q + 16 + 8 * k, bits[k]);
	return q + REC_V1;
}

/*
 * "VEILRPL2" || u32 n windows || n x (u32 key id || sender || u64 top ||
 * bitmap) || u32 m legacy windows || m x (old id || u64 top || bitmap).
 */
int veil__replay_serialize(const struct veil_replay *r, uint8_t **out, size_t *out_len)
{
	if (!r || !out || !out_len)
		return VEIL_ERR_INVAL;
	size_t n = 0, m = HASH_COUNT(r->legacy);
	for (const struct partition *p = r->parts; p; p = p->hh.next)
		n += p->count;
	size_t len = 8 + 4 + n * REC_V2 + 4 + m * REC_V1;
	uint8_t *buf = malloc(len);
	if (!buf)
		return VEIL_ERR_NOMEM;
	memcpy(buf, REPLAY_MAGIC, 8);
	veil__put_u32(buf + 8, (uint32_t)n);
	uint8_t *q = buf + 12;
	for (const struct partition *p = r->parts; p; p = p->hh.next) {
		for (const struct window *w = p->windows; w; w = w->hh.next) {
			veil__put_u32(q, p->key_id);
			q = put_window(q + 4, w->sender, w->top, w->bits);
		}
	}
	veil__put_u32(q, (uint32_t)m);
	q += 4;
	for (const struct legacy *l = r->legacy; l; l = l->hh.next)
		q = put_window(q, l->id, l->top, l->bits);
	*out = buf;
	*out_len = len;
	return VEIL_OK;
}

int veil_replay_save(const struct veil_replay *r, const char *path)
{
	if (!r || !path)
		return VEIL_ERR_INVAL;
	uint8_t *buf = NULL;
	size_t len = 0;
	int rc = veil__replay_serialize(r, &buf, &len);
	if (rc != VEIL_OK)
		return rc;
	rc = veil__file_write_atomic(path, buf, len, 0600, false);
	free(buf);
	return rc;
}

static void get_window(const uint8_t *p, uint64_t *top, uint64_t bits[WORDS])
{
	*top = veil__get_u64(p + 8);
	for (size_t k = 0; k < WORDS; k++)
		bits[k] = veil__get_u64(p + 16 + 8 * k);
}

static int legacy_add(struct veil_replay *r, const uint8_t *rec)
{
	struct legacy *l = NULL;
	HASH_FIND(hh, r->legacy, rec, VEIL_SENDER_ID_BYTES, l);
	if (!l) {
		if (!(l = calloc(1, sizeof(*l))))
			return VEIL_ERR_NOMEM;
		memcpy(l->id, rec, VEIL_SENDER_ID_BYTES);
		HASH_ADD(hh, r->legacy, id, sizeof(l->id), l);
		if (!veil__table_added(l)) {
			free(l);
			return VEIL_ERR_NOMEM;
		}
	}
	get_window(rec, &l->top, l->bits);
	return VEIL_OK;
}

static int load_v2(struct veil_replay *r, const uint8_t *b, size_t len)
{
	if (len < 16)
		return VEIL_ERR_STATE;
	size_t n = veil__get_u32(b + 8);
	if (n > (len - 16) / REC_V2)
		return VEIL_ERR_STATE;
	const uint8_t *q = b + 12;
	size_t m = veil__get_u32(q + n * REC_V2);
	if (len != 16 + n * REC_V2 + m * REC_V1)
		return VEIL_ERR_STATE;
	for (size_t i = 0; i < n; i++, q += REC_V2) {
		struct partition *p = part_get(r, veil__get_u32(q));
		if (!p)
			return VEIL_ERR_NOMEM;
		struct window *w = win_find(p, q + 4);
		int rc = VEIL_OK;
		/* A saved state never shrinks under a smaller cap: the windows
		 * it holds are exactly what must not be forgotten. */
		if (!w && p->count >= r->max_per_key)
			r->max_per_key = p->count + 1;
		if (!w && (rc = win_new(r, p, q + 4, &w)) != VEIL_OK)
			return rc;
		get_window(q + 4, &w->top, w->bits);
	}
	q += 4;
	for (size_t i = 0; i < m; i++, q += REC_V1) {
		int rc = legacy_add(r, q);
		if (rc != VEIL_OK)
			return rc;
	}
	return VEIL_OK;
}

static int load_v1(struct veil_replay *r, const uint8_t *b, size_t len)
{
	if (len < 12)
		return VEIL_ERR_STATE;
	size_t n = veil__get_u32(b + 8);
	if (len != 12 + n * REC_V1)
		return VEIL_ERR_STATE;
	for (size_t i = 0; i < n; i++) {
		int rc = legacy_add(r, b + 12 + i * REC_V1);
		if (rc != VEIL_OK)
			return rc;
	}
	return VEIL_OK;
}

int veil_replay_load(struct veil_replay *r, const char *path)
{
	if (!r || !path)
		return VEIL_ERR_INVAL;
	struct veil__text t;
	int rc = veil__file_read(path, 0, 256U << 20, &t, NULL, 0);
	if (rc != VEIL_OK)
		return rc;
	const uint8_t *b = (const uint8_t *)t.text;
	size_t len = t.len;
	rc = VEIL_ERR_STATE;
	if (len >= 8 && memcmp(b, REPLAY_MAGIC, 8) == 0)
		rc = load_v2(r, b, len);
	else if (len >= 8 && memcmp(b, REPLAY_MAGIC_V1, 8) == 0)
		rc = load_v1(r, b, len);
	veil__text_free(&t);
	return rc;
}

/* ---- verified credentials ---- */

struct veil__credcache *veil__replay_credcache(struct veil_replay *r)
{
	return r ? r->creds : NULL;
}

/* ---- sender sequence ---- */

#define SEQ_TAG "veil-seq-v1"

/*
 * Locks: mu guards next, reserved and ahead; file_lock serialises writes of
 * the mark file (taken before mu, never after), so the file only ever moves
 * up: a write-ahead and a synchronous write racing cannot leave a lower mark
 * behind a higher one already relied on.
 */
struct veil_seq {
	char *path;
	uint64_t next;
	uint64_t reserved;   /* persisted high-water mark: never hand out >= this unpersisted */
	bool ahead;          /* a write-ahead was asked for and has not finished */
	pthread_mutex_t mu;
	pthread_mutex_t file_lock;
	uint64_t written;    /* the highest mark written (file_lock) */
};

/* Caller holds file_lock. */
static int seq_persist(struct veil_seq *s, uint64_t mark)
{
	if (!s->path || mark <= s->written)
		return VEIL_OK;
	char text[64];
	int n = snprintf(text, sizeof(text), "%s %llu\n", SEQ_TAG, (unsigned long long)mark);
	if (veil__file_write_atomic(s->path, text, (size_t)n, 0600, false) != VEIL_OK)
		return VEIL_ERR_STATE;
	s->written = mark;
	return VEIL_OK;
}

/* "veil-seq-v1 <decimal>\n", strictly: sscanf("%llu") would take "-1" as
 * 2^64-1 and silently saturate on overflow, and a mark that close to the top
 * wraps the reserved block and then the sequence itself to small numbers
 * (refused as replays by every receiver). A microsecond clock needs 2^63 for
 * ~292000 years, so anything above is corruption. */
static int parse_seq_mark(const char *text, uint64_t *out)
{
	size_t tl = strlen(SEQ_TAG);
	if (strncmp(text, SEQ_TAG, tl) != 0 || text[tl] != ' ')
		return 0;
	const char *p = text + tl + 1;
	uint64_t v = 0;
	size_t digits = 0;
	for (; *p >= '0' && *p <= '9'; p++, digits++) {
		unsigned d = (unsigned)(*p - '0');
		if (v > (UINT64_MAX >> 1) / 10U)
			return 0;
		v = v * 10U + d;
	}
	if (digits == 0 || v > (UINT64_MAX >> 1) || (*p != '\0' && strcmp(p, "\n") != 0))
		return 0;
	*out = v;
	return 1;
}

int veil_seq_open(const char *path, uint64_t now_us, struct veil_seq **out)
{
	if (!out)
		return VEIL_ERR_INVAL;
	uint64_t hw = 0;
	if (path) {
		struct veil__text t;
		int rc = veil__file_read(path, 0, 256, &t, NULL, 0);
		if (rc == VEIL_OK) {
			int ok = parse_seq_mark(t.text, &hw);
			veil__text_free(&t);
			if (!ok)
				return VEIL_ERR_STATE;
		} else if (errno != ENOENT) {
			return VEIL_ERR_STATE;
		}
	}
	struct veil_seq *s = calloc(1, sizeof(*s));
	if (!s)
		return VEIL_ERR_NOMEM;
	pthread_mutex_init(&s->mu, NULL);
	pthread_mutex_init(&s->file_lock, NULL);
	if (path && !(s->path = strdup(path))) {
		veil_seq_close(&s);
		return VEIL_ERR_NOMEM;
	}
	/* The clock floor makes a lost or stale state file harmless. */
	s->next = hw > now_us ? hw : now_us;
	s->reserved = s->next + VEIL_SEQ_BLOCK;
	int rc = seq_persist(s, s->reserved);
	if (rc != VEIL_OK) {
		veil_seq_close(&s);
		return rc;
	}
	*out = s;
	return VEIL_OK;
}

int veil_seq_next(struct veil_seq *s, uint64_t *out)
{
	if (!s || !out)
		return VEIL_ERR_INVAL;
	pthread_mutex_lock(&s->mu);
	if (s->next < s->reserved) {
		*out = s->next++;
		pthread_mutex_unlock(&s->mu);
		return VEIL_OK;
	}
	pthread_mutex_unlock(&s->mu);
	/* The block is used up (no write-ahead, or it fell behind): persist
	 * the next one before using any of it. A write-ahead under way finishes
	 * first (file_lock) and may have done it already. */
	pthread_mutex_lock(&s->file_lock);
	pthread_mutex_lock(&s->mu);
	int rc = VEIL_OK;
	if (s->next >= s->reserved) {
		uint64_t mark = s->reserved + VEIL_SEQ_BLOCK;
		pthread_mutex_unlock(&s->mu);
		rc = seq_persist(s, mark);
		pthread_mutex_lock(&s->mu);
		if (rc == VEIL_OK && mark > s->reserved)
			s->reserved = mark;
	}
	if (rc == VEIL_OK)
		*out = s->next++;
	pthread_mutex_unlock(&s->mu);
	pthread_mutex_unlock(&s->file_lock);
	return rc;
}

bool veil__seq_ahead_due(struct veil_seq *s)
{
	if (!s || !s->path)
		return false;
	pthread_mutex_lock(&s->mu);
	bool due = !s->ahead && s->reserved - s->next < VEIL_SEQ_BLOCK / 2;
	if (due)
		s->ahead = true;
	pthread_mutex_unlock(&s->mu);
	return due;
}

int veil__seq_write_ahead(struct veil_seq *s)
{
	if (!s)
		return VEIL_ERR_INVAL;
	pthread_mutex_lock(&s->file_lock);
	pthread_mutex_lock(&s->mu);
	uint64_t mark = s->reserved + VEIL_SEQ_BLOCK;
	pthread_mutex_unlock(&s->mu);
	int rc = seq_persist(s, mark);
	pthread_mutex_lock(&s->mu);
	if (rc == VEIL_OK && mark > s->reserved)
		s->reserved = mark;
	s->ahead = false;
	pthread_mutex_unlock(&s->mu);
	pthread_mutex_unlock(&s->file_lock);
	return rc;
}

void veil_seq_close(struct veil_seq **s)
{
	if (!s || !*s)
		return;
	pthread_mutex_destroy(&(*s)->mu);
	pthread_mutex_destroy(&(*s)->file_lock);
	free((*s)->path);
	free(*s);
	*s = NULL;
}
