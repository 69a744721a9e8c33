/*
 * Replay windows (receiver) and sequence state (sender); see replay.h and
 * docs/PROTOCOL.md section 7.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "veil/replay.h"
#include "internal.h"
#include "util.h"

#define WORDS (VEIL_REPLAY_WINDOW / 64U)
#define REPLAY_MAGIC "VEILRPL1"

struct window {
	uint8_t sender[VEIL_SENDER_ID_BYTES];
	bool used;
	uint64_t top;             /* highest accepted sequence */
	uint64_t bits[WORDS];     /* bit i: top - i accepted */
	uint64_t last_use;        /* for eviction */
};

#define CRED_CACHE 64U

struct cred_entry {
	bool used;
	uint8_t hash[32];                 /* BLAKE2b-256 of the credential bytes */
	struct veil_credential cred;
};

struct veil_replay {
	struct cred_entry creds[CRED_CACHE];
	size_t cred_next;                 /* round-robin replacement */
	struct window *slots;
	size_t cap;               /* power of two, >= 2 * max */
	size_t max;
	size_t count;
	uint64_t clock;
};

int veil_replay_new(size_t max_senders, struct veil_replay **out)
{
	if (!out || max_senders == 0 || max_senders > (1U << 24))
		return VEIL_ERR_INVAL;
	struct veil_replay *r = calloc(1, sizeof(*r));
	if (!r)
		return VEIL_ERR_NOMEM;
	size_t cap = 16;
	while (cap < max_senders * 2)
		cap *= 2;
	r->slots = calloc(cap, sizeof(*r->slots));
	if (!r->slots) {
		free(r);
		return VEIL_ERR_NOMEM;
	}
	r->cap = cap;
	r->max = max_senders;
	*out = r;
	return VEIL_OK;
}

void veil_replay_free(struct veil_replay **r)
{
	if (!r || !*r)
		return;
	free((*r)->slots);
	free(*r);
	*r = NULL;
}

static size_t slot_of(const struct veil_replay *r, const uint8_t sender[VEIL_SENDER_ID_BYTES])
{
	/* Sender ids are hash outputs already: use their bytes directly. */
	uint64_t h;
	memcpy(&h, sender, sizeof(h));
	return (size_t)h & (r->cap - 1);
}

static struct window *find(const struct veil_replay *r, const uint8_t sender[VEIL_SENDER_ID_BYTES])
{
	for (size_t i = slot_of(r, sender), n = 0; n < r->cap; i = (i + 1) & (r->cap - 1), n++) {
		struct window *w = &r->slots[i];
		if (!w->used)
			return NULL;
		if (memcmp(w->sender, sender, VEIL_SENDER_ID_BYTES) == 0)
			return w;
	}
	return NULL;
}

static bool seen(const struct window *w, uint64_t seq)
{
	if (seq > w->top)
		return false;
	uint64_t d = w->top - seq;
	if (d >= VEIL_REPLAY_WINDOW)
		return true; /* too old to tell: treat as replay */
	return (w->bits[d / 64] >> (d % 64)) & 1U;
}

