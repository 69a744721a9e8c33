/*
 * Token nonce replay cache (see nonce_cache.h): a uthash table of the live
 * nonces (core/table.h: keyed SipHash, so nobody can aim nonces at one
 * bucket), bounded by its capacity, and a timing wheel that forgets each
 * nonce when its token can no longer be fresh: one list per second of
 * expiry (modulo WHEEL seconds, longer than any token's life: 2 x the
 * largest plugin_opt_token_window + 1). Every add first frees what expired
 * since the last one, so a full table holds live nonces only, and every
 * operation is O(1) amortised.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>
#include <utlist.h>

#include "veil/error.h"
#include "../core/table.h"
#include "../core/util.h" /* veil__dir_sync */
#include "nonce_cache.h"

#define WHEEL 8192U /* seconds, a power of two > 2 * 3600 + 1 */

struct nc_entry {
	uint8_t nonce[VEIL_TOKEN_NONCE_BYTES]; /* the table key */
	uint64_t expires_at;                   /* live while now <= expires_at */
	struct nc_entry *wprev, *wnext;        /* its second's list in the wheel (utlist) */
	UT_hash_handle hh;
};

struct vp_nonce_cache {
	struct nc_entry *table;
	size_t count, cap;
	struct nc_entry *wheel[WHEEL];  /* by expires_at % WHEEL */
	uint64_t purged_to;             /* every entry with expires_at <= this is gone */
	/* journal (vp_nonce_cache__persist) */
	char *path;
	int fd;                 /* -1: not persisted */
	bool dirty;             /* appended since the last fdatasync */
	size_t records;         /* records in the file */
	unsigned write_errors;
};

#define JOURNAL_MAGIC "VEILNCJ1"
#define RECORD (VEIL_TOKEN_NONCE_BYTES + 8U)

int vp_nonce_cache__new(size_t capacity, struct vp_nonce_cache **out)
{
	if (!out || capacity > ((size_t)1 << 26))
		return VEIL_ERR_INVAL;
	size_t cap = 256;
	while (cap < capacity)
		cap <<= 1;
	struct vp_nonce_cache *nc = calloc(1, sizeof(*nc));
	if (!nc)
		return VEIL_ERR_NOMEM;
	nc->cap = cap;
	nc->fd = -1;
	*out = nc;
	return VEIL_OK;
}

static void drop(struct vp_nonce_cache *nc, struct nc_entry *e)
{
	HASH_DEL(nc->table, e);
	DL_DELETE2(nc->wheel[e->expires_at % WHEEL], e, wprev, wnext);
	nc->count--;
	free(e);
}

void vp_nonce_cache__free(struct vp_nonce_cache **ncp)
{
	if (!ncp || !*ncp)
		return;
	struct vp_nonce_cache *nc = *ncp;
	struct nc_entry *e, *tmp;
	HASH_ITER(hh, nc->table, e, tmp) {
		drop(nc, e);
	}
	if (nc->fd >= 0) {
		if (nc->dirty)
			(void)fdatasync(nc->fd);
		close(nc->fd);
	}
	free(nc->path);
	free(nc);
	*ncp = NULL;
}

/* Free every entry that expired before now. */
static void purge(struct vp_nonce_cache *nc, uint64_t now)
{
	if (now == 0 || now - 1 <= nc->purged_to)
		return;
	uint64_t to = now - 1;
	/* More than a turn of the wheel since the last purge: every list once. */
	uint64_t from = to - nc->purged_to > WHEEL ? to - WHEEL + 1 : nc->purged_to + 1;
	for (uint64_t sec = from; sec <= to; sec++) {
		struct nc_entry *e, *tmp;
		DL_FOREACH_SAFE2(nc->wheel[sec % WHEEL], e, tmp, wnext) {
			if (e->expires_at <= to)
				drop(nc, e);
		}
	}
	nc->purged_to = to;
}

static void put_u64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static uint64_t get_u64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

static bool write_all(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return false;
		p += w;
		n -= (size_t)w;
	}
	return true;
}

static void journal_append(struct vp_nonce_cache *nc, const uint8_t *nonce, uint64_t expires_at)
{
	if (nc->fd < 0) {
		/* Persisted, but the journal was lost (a failed rewrite): count it. */
		if (nc->path)
			nc->write_errors++;
		return;
	}
	uint8_t rec[RECORD];
	memcpy(rec, nonce, VEIL_TOKEN_NONCE_BYTES);
	put_u64(rec + VEIL_TOKEN_NONCE_BYTES, expires_at);
	if (write_all(nc->fd, rec, sizeof(rec))) {
		nc->records++;
		nc->dirty = true;
	} else {
		/* A record written in part would shift every later one: cut the
		 * file back to its last whole record. */
		nc->write_errors++;
		off_t good = (off_t)(8U + nc->records * RECORD);
		if (ftruncate(nc->fd, good) != 0 || lseek(nc->fd, good, SEEK_SET) < 0)
			nc->write_errors++;
	}
}

