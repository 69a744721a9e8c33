/*
 * Password file parsing and the verification cache (see passwd.h). The
 * file's entries are kept in an array sorted by user for bsearch, not in a
 * hash table: it is built once per load and never changes, the sort is also
 * what finds duplicate users, and a lookup costs O(log n) whatever names
 * clients send. The verification cache is a uthash table (core/table.h).
 * The hash strings are not secret in the sense of a key, but they are
 * offline-attackable, so the memory is wiped when the table is freed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "veil/error.h"
#include "../core/names.h" /* the one rule for names */
#include "../core/table.h" /* uthash with the keyed hash */
#include "file.h"
#include "passwd.h"

struct pw_entry {
	char *user;
	char *hash;
};

struct vp_passwd {
	struct pw_entry *e;
	size_t n, cap;
};

static void wipe_free(char *s)
{
	if (s) {
		sodium_memzero(s, strlen(s));
		free(s);
	}
}

void vp_passwd__free(struct vp_passwd **pp)
{
	if (!pp || !*pp)
		return;
	struct vp_passwd *p = *pp;
	for (size_t i = 0; i < p->n; i++) {
		free(p->e[i].user);
		wipe_free(p->e[i].hash);
	}
	free(p->e);
	free(p);
	*pp = NULL;
}

static int cmp_entry(const void *a, const void *b)
{
	return strcmp(((const struct pw_entry *)a)->user, ((const struct pw_entry *)b)->user);
}

static int push(struct vp_passwd *p, const char *user, const char *hash)
{
	if (p->n == p->cap) {
		size_t nc = p->cap ? p->cap * 2 : 16;
		struct pw_entry *ne = realloc(p->e, nc * sizeof(*ne));
		if (!ne)
			return VEIL_ERR_NOMEM;
		p->e = ne;
		p->cap = nc;
	}
	char *u = strdup(user), *h = strdup(hash);
	if (!u || !h) {
		free(u);
		wipe_free(h);
		return VEIL_ERR_NOMEM;
	}
	p->e[p->n].user = u;
	p->e[p->n].hash = h;
	p->n++;
	return VEIL_OK;
}

static int parse_line(void *obj, char *s, char *why, size_t whylen)
{
	struct vp_passwd *p = obj;
	if (*s == '\0') /* blank or comment only */
		return VEIL_OK;
	char *colon = strchr(s, ':');
	if (!colon) {
		snprintf(why, whylen, "expected 'user:$argon2id$...'");
		return VEIL_ERR_PARSE;
	}
	*colon = '\0';
	const char *hash = colon + 1;
	const char *bad = veil__name_why(s, VEIL__NAME_PASSWD_USER);
	if (bad) {
		snprintf(why, whylen, "user name %s", bad);
		return VEIL_ERR_PARSE;
	}
	if (strncmp(hash, "$argon2id$", 10) != 0 || strlen(hash) >= crypto_pwhash_STRBYTES ||
	    strchr(hash, ' ') || strchr(hash, '\t')) {
		snprintf(why, whylen, "not an Argon2id hash (use veil passwd)");
		return VEIL_ERR_PARSE;
	}
	return push(p, s, hash);
}

int vp_passwd__load(const char *path, struct vp_passwd **out, char *err, size_t errlen)
{
	if (!path || !out)
		return VEIL_ERR_INVAL;
	struct vp_passwd *p = calloc(1, sizeof(*p));
	int rc = p ? vp_file__each_line(path, parse_line, p, err, errlen) : VEIL_ERR_NOMEM;
	if (rc == VEIL_OK && p->n > 1) {
		qsort(p->e, p->n, sizeof(*p->e), cmp_entry);
		for (size_t i = 1; i < p->n; i++) {
			if (!strcmp(p->e[i - 1].user, p->e[i].user)) {
				rc = VEIL_ERR_PARSE;
				if (err) {
					char u[80];
					snprintf(u, sizeof(u), "%s", p->e[i].user);
					snprintf(err, errlen, "%s: duplicate user '%s'", path, u);
				}
				break;
			}
		}
	}
	if (rc != VEIL_OK) {
		vp_passwd__free(&p);
		return rc;
	}
	*out = p;
	return VEIL_OK;
}

int vp_passwd__merge(const struct vp_passwd *a, const struct vp_passwd *b, struct vp_passwd **out, size_t *shadowed)
{
	if (!out)
		return VEIL_ERR_INVAL;
	struct vp_passwd *p = calloc(1, sizeof(*p));
	int rc = p ? VEIL_OK : VEIL_ERR_NOMEM;
	size_t dropped = 0;
	for (size_t i = 0; a && rc == VEIL_OK && i < a->n; i++)
		rc = push(p, a->e[i].user, a->e[i].hash);
	for (size_t i = 0; b && rc == VEIL_OK && i < b->n; i++) {
		if (vp_passwd__hash(a, b->e[i].user))
			dropped++;
		else
			rc = push(p, b->e[i].user, b->e[i].hash);
	}
	if (rc != VEIL_OK) {
		vp_passwd__free(&p);
		return rc;
	}
	if (p->n > 1)
		qsort(p->e, p->n, sizeof(*p->e), cmp_entry);
	if (shadowed)
		*shadowed = dropped;
	*out = p;
	return VEIL_OK;
}

void vp_passwd__each(const struct vp_passwd *p, void (*fn)(void *arg, const char *user, const char *hash), void *arg)
{
	for (size_t i = 0; p && fn && i < p->n; i++)
		fn(arg, p->e[i].user, p->e[i].hash);
}