int veil_replay_check(const struct veil_replay *r, const uint8_t sender[VEIL_SENDER_ID_BYTES], uint64_t seq)
{
	if (!r || !sender)
		return VEIL_ERR_INVAL;
	const struct window *w = find(r, sender);
	return (w && seen(w, seq)) ? VEIL_ERR_REPLAY : VEIL_OK;
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

/* Rebuild the table without the least recently used window. */
static void evict_one(struct veil_replay *r)
{
	size_t victim = SIZE_MAX;
	for (size_t i = 0; i < r->cap; i++) {
		if (r->slots[i].used && (victim == SIZE_MAX || r->slots[i].last_use < r->slots[victim].last_use))
			victim = i;
	}
	if (victim == SIZE_MAX)
		return;
	r->slots[victim].used = false;
	r->count--;
	/* Re-insert the cluster after the hole so linear probing stays correct. */
	for (size_t i = (victim + 1) & (r->cap - 1); r->slots[i].used; i = (i + 1) & (r->cap - 1)) {
		struct window tmp = r->slots[i];
		r->slots[i].used = false;
		size_t j = slot_of(r, tmp.sender);
		while (r->slots[j].used)
			j = (j + 1) & (r->cap - 1);
		r->slots[j] = tmp;
	}
}

static struct window *insert(struct veil_replay *r, const uint8_t sender[VEIL_SENDER_ID_BYTES])
{
	if (r->count >= r->max)
		evict_one(r);
	size_t i = slot_of(r, sender);
	while (r->slots[i].used)
		i = (i + 1) & (r->cap - 1);
	struct window *w = &r->slots[i];
	memset(w, 0, sizeof(*w));
	memcpy(w->sender, sender, VEIL_SENDER_ID_BYTES);
	w->used = true;
	r->count++;
	return w;
}

int veil_replay_accept(struct veil_replay *r, const uint8_t sender[VEIL_SENDER_ID_BYTES], uint64_t seq)
{
	if (!r || !sender)
		return VEIL_ERR_INVAL;
	struct window *w = find(r, sender);
	if (!w) {
		w = insert(r, sender);
		w->top = seq;
		w->bits[0] = 1;
	} else if (seen(w, seq)) {
		return VEIL_ERR_REPLAY;
	} else if (seq > w->top) {
		shift(w, seq - w->top);
		w->top = seq;
		w->bits[0] |= 1;
	} else {
		uint64_t d = w->top - seq;
		w->bits[d / 64] |= (uint64_t)1 << (d % 64);
	}
	w->last_use = ++r->clock;
	return VEIL_OK;
}

int veil_replay_save(const struct veil_replay *r, const char *path)
{
	if (!r || !path)
		return VEIL_ERR_INVAL;
	size_t rec = VEIL_SENDER_ID_BYTES + 8 + sizeof(((struct window *)0)->bits);
	size_t len = 8 + 4 + r->count * rec;
	uint8_t *buf = malloc(len);
	if (!buf)
		return VEIL_ERR_NOMEM;
	memcpy(buf, REPLAY_MAGIC, 8);
	veil__put_u32(buf + 8, (uint32_t)r->count);
	uint8_t *p = buf + 12;
	for (size_t i = 0; i < r->cap; i++) {
		const struct window *w = &r->slots[i];
		if (!w->used)
			continue;
		memcpy(p, w->sender, VEIL_SENDER_ID_BYTES);
		veil__put_u64(p + 8, w->top);
		for (size_t k = 0; k < WORDS; k++)
			veil__put_u64(p + 16 + 8 * k, w->bits[k]);
		p += rec;
	}
	int rc = veil__file_write_atomic(path, buf, len, 0600, false);
	free(buf);
	return rc;
}

int veil_replay_load(struct veil_replay *r, const char *path)
{
	if (!r || !path)
		return VEIL_ERR_INVAL;
	char *data = NULL;
	size_t len = 0;
	int rc = veil__file_read(path, false, 64U << 20, &data, &len, NULL, 0);
	if (rc != VEIL_OK)
		return rc;
	const uint8_t *b = (const uint8_t *)data;
	size_t rec = VEIL_SENDER_ID_BYTES + 8 + WORDS * 8;
	rc = VEIL_ERR_STATE;
	if (len >= 12 && memcmp(b, REPLAY_MAGIC, 8) == 0) {
		size_t n = veil__get_u32(b + 8);
		if (len == 12 + n * rec) {
			rc = VEIL_OK;
			for (size_t i = 0; i < n; i++) {
				const uint8_t *p = b + 12 + i * rec;
				struct window *w = find(r, p);
				if (!w)
					w = insert(r, p);
				w->top = veil__get_u64(p + 8);
				for (size_t k = 0; k < WORDS; k++)
					w->bits[k] = veil__get_u64(p + 16 + 8 * k);
				w->last_use = ++r->clock;
			}
		}
	}
	veil__file_free(data, len);
	return rc;
}

/* ---- verified credentials ---- */

const struct veil_credential *veil__replay_cred_get(const struct veil_replay *r, const uint8_t h[32])
{
	for (size_t i = 0; i < CRED_CACHE; i++) {
		if (r->creds[i].used && sodium_memcmp(r->creds[i].hash, h, 32) == 0)
			return &r->creds[i].cred;
	}
	return NULL;
}

void veil__replay_cred_put(struct veil_replay *r, const uint8_t h[32], const struct veil_credential *c)
{
	struct cred_entry *e = &r->creds[r->cred_next];
	r->cred_next = (r->cred_next + 1) % CRED_CACHE;
	e->used = true;
	memcpy(e->hash, h, 32);
	e->cred = *c;
}

/* ---- sender sequence ---- */

#define SEQ_TAG "veil-seq-v1"

struct veil_seq {
	char *path;
	uint64_t next;
	uint64_t reserved;   /* persisted high-water mark: never hand out >= this unpersisted */
};

static int seq_persist(struct veil_seq *s, uint64_t mark)
{
	if (!s->path)
		return VEIL_OK;
	char text[64];
	int n = snprintf(text, sizeof(text), "%s %llu\n", SEQ_TAG, (unsigned long long)mark);
	return veil__file_write_atomic(s->path, text, (size_t)n, 0600, false) == VEIL_OK ? VEIL_OK : VEIL_ERR_STATE;
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
		char *text = NULL;
		size_t len = 0;
		int rc = veil__file_read(path, false, 256, &text, &len, NULL, 0);
		if (rc == VEIL_OK) {
			int ok = parse_seq_mark(text, &hw);
			veil__file_free(text, len);
			if (!ok)
				return VEIL_ERR_STATE;
		} else if (errno != ENOENT) {
			return VEIL_ERR_STATE;
		}
	}
	struct veil_seq *s = calloc(1, sizeof(*s));
	if (!s)
		return VEIL_ERR_NOMEM;
	if (path && !(s->path = strdup(path))) {
		free(s);
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
	if (s->next >= s->reserved) {
		int rc = seq_persist(s, s->reserved + VEIL_SEQ_BLOCK);
		if (rc != VEIL_OK)
			return rc;
		s->reserved += VEIL_SEQ_BLOCK;
	}
	*out = s->next++;
	return VEIL_OK;
}

void veil_seq_close(struct veil_seq **s)
{
	if (!s || !*s)
		return;
	free((*s)->path);
	free(*s);
	*s = NULL;
}