enum vp_nonce_result vp_nonce_cache__add(struct vp_nonce_cache *nc, const uint8_t nonce[VEIL_TOKEN_NONCE_BYTES],
                                         uint64_t expires_at, uint64_t now)
{
	if (!nc || !nonce)
		return VP_NONCE_FULL;
	if (expires_at == 0)
		expires_at = 1;
	purge(nc, now);
	struct nc_entry *e = NULL;
	HASH_FIND(hh, nc->table, nonce, VEIL_TOKEN_NONCE_BYTES, e);
	if (e && e->expires_at >= now)
		return VP_NONCE_REPLAY;
	if (e)
		drop(nc, e); /* expired, not yet purged (a clock that went back) */
	if (expires_at < now)
		return VP_NONCE_FRESH; /* dead already: nothing to remember */
	if (nc->count >= nc->cap || !(e = calloc(1, sizeof(*e))))
		return VP_NONCE_FULL; /* never forget a live nonce to make room */
	memcpy(e->nonce, nonce, VEIL_TOKEN_NONCE_BYTES);
	e->expires_at = expires_at;
	HASH_ADD(hh, nc->table, nonce, VEIL_TOKEN_NONCE_BYTES, e);
	if (!veil__table_added(e)) {
		free(e);
		return VP_NONCE_FULL;
	}
	DL_APPEND2(nc->wheel[expires_at % WHEEL], e, wprev, wnext);
	nc->count++;
	journal_append(nc, nonce, expires_at);
	return VP_NONCE_FRESH;
}

size_t vp_nonce_cache__live(const struct vp_nonce_cache *nc, uint64_t now)
{
	size_t n = 0;
	const struct nc_entry *e, *tmp;
	if (nc) {
		HASH_ITER(hh, nc->table, e, tmp) {
			n += e->expires_at >= now;
		}
	}
	return n;
}

/* Write the live entries to a new journal and switch the append fd to it. */
static int journal_rewrite(struct vp_nonce_cache *nc, uint64_t now, char *err, size_t errlen)
{
	size_t plen = strlen(nc->path);
	char *tmp = malloc(plen + 8);
	if (!tmp)
		return VEIL_ERR_NOMEM;
	snprintf(tmp, plen + 8, "%s.new", nc->path);
	/* Never through a link planted at the temporary name. */
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	bool ok = fd >= 0 && write_all(fd, (const uint8_t *)JOURNAL_MAGIC, 8);
	size_t records = 0;
	struct nc_entry *ent, *etmp;
	HASH_ITER(hh, nc->table, ent, etmp) {
		if (!ok)
			break;
		if (ent->expires_at < now)
			continue;
		uint8_t rec[RECORD];
		memcpy(rec, ent->nonce, VEIL_TOKEN_NONCE_BYTES);
		put_u64(rec + VEIL_TOKEN_NONCE_BYTES, ent->expires_at);
		ok = write_all(fd, rec, sizeof(rec));
		records++;
	}
	ok = ok && fdatasync(fd) == 0 && rename(tmp, nc->path) == 0 && veil__dir_sync(nc->path) == VEIL_OK;
	if (!ok) {
		int e = errno;
		if (err)
			snprintf(err, errlen, "%s: cannot write (%s)", nc->path, strerror(e));
		if (fd >= 0)
			close(fd);
		unlink(tmp);
		free(tmp);
		return VEIL_ERR_IO;
	}
	free(tmp);
	if (nc->fd >= 0)
		close(nc->fd);
	/* The renamed file, still open: append from here. */
	if (lseek(fd, 0, SEEK_END) < 0) {
		close(fd);
		nc->fd = -1;
		return VEIL_ERR_IO;
	}
	nc->fd = fd;
	nc->records = records;
	nc->dirty = false;
	return VEIL_OK;
}

int vp_nonce_cache__persist(struct vp_nonce_cache *nc, const char *path, uint64_t now, char *err, size_t errlen)
{
	if (!nc || !path || nc->path)
		return VEIL_ERR_INVAL;
	if (!(nc->path = strdup(path)))
		return VEIL_ERR_NOMEM;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 && errno != ENOENT) {
		if (err)
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return VEIL_ERR_IO;
	}
	int rc = VEIL_OK;
	if (fd >= 0) {
		struct stat st;
		uint8_t magic[8];
		if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || read(fd, magic, 8) != 8 ||
		    memcmp(magic, JOURNAL_MAGIC, 8) != 0) {
			if (err)
				snprintf(err, errlen, "%s: not a token nonce journal (remove it to start afresh)", path);
			close(fd);
			return VEIL_ERR_PARSE;
		}
		uint8_t rec[RECORD];
		ssize_t r = 0;
		/* A record cut short by a crash mid-write is ignored: it was
		 * never acknowledged to a client. */
		while (rc == VEIL_OK && (r = read(fd, rec, sizeof(rec))) == (ssize_t)sizeof(rec)) {
			uint64_t exp = get_u64(rec + VEIL_TOKEN_NONCE_BYTES);
			if (exp >= now && vp_nonce_cache__add(nc, rec, exp, now) == VP_NONCE_FULL)
				rc = VEIL_ERR_NOMEM;
		}
		if (rc == VEIL_OK && r < 0)
			rc = VEIL_ERR_IO; /* unread records could be live: fail closed */
		close(fd);
		if (rc != VEIL_OK) {
			if (err)
				snprintf(err, errlen, rc == VEIL_ERR_NOMEM ? "%s: more live nonces than plugin_opt_replay_cache_size"
				                                            : "%s: read error",
				         path);
			return rc;
		}
	}
	return journal_rewrite(nc, now, err, errlen);
}

unsigned vp_nonce_cache__write_errors(struct vp_nonce_cache *nc)
{
	if (!nc)
		return 0;
	unsigned n = nc->write_errors;
	nc->write_errors = 0;
	return n;
}

void vp_nonce_cache__sync(struct vp_nonce_cache *nc, uint64_t now)
{
	if (!nc || nc->fd < 0)
		return;
	if (nc->dirty) {
		if (fdatasync(nc->fd) != 0)
			nc->write_errors++;
		nc->dirty = false;
	}
	/* Rewrite when the file holds 4x more records than can be live. */
	if (nc->records > 4096 && nc->records > 4 * vp_nonce_cache__live(nc, now)) {
		if (journal_rewrite(nc, now, NULL, 0) != VEIL_OK)
			nc->write_errors++;
	}
}