_Static_assert(VP_PASSWD_HASH_MAX == crypto_pwhash_STRBYTES, "the hash buffer is libsodium's");

int vp_passwd__make_hash(const char *password, size_t len, char out[VP_PASSWD_HASH_MAX])
{
	if (!password || !out)
		return VEIL_ERR_INVAL;
	/* The parameters `veil passwd` writes (interactive limits). */
	if (crypto_pwhash_str(out, password, len, crypto_pwhash_OPSLIMIT_INTERACTIVE,
	                      crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0)
		return VEIL_ERR_NOMEM;
	return VEIL_OK;
}

const char *vp_passwd__decoy(const struct vp_passwd *p)
{
	return (p && p->n) ? p->e[0].hash : NULL;
}

const char *vp_passwd__hash(const struct vp_passwd *p, const char *user)
{
	if (!p || !user || p->n == 0)
		return NULL;
	struct pw_entry key = { (char *)user, NULL };
	const struct pw_entry *e = bsearch(&key, p->e, p->n, sizeof(*p->e), cmp_entry);
	return e ? e->hash : NULL;
}

size_t vp_passwd__count(const struct vp_passwd *p)
{
	return p ? p->n : 0;
}

/* ---- verification cache ---- */

struct pwc_entry {
	uint8_t digest[crypto_generichash_BYTES]; /* keyed BLAKE2b: the table key */
	uint64_t expires_at;
	UT_hash_handle hh;                        /* table order: oldest put first */
};

struct vp_pwcache {
	struct pwc_entry *table;
	size_t count, cap;
	uint8_t *key; /* sodium_malloc'd */
};

int vp_pwcache__new(size_t capacity, struct vp_pwcache **out)
{
	if (!out || capacity == 0 || capacity > ((size_t)1 << 22))
		return VEIL_ERR_INVAL;
	struct vp_pwcache *c = calloc(1, sizeof(*c));
	if (!c)
		return VEIL_ERR_NOMEM;
	c->key = sodium_malloc(crypto_generichash_KEYBYTES);
	if (!c->key) {
		free(c);
		return VEIL_ERR_NOMEM;
	}
	c->cap = capacity;
	randombytes_buf(c->key, crypto_generichash_KEYBYTES);
	*out = c;
	return VEIL_OK;
}

static void pwc_drop(struct vp_pwcache *c, struct pwc_entry *e)
{
	HASH_DEL(c->table, e);
	c->count--;
	sodium_memzero(e, sizeof(*e));
	free(e);
}

void vp_pwcache__clear(struct vp_pwcache *c)
{
	if (!c)
		return;
	struct pwc_entry *e, *tmp;
	HASH_ITER(hh, c->table, e, tmp) {
		pwc_drop(c, e);
	}
}

void vp_pwcache__free(struct vp_pwcache **cp)
{
	if (!cp || !*cp)
		return;
	struct vp_pwcache *c = *cp;
	vp_pwcache__clear(c);
	sodium_free(c->key);
	free(c);
	*cp = NULL;
}

static void digest_of(const struct vp_pwcache *c, const char *user, const char *password, const char *stored,
                      uint8_t out[crypto_generichash_BYTES])
{
	crypto_generichash_state st;
	const unsigned char zero = 0;
	crypto_generichash_init(&st, c->key, crypto_generichash_KEYBYTES, crypto_generichash_BYTES);
	/* NUL separators: "ab"+"c" and "a"+"bc" must not collide. */
	crypto_generichash_update(&st, (const unsigned char *)user, strlen(user));
	crypto_generichash_update(&st, &zero, 1);
	crypto_generichash_update(&st, (const unsigned char *)password, strlen(password));
	crypto_generichash_update(&st, &zero, 1);
	crypto_generichash_update(&st, (const unsigned char *)stored, strlen(stored));
	crypto_generichash_final(&st, out, crypto_generichash_BYTES);
	sodium_memzero(&st, sizeof(st));
}

static struct pwc_entry *pwc_find(const struct vp_pwcache *c, const uint8_t d[crypto_generichash_BYTES])
{
	struct pwc_entry *e = NULL;
	HASH_FIND(hh, c->table, d, crypto_generichash_BYTES, e);
	return e;
}

bool vp_pwcache__hit(const struct vp_pwcache *c, const char *user, const char *password, const char *stored,
                     uint64_t now)
{
	if (!c || !user || !password || !stored)
		return false;
	uint8_t d[crypto_generichash_BYTES];
	digest_of(c, user, password, stored, d);
	const struct pwc_entry *e = pwc_find(c, d);
	sodium_memzero(d, sizeof(d));
	return e && now < e->expires_at;
}

void vp_pwcache__put(struct vp_pwcache *c, const char *user, const char *password, const char *stored,
                     uint64_t expires_at)
{
	if (!c || !user || !password || !stored || expires_at == 0)
		return;
	uint8_t d[crypto_generichash_BYTES];
	digest_of(c, user, password, stored, d);
	struct pwc_entry *e = pwc_find(c, d);
	if (e) {
		pwc_drop(c, e); /* put again at the end, as the newest */
		e = NULL;
	}
	if (c->count >= c->cap)
		pwc_drop(c, c->table); /* full: the oldest goes */
	if ((e = calloc(1, sizeof(*e)))) {
		memcpy(e->digest, d, sizeof(d));
		e->expires_at = expires_at;
		HASH_ADD(hh, c->table, digest, sizeof(e->digest), e);
		if (veil__table_added(e))
			c->count++;
		else
			free(e); /* out of memory: a cache may forget */
	}
	sodium_memzero(d, sizeof(d));
}
