/*
 * Argon2id password file for legacy clients (pure logic). One entry per
 * line, "user:$argon2id$v=19$m=...,t=...,p=...$salt$hash" (libsodium's
 * crypto_pwhash_str format, written by `veil passwd`). Blank lines and lines
 * starting with '#' are ignored; anything else invalid (bad user name, other
 * hash type, duplicate user) rejects the whole file so the caller keeps the
 * previous one.
 */
#ifndef VP_PASSWD_H
#define VP_PASSWD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct vp_passwd;

/* VEIL_OK, or VEIL_ERR_IO / VEIL_ERR_PARSE / VEIL_ERR_NOMEM with "path:line: reason" in err. */
int vp_passwd__load(const char *path, struct vp_passwd **out, char *err, size_t errlen);
void vp_passwd__free(struct vp_passwd **p);
/* The stored hash string for user, or NULL. */
const char *vp_passwd__hash(const struct vp_passwd *p, const char *user);
size_t vp_passwd__count(const struct vp_passwd *p);
/* A stored hash of some entry (NULL if none): what an unknown user's
 * password is verified against, so both cost the same. */
const char *vp_passwd__decoy(const struct vp_passwd *p);
/* One view of two files (either may be NULL): every entry of a, then those
 * of b whose user a does not have (*shadowed, may be NULL, counts the
 * others). The operator's file is a, the plugin's runtime file b. */
int vp_passwd__merge(const struct vp_passwd *a, const struct vp_passwd *b, struct vp_passwd **out, size_t *shadowed);
/* Every entry, by user. */
void vp_passwd__each(const struct vp_passwd *p, void (*fn)(void *arg, const char *user, const char *hash), void *arg);
/* A new entry's hash: Argon2id with `veil passwd`'s parameters
 * (crypto_pwhash_str, interactive limits). VEIL_OK, VEIL_ERR_NOMEM. */
#define VP_PASSWD_HASH_MAX 128U /* crypto_pwhash_STRBYTES, checked in passwd.c */
int vp_passwd__make_hash(const char *password, size_t len, char out[VP_PASSWD_HASH_MAX]);

/*
 * Cache of recent successful verifications, so a reconnecting legacy client
 * does not cost an Argon2id run (~40 ms, the broker is single-threaded).
 * An entry is BLAKE2b keyed with a per-process random key over
 * user, password and the stored hash string: no password is kept, and a
 * changed or deleted password file entry can never match an old entry.
 * At most capacity entries; when full, the oldest goes.
 */
struct vp_pwcache;

/* VEIL_OK, or VEIL_ERR_INVAL (capacity 0 or over 2^22) / VEIL_ERR_NOMEM. */
int vp_pwcache__new(size_t capacity, struct vp_pwcache **out);
void vp_pwcache__free(struct vp_pwcache **c);
bool vp_pwcache__hit(const struct vp_pwcache *c, const char *user, const char *password, const char *stored,
                     uint64_t now);
void vp_pwcache__put(struct vp_pwcache *c, const char *user, const char *password, const char *stored,
                     uint64_t expires_at);
void vp_pwcache__clear(struct vp_pwcache *c);

#endif
