/*
 * keyd's SQLite store (store.h): schema and its migrations, the storage
 * key, sealing of topic keys at rest, and every row keyd keeps. SQLite as
 * Debian ships it (libsqlite3), WAL journal, secure_delete on, foreign keys
 * on; statements prepared per call (keyd's rate is bundles, not queries).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sodium.h>
#include <sqlite3.h>

#include "veil/error.h"
#include "../core/util.h"
#include "keyd.h"
#include "store.h"

struct kd_store {
	sqlite3 *db;
	const uint8_t *key; /* the caller's storage key; NULL for admin access */
};

#define BUSY_TIMEOUT_MS 5000 /* a writer waits this long for `veil keys` */
#define SEALED_BYTES (crypto_aead_xchacha20poly1305_ietf_NPUBBYTES + VEIL_KEY_BYTES + \
                      crypto_aead_xchacha20poly1305_ietf_ABYTES)

/* ---- storage key file ---------------------------------------------------- */

int kd_storage_key__create(const char *path, char *err, size_t errlen)
{
	uint8_t *k = sodium_malloc(KD_STORAGE_KEY_BYTES);
	char line[sizeof(KD_STORAGE_KEY_PREFIX) + 64];
	if (!k)
		return VEIL_ERR_NOMEM;
	randombytes_buf(k, KD_STORAGE_KEY_BYTES);
	size_t p = (size_t)snprintf(line, sizeof(line), "%s ", KD_STORAGE_KEY_PREFIX);
	int rc = veil__b64_encode(k, KD_STORAGE_KEY_BYTES, line + p, sizeof(line) - p - 1);
	sodium_free(k);
	if (rc == VEIL_OK) {
		size_t n = strlen(line);
		line[n++] = '\n'; /* the encoder had one byte less than the buffer */
		rc = veil__file_write_atomic(path, line, n, 0600, true);
		if (rc != VEIL_OK)
			veil__errf(err, errlen, "%s: %s", path, errno == EEXIST ? "exists (never overwritten)" : strerror(errno));
	}
	sodium_memzero(line, sizeof(line));
	return rc;
}

int kd_storage_key__load(const char *path, uint8_t **key, char *err, size_t errlen)
{
	*key = NULL;
	struct veil__text t;
	int rc = veil__file_read(path, VEIL__FILE_SECRET, 4096, &t, err, errlen);
	if (rc != VEIL_OK) {
		veil__text_free(&t);
		return rc;
	}
	uint8_t *k = sodium_malloc(KD_STORAGE_KEY_BYTES);
	char *line = sodium_malloc(256);
	if (!k || !line) {
		if (k)
			sodium_free(k);
		if (line)
			sodium_free(line);
		veil__text_free(&t);
		return VEIL_ERR_NOMEM;
	}
	struct veil__lines it = { .text = t.text, .len = t.len };
	enum veil__line ls;
	rc = VEIL_ERR_PARSE;
	bool found = false;
	while ((ls = veil__lines_next(&it, line, 256)) != VEIL__LINE_END) {
		if (ls != VEIL__LINE_OK || (line[0] && found)) {
			found = false;
			break;
		}
		if (!line[0])
			continue;
		char *f[3];
		size_t len = 0;
		if (veil__split(line, f, 2) == 2 && !strcmp(f[0], KD_STORAGE_KEY_PREFIX) &&
		    veil__b64_decode(f[1], strlen(f[1]), k, KD_STORAGE_KEY_BYTES, &len) == VEIL_OK &&
		    len == KD_STORAGE_KEY_BYTES)
			found = true;
		else
			break;
	}
	if (found) {
		rc = VEIL_OK;
		*key = k;
	} else {
		veil__errf(err, errlen, "%s:%u: not a storage key (one line '%s <base64 of 32 bytes>')", path,
		           it.lineno, KD_STORAGE_KEY_PREFIX);
		sodium_free(k);
	}
	sodium_free(line);
	veil__text_free(&t);
	return rc;
}

void kd_storage_key__free(uint8_t **key)
{
	if (key && *key) {
		sodium_free(*key);
		*key = NULL;
	}
}

/* ---- schema -------------------------------------------------------------- */

/* Migrations, each taking the database from version i to i + 1. Never edit
 * one that shipped: add the next. */
static const char *const MIGRATIONS[] = {
	/* 0 -> 1 */
	"CREATE TABLE meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL);"
	"INSERT INTO meta VALUES ('key_id_next', 2147483648), ('version_last', 0);"
	"CREATE TABLE scopes (id INTEGER PRIMARY KEY, filter TEXT NOT NULL UNIQUE, anchor INTEGER NOT NULL);"
	"CREATE TABLE instances (id INTEGER PRIMARY KEY, scope_id INTEGER NOT NULL REFERENCES scopes(id),"
	" filter TEXT NOT NULL UNIQUE, owner TEXT);"
	"CREATE TABLE epochs (key_id INTEGER PRIMARY KEY, instance_id INTEGER NOT NULL REFERENCES instances(id),"
	" epoch INTEGER NOT NULL, sealed BLOB NOT NULL, send_from INTEGER NOT NULL, send_until INTEGER NOT NULL,"
	" accept_until INTEGER NOT NULL, superseded_at INTEGER NOT NULL DEFAULT 0, grace INTEGER NOT NULL,"
	" flags INTEGER NOT NULL, UNIQUE (instance_id, epoch));"
	"CREATE TABLE devices (cred_id BLOB PRIMARY KEY, client_id TEXT NOT NULL, device_pk BLOB NOT NULL,"
	" roles TEXT NOT NULL, authority_id BLOB NOT NULL, expires_at INTEGER NOT NULL, msg_ts INTEGER NOT NULL,"
	" msg_nonce BLOB NOT NULL,"
	" rx_pk BLOB NOT NULL, issued_version INTEGER NOT NULL, published_version INTEGER NOT NULL,"
	" acked_version INTEGER NOT NULL, last_issue INTEGER NOT NULL);"
	"CREATE INDEX devices_client ON devices (client_id);"
	"CREATE TABLE grants (cred_id BLOB NOT NULL, key_id INTEGER NOT NULL, flags INTEGER NOT NULL,"
	" version INTEGER NOT NULL, PRIMARY KEY (cred_id, key_id));"
	"CREATE INDEX grants_key ON grants (key_id);"
	"CREATE TABLE audit (t INTEGER NOT NULL, event TEXT NOT NULL, fields TEXT NOT NULL);"
	"CREATE TABLE rotate_requests (id INTEGER PRIMARY KEY, scope TEXT NOT NULL, requested_at INTEGER NOT NULL,"
	" done_at INTEGER, result TEXT);",
	/* 1 -> 2: the public key of the keyd identity that issued the keys in
	 * store, so a new identity (after a compromise) is noticed at start. */
	"CREATE TABLE issuer (id INTEGER PRIMARY KEY CHECK (id = 1), pk BLOB NOT NULL);",
	/* 2 -> 3: audit rows are pruned by age (audit_days) once a minute. */
	"CREATE INDEX audit_t ON audit (t);",
};
#define NMIGRATIONS ((int)(sizeof(MIGRATIONS) / sizeof(MIGRATIONS[0])))

static int db_err(struct kd_store *s, int rc, char *err, size_t errlen, const char *what)
{
	veil__errf(err, errlen, "%s: %s", what, s && s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
	return rc == SQLITE_NOMEM ? VEIL_ERR_NOMEM : VEIL_ERR_IO;
}

static int exec(struct kd_store *s, const char *sql)
{
	return sqlite3_exec(s->db, sql, NULL, NULL, NULL) == SQLITE_OK ? VEIL_OK : VEIL_ERR_IO;
}

int kd_store__schema(struct kd_store *s)
{
	sqlite3_stmt *st;
	int v = -1;
	if (sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
		return -1;
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return v;
}

static int migrate(struct kd_store *s, char *err, size_t errlen)
{
	int v = kd_store__schema(s);
	if (v < 0)
		return db_err(s, SQLITE_ERROR, err, errlen, "reading the schema version");
	if (v > NMIGRATIONS) {
		veil__errf(err, errlen, "database schema %d is newer than this keyd knows (%d)", v, NMIGRATIONS);
		return VEIL_ERR_VERSION;
	}
	for (; v < NMIGRATIONS; v++) {
		char pragma[40];
		snprintf(pragma, sizeof(pragma), "PRAGMA user_version = %d", v + 1);
		if (exec(s, "BEGIN IMMEDIATE") != VEIL_OK)
			return db_err(s, SQLITE_ERROR, err, errlen, "migration");
		if (exec(s, MIGRATIONS[v]) != VEIL_OK || exec(s, pragma) != VEIL_OK) {
			int rc = db_err(s, SQLITE_ERROR, err, errlen, "migration");
			kd_store__rollback(s);
			return rc;
		}
		if (exec(s, "COMMIT") != VEIL_OK)
			return db_err(s, SQLITE_ERROR, err, errlen, "migration commit");
	}
	return VEIL_OK;
}

int kd_store__open(const char *path, const uint8_t *storage_key, bool create, struct kd_store **out, char *err,
                   size_t errlen)
{
	*out = NULL;
	struct stat st;
	if (!create && stat(path, &st) != 0) {
		veil__errf(err, errlen, "%s: %s", path, strerror(errno));
		return errno == ENOENT ? VEIL_ERR_NOT_FOUND : VEIL_ERR_IO;
	}
	struct kd_store *s = calloc(1, sizeof(*s));
	if (!s)
		return VEIL_ERR_NOMEM;
	s->key = storage_key;
	/* The database holds no key in clear, but who talks to whom is the
	 * operator's business: private to keyd's user. */
	mode_t old = umask(077);
	int rc = sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0) |
	                                               SQLITE_OPEN_FULLMUTEX, NULL);
	umask(old);
	if (rc != SQLITE_OK) {
		rc = db_err(s, rc, err, errlen, path);
		kd_store__close(&s);
		return rc;
	}
	sqlite3_busy_timeout(s->db, BUSY_TIMEOUT_MS);
	/* secure_delete: deleted keys' pages are overwritten with zeros;
	 * WAL: `veil keys` reads while keyd writes. */
	if (exec(s, "PRAGMA secure_delete = ON; PRAGMA foreign_keys = ON; PRAGMA journal_mode = WAL;"
	            " PRAGMA synchronous = FULL") != VEIL_OK) {
		rc = db_err(s, SQLITE_ERROR, err, errlen, path);
		kd_store__close(&s);
		return rc;
	}
	rc = migrate(s, err, errlen);
	if (rc != VEIL_OK) {
		kd_store__close(&s);
		return rc;
	}
	*out = s;
	return VEIL_OK;
}

void kd_store__close(struct kd_store **sp)
{
	if (!sp || !*sp)
		return;
	sqlite3_close((*sp)->db);
	free(*sp);
	*sp = NULL;
}

int kd_store__begin(struct kd_store *s)
{
	return exec(s, "BEGIN IMMEDIATE");
}

int kd_store__commit(struct kd_store *s)
{
	return exec(s, "COMMIT");
}

void kd_store__rollback(struct kd_store *s)
{
	sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
}

/* ---- small statement helpers -------------------------------------------- */

static sqlite3_stmt *prep(struct kd_store *s, const char *sql)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
		return NULL;
	return st;
}

/* Step a statement that returns no row, and finalize it. */
static int run(sqlite3_stmt *st)
{
	if (!st)
		return VEIL_ERR_IO;
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? VEIL_OK : VEIL_ERR_IO;
}

static int64_t i64(uint64_t v)
{
	return v > INT64_MAX ? INT64_MAX : (int64_t)v;
}

static uint64_t u64col(sqlite3_stmt *st, int i)
{
	sqlite3_int64 v = sqlite3_column_int64(st, i);
	return v < 0 ? 0 : (uint64_t)v;
}

/* The end of a row loop: a step that stopped on an error (SQLITE_BUSY,
 * SQLITE_IOERR, ...) rather than SQLITE_DONE is an error, never the end of
 * the rows, so no caller takes half a table for all of it. */
static int rows_done(int rc, int step)
{
	return rc == VEIL_OK && step != SQLITE_DONE ? VEIL_ERR_IO : rc;
}

static void blobcol(sqlite3_stmt *st, int i, uint8_t *out, size_t n)
{
	const void *p = sqlite3_column_blob(st, i);
	size_t len = (size_t)sqlite3_column_bytes(st, i);
	memset(out, 0, n);
	if (p)
		memcpy(out, p, len < n ? len : n);
}

static void textcol(sqlite3_stmt *st, int i, char *out, size_t cap)
{
	const unsigned char *p = sqlite3_column_text(st, i);
	snprintf(out, cap, "%s", p ? (const char *)p : "");
}

static int meta_get(struct kd_store *s, const char *k, uint64_t *v)
{
	sqlite3_stmt *st = prep(s, "SELECT v FROM meta WHERE k = ?");
	if (!st)
		return VEIL_ERR_IO;
	sqlite3_bind_text(st, 1, k, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st) == SQLITE_ROW ? VEIL_OK : VEIL_ERR_IO;
	if (rc == VEIL_OK)
		*v = u64col(st, 0);
	sqlite3_finalize(st);
	return rc;
}

static int meta_set(struct kd_store *s, const char *k, uint64_t v)
{
	sqlite3_stmt *st = prep(s, "UPDATE meta SET v = ? WHERE k = ?");
	if (st) {
		sqlite3_bind_int64(st, 1, i64(v));
		sqlite3_bind_text(st, 2, k, -1, SQLITE_STATIC);
	}
	return run(st);
}

int kd_store__next_key_id(struct kd_store *s, uint32_t *out)
{
	uint64_t next;
	int rc = meta_get(s, "key_id_next", &next);
	if (rc != VEIL_OK)
		return rc;
	if (next < VEIL__GRANT_KEY_ID_MIN)
		next = VEIL__GRANT_KEY_ID_MIN;
	if (next > UINT32_MAX)
		return VEIL_ERR_TOO_LARGE;
	rc = meta_set(s, "key_id_next", next + 1);
	if (rc == VEIL_OK)
		*out = (uint32_t)next;
	return rc;
}

int kd_store__next_version(struct kd_store *s, uint64_t now_us, uint64_t *out)
{
	uint64_t last;
	int rc = meta_get(s, "version_last", &last);
	if (rc != VEIL_OK)
		return rc;
	uint64_t v = last + 1 > now_us ? last + 1 : now_us;
	if (v > INT64_MAX)
		return VEIL_ERR_TOO_LARGE;
	rc = meta_set(s, "version_last", v);
	if (rc == VEIL_OK)
		*out = v;
	return rc;
}

int kd_store__issuer_get(struct kd_store *s, uint8_t pk[VEIL_PK_BYTES])
{
	sqlite3_stmt *st = prep(s, "SELECT pk FROM issuer WHERE id = 1");
	if (!st)
		return VEIL_ERR_IO;
	int step = sqlite3_step(st);
	int rc = step == SQLITE_ROW ? VEIL_OK : step == SQLITE_DONE ? VEIL_ERR_NOT_FOUND : VEIL_ERR_IO;
	if (rc == VEIL_OK && sqlite3_column_bytes(st, 0) != VEIL_PK_BYTES)
		rc = VEIL_ERR_STATE;
	if (rc == VEIL_OK)
		blobcol(st, 0, pk, VEIL_PK_BYTES);
	sqlite3_finalize(st);
	return rc;
}

int kd_store__issuer_set(struct kd_store *s, const uint8_t pk[VEIL_PK_BYTES])
{
	sqlite3_stmt *st = prep(s, "INSERT OR REPLACE INTO issuer (id, pk) VALUES (1, ?)");
	if (st)
		sqlite3_bind_blob(st, 1, pk, VEIL_PK_BYTES, SQLITE_STATIC);
	return run(st);
}

/* ---- scopes, instances ---------------------------------------------------- */

int kd_store__scope(struct kd_store *s, const char *filter, uint64_t now, int64_t *id, uint64_t *anchor)
{
	sqlite3_stmt *st = prep(s, "INSERT OR IGNORE INTO scopes (filter, anchor) VALUES (?, ?)");
	if (st) {
		sqlite3_bind_text(st, 1, filter, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, i64(now));
	}
	int rc = run(st);
	if (rc != VEIL_OK)
		return rc;
	st = prep(s, "SELECT id, anchor FROM scopes WHERE filter = ?");
	if (!st)
		return VEIL_ERR_IO;
	sqlite3_bind_text(st, 1, filter, -1, SQLITE_STATIC);
	rc = sqlite3_step(st) == SQLITE_ROW ? VEIL_OK : VEIL_ERR_IO;
	if (rc == VEIL_OK) {
		*id = sqlite3_column_int64(st, 0);
		*anchor = u64col(st, 1);
	}
	sqlite3_finalize(st);
	return rc;
}

int kd_store__instance(struct kd_store *s, int64_t scope_id, const char *filter, const char *owner, int64_t *id)
{
	sqlite3_stmt *st = prep(s, "INSERT OR IGNORE INTO instances (scope_id, filter, owner) VALUES (?, ?, ?)");
	if (st) {
		sqlite3_bind_int64(st, 1, scope_id);
		sqlite3_bind_text(st, 2, filter, -1, SQLITE_STATIC);
		if (owner)
			sqlite3_bind_text(st, 3, owner, -1, SQLITE_STATIC);
	}
	int rc = run(st);
	if (rc != VEIL_OK)
		return rc;
	st = prep(s, "SELECT id FROM instances WHERE filter = ?");
	if (!st)
		return VEIL_ERR_IO;
	sqlite3_bind_text(st, 1, filter, -1, SQLITE_STATIC);
	rc = sqlite3_step(st) == SQLITE_ROW ? VEIL_OK : VEIL_ERR_IO;
	if (rc == VEIL_OK)
		*id = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return rc;
}

int kd_store__instances_each(struct kd_store *s, kd_instance_cb cb, void *ctx)
{
	sqlite3_stmt *st = prep(s, "SELECT i.id, i.scope_id, s.filter, i.filter, i.owner FROM instances i"
	                           " JOIN scopes s ON s.id = i.scope_id ORDER BY i.id");
	if (!st)
		return VEIL_ERR_IO;
	int rc = VEIL_OK, step;
	struct kd_instance_row r;
	while (rc == VEIL_OK && (step = sqlite3_step(st)) == SQLITE_ROW) {
		r.id = sqlite3_column_int64(st, 0);
		r.scope_id = sqlite3_column_int64(st, 1);
		textcol(st, 2, r.scope, sizeof(r.scope));
		textcol(st, 3, r.filter, sizeof(r.filter));
		textcol(st, 4, r.owner, sizeof(r.owner));
		rc = cb(ctx, &r);
	}
	sqlite3_finalize(st);
	return rows_done(rc, step);
}

/* ---- epochs ---------------------------------------------------------------- */

static void epoch_ad(const char *filter, uint32_t key_id, uint32_t epoch, uint8_t *ad, size_t *len)
{
	size_t n = strlen(filter);
	memcpy(ad, filter, n);
	veil__put_u32(ad + n, key_id);
	veil__put_u32(ad + n + 4, epoch);
	*len = n + 8;
}

int kd_store__epoch_add(struct kd_store *s, const char *instance_filter, const struct kd_epoch *e)
{
	if (!s->key || !e->key || strlen(instance_filter) > VEIL__GRANT_SCOPE_MAX)
		return VEIL_ERR_INVAL;
	uint8_t sealed[SEALED_BYTES], ad[VEIL__GRANT_SCOPE_MAX + 8];
	size_t adlen;
	unsigned long long clen;
	epoch_ad(instance_filter, e->key_id, e->epoch, ad, &adlen);
	randombytes_buf(sealed, crypto_aead_xchacha20poly1305_ietf_NPUBBYTES);
	crypto_aead_xchacha20poly1305_ietf_encrypt(sealed + crypto_aead_xchacha20poly1305_ietf_NPUBBYTES, &clen,
	                                           e->key, VEIL_KEY_BYTES, ad, adlen, NULL, sealed, s->key);
	sqlite3_stmt *st = prep(s, "INSERT INTO epochs (key_id, instance_id, epoch, sealed, send_from, send_until,"
	                           " accept_until, superseded_at, grace, flags) VALUES (?,?,?,?,?,?,?,?,?,?)");
	if (st) {
		sqlite3_bind_int64(st, 1, e->key_id);
		sqlite3_bind_int64(st, 2, e->instance);
		sqlite3_bind_int64(st, 3, e->epoch);
		sqlite3_bind_blob(st, 4, sealed, (int)sizeof(sealed), SQLITE_TRANSIENT);
		sqlite3_bind_int64(st, 5, i64(e->send_from));
		sqlite3_bind_int64(st, 6, i64(e->send_until));
		sqlite3_bind_int64(st, 7, i64(e->accept_until));
		sqlite3_bind_int64(st, 8, i64(e->superseded_at));
		sqlite3_bind_int64(st, 9, e->grace_s);
		sqlite3_bind_int(st, 10, e->flags);
	}
	return run(st);
}

int kd_store__epoch_supersede(struct kd_store *s, uint32_t key_id, uint64_t at)
{
	sqlite3_stmt *st = prep(s, "UPDATE epochs SET superseded_at = ? WHERE key_id = ? AND superseded_at = 0");
	if (st) {
		sqlite3_bind_int64(st, 1, i64(at));
		sqlite3_bind_int64(st, 2, key_id);
	}
	return run(st);
}

int kd_store__epochs_each(struct kd_store *s, kd_epoch_cb cb, void *ctx)
{
	if (!s->key)
		return VEIL_ERR_INVAL;
	sqlite3_stmt *st = prep(s, "SELECT e.key_id, e.instance_id, e.epoch, e.sealed, e.send_from, e.send_until,"
	                           " e.accept_until, e.superseded_at, e.grace, e.flags, i.filter FROM epochs e"
	                           " JOIN instances i ON i.id = e.instance_id ORDER BY e.key_id");
	if (!st)
		return VEIL_ERR_IO;
	int rc = VEIL_OK, step;
	while (rc == VEIL_OK && (step = sqlite3_step(st)) == SQLITE_ROW) {
		struct kd_epoch e = { 0 };
		e.key_id = (uint32_t)sqlite3_column_int64(st, 0);
		e.instance = sqlite3_column_int64(st, 1);
		e.epoch = (uint32_t)sqlite3_column_int64(st, 2);
		e.send_from = u64col(st, 4);
		e.send_until = u64col(st, 5);
		e.accept_until = u64col(st, 6);
		e.superseded_at = u64col(st, 7);
		e.grace_s = (uint32_t)sqlite3_column_int64(st, 8);
		e.flags = (uint8_t)sqlite3_column_int(st, 9);
		const char *filter = (const char *)sqlite3_column_text(st, 10);
		const uint8_t *sealed = sqlite3_column_blob(st, 3);
		if (!filter || !sealed || sqlite3_column_bytes(st, 3) != (int)SEALED_BYTES ||
		    strlen(filter) > VEIL__GRANT_SCOPE_MAX) {
			rc = VEIL_ERR_STATE;
			break;
		}
		uint8_t ad[VEIL__GRANT_SCOPE_MAX + 8];
		size_t adlen;
		epoch_ad(filter, e.key_id, e.epoch, ad, &adlen);
		e.key = sodium_malloc(VEIL_KEY_BYTES);
		if (!e.key) {
			rc = VEIL_ERR_NOMEM;
			break;
		}
		unsigned long long klen;
		if (crypto_aead_xchacha20poly1305_ietf_decrypt(e.key, &klen, NULL,
		                                               sealed + crypto_aead_xchacha20poly1305_ietf_NPUBBYTES,
		                                               SEALED_BYTES - crypto_aead_xchacha20poly1305_ietf_NPUBBYTES,
		                                               ad, adlen, sealed, s->key) != 0) {
			/* Another storage key, or a row moved or altered. */
			sodium_free(e.key);
			rc = VEIL_ERR_DECRYPT;
			break;
		}
		rc = cb(ctx, filter, &e);
	}
	sqlite3_finalize(st);
	return rows_done(rc, step);
}

int kd_store__epoch_delete(struct kd_store *s, uint32_t key_id)
{
	sqlite3_stmt *st = prep(s, "DELETE FROM grants WHERE key_id = ?");
	if (st)
		sqlite3_bind_int64(st, 1, key_id);
	int rc = run(st);
	if (rc != VEIL_OK)
		return rc;
	st = prep(s, "DELETE FROM epochs WHERE key_id = ?");
	if (st)
		sqlite3_bind_int64(st, 1, key_id);
	return run(st);
}

int kd_store__checkpoint(struct kd_store *s)
{
	/* A reader (`veil keys`) holding the WAL makes it busy: keyd's loop
	 * does not wait for it, the caller tries again later. */
	sqlite3_busy_timeout(s->db, 0);
	int rc = sqlite3_wal_checkpoint_v2(s->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
	sqlite3_busy_timeout(s->db, BUSY_TIMEOUT_MS);
	return rc == SQLITE_OK ? VEIL_OK : rc == SQLITE_BUSY ? VEIL_ERR_TIMEOUT : VEIL_ERR_IO;
}

/* ---- devices --------------------------------------------------------------- */

#define DEVICE_COLS                                                                                      \
	"cred_id, client_id, device_pk, roles, expires_at, msg_ts, msg_nonce, rx_pk, issued_version,"      \
	" published_version, acked_version, last_issue, authority_id"

static void device_from(sqlite3_stmt *st, struct kd_device_row *d)
{
	blobcol(st, 0, d->cred_id, sizeof(d->cred_id));
	textcol(st, 1, d->client_id, sizeof(d->client_id));
	blobcol(st, 2, d->device_pk, sizeof(d->device_pk));
	textcol(st, 3, d->roles, sizeof(d->roles));
	d->expires_at = u64col(st, 4);
	d->msg_ts = u64col(st, 5);
	blobcol(st, 6, d->msg_nonce, sizeof(d->msg_nonce));
	blobcol(st, 7, d->rx_pk, sizeof(d->rx_pk));
	d->issued_version = u64col(st, 8);
	d->published_version = u64col(st, 9);
	d->acked_version = u64col(st, 10);
	d->last_issue = u64col(st, 11);
	blobcol(st, 12, d->authority_id, sizeof(d->authority_id));
}

int kd_store__device_put(struct kd_store *s, const struct kd_device_row *d)
{
	sqlite3_stmt *st = prep(s, "INSERT OR REPLACE INTO devices (" DEVICE_COLS ") VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)");
	if (st) {
		sqlite3_bind_blob(st, 1, d->cred_id, sizeof(d->cred_id), SQLITE_STATIC);
		sqlite3_bind_text(st, 2, d->client_id, -1, SQLITE_STATIC);
		sqlite3_bind_blob(st, 3, d->device_pk, sizeof(d->device_pk), SQLITE_STATIC);
		sqlite3_bind_text(st, 4, d->roles, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 5, i64(d->expires_at));
		sqlite3_bind_int64(st, 6, i64(d->msg_ts));
		sqlite3_bind_blob(st, 7, d->msg_nonce, sizeof(d->msg_nonce), SQLITE_STATIC);
		sqlite3_bind_blob(st, 8, d->rx_pk, sizeof(d->rx_pk), SQLITE_STATIC);
		sqlite3_bind_int64(st, 9, i64(d->issued_version));
		sqlite3_bind_int64(st, 10, i64(d->published_version));
		sqlite3_bind_int64(st, 11, i64(d->acked_version));
		sqlite3_bind_int64(st, 12, i64(d->last_issue));
		sqlite3_bind_blob(st, 13, d->authority_id, sizeof(d->authority_id), SQLITE_STATIC);
	}
	return run(st);
}

int kd_store__device_get(struct kd_store *s, const uint8_t cred_id[VEIL_CREDENTIAL_ID_BYTES], struct kd_device_row *d)
{
	sqlite3_stmt *st = prep(s, "SELECT " DEVICE_COLS " FROM devices WHERE cred_id = ?");
	if (!st)
		return VEIL_ERR_IO;
	sqlite3_bind_blob(st, 1, cred_id, VEIL_CREDENTIAL_ID_BYTES, SQLITE_STATIC);
	int step = sqlite3_step(st);
	int rc = step == SQLITE_ROW ? VEIL_OK : step == SQLITE_DONE ? VEIL_ERR_NOT_FOUND : VEIL_ERR_IO;
	if (rc == VEIL_OK)
		device_from(st, d);
	sqlite3_finalize(st);
	return rc;
}

int kd_store__device_delete(struct kd_store *s, const uint8_t cred_id[VEIL_CREDENTIAL_ID_BYTES])
{
	static const char *const SQL[] = { "DELETE FROM grants WHERE cred_id = ?", "DELETE FROM devices WHERE cred_id = ?" };
	int rc = VEIL_OK;
	for (size_t i = 0; rc == VEIL_OK && i < 2; i++) {
		sqlite3_stmt *st = prep(s, SQL[i]);
		if (st)
			sqlite3_bind_blob(st, 1, cred_id, VEIL_CREDENTIAL_ID_BYTES, SQLITE_STATIC);
		rc = run(st);
	}
	return rc;
}

int kd_store__device_published(struct kd_store *s, const uint8_t cred_id[VEIL_CREDENTIAL_ID_BYTES], uint64_t version)
{
	sqlite3_stmt *st = prep(s, "UPDATE devices SET published_version = ? WHERE cred_id = ? AND published_version < ?");
	if (st) {
		sqlite3_bind_int64(st, 1, i64(version));
		sqlite3_bind_blob(st, 2, cred_id, VEIL_CREDENTIAL_ID_BYTES, SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, i64(version));
	}
	return run(st);
}

int kd_store__devices_each(struct kd_store *s, kd_device_cb cb, void *ctx)
{
	sqlite3_stmt *st = prep(s, "SELECT " DEVICE_COLS " FROM devices ORDER BY client_id, cred_id");
	if (!st)
		return VEIL_ERR_IO;
	int rc = VEIL_OK, step;
	struct kd_device_row d;
	while (rc == VEIL_OK && (step = sqlite3_step(st)) == SQLITE_ROW) {
		device_from(st, &d);
		rc = cb(ctx, &d);
	}
	sqlite3_finalize(st);
	return rows_done(rc, step);
}

int kd_store__grants_set(struct kd_store *s, const uint8_t cred_id[VEIL_CREDENTIAL_ID_BYTES], uint64_t version,
                         const struct kd_grant_ref *g, size_t n)
{
	sqlite3_stmt *st = prep(s, "DELETE FROM grants WHERE cred_id = ?");
	if (st)
		sqlite3_bind_blob(st, 1, cred_id, VEIL_CREDENTIAL_ID_BYTES, SQLITE_STATIC);
	int rc = run(st);
	for (size_t i = 0; rc == VEIL_OK && i < n; i++) {
		st = prep(s, "INSERT INTO grants (cred_id, key_id, flags, version) VALUES (?,?,?,?)");
		if (st) {
			sqlite3_bind_blob(st, 1, cred_id, VEIL_CREDENTIAL_ID_BYTES, SQLITE_STATIC);
			sqlite3_bind_int64(st, 2, g[i].key_id);
			sqlite3_bind_int(st, 3, g[i].flags);
			sqlite3_bind_int64(st, 4, i64(version));
		}
		rc = run(st);
	}
	return rc;
}

int kd_store__grants_get(struct kd_store *s, const uint8_t cred_id[VEIL_CREDENTIAL_ID_BYTES],
                         struct kd_grant_ref **g, size_t *n)
{
	*g = NULL;
	*n = 0;
	sqlite3_stmt *st = prep(s, "SELECT key_id, flags FROM grants WHERE cred_id = ? ORDER BY key_id");
	if (!st)
		return VEIL_ERR_IO;
	sqlite3_bind_blob(st, 1, cred_id, VEIL_CREDENTIAL_ID_BYTES, SQLITE_STATIC);
	int rc = VEIL_OK, step;
	size_t cap = 0;
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		if (*n == cap) {
			cap = cap ? cap * 2 : 8;
			void *p = realloc(*g, cap * sizeof(**g));
			if (!p) {
				rc = VEIL_ERR_NOMEM;
				break;
			}
			*g = p;
		}
		(*g)[*n].key_id = (uint32_t)sqlite3_column_int64(st, 0);
		(*g)[*n].flags = (uint8_t)sqlite3_column_int(st, 1);
		(*n)++;
	}
	sqlite3_finalize(st);
	rc = rows_done(rc, step);
	if (rc != VEIL_OK) {
		free(*g);
		*g = NULL;
		*n = 0;
	}
	return rc;
}

/* ---- audit, admin ------------------------------------------------------------ */

int kd_store__audit(struct kd_store *s, uint64_t now, const char *event, const char *fields)
{
	sqlite3_stmt *st = prep(s, "INSERT INTO audit (t, event, fields) VALUES (?,?,?)");
	if (st) {
		sqlite3_bind_int64(st, 1, i64(now));
		sqlite3_bind_text(st, 2, event, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, fields, -1, SQLITE_STATIC);
	}
	return run(st);
}

int kd_store__audit_prune(struct kd_store *s, uint64_t before, uint64_t *n)
{
	*n = 0;
	/* At most this many a call (once a minute): the first prune of a store
	 * that kept everything must not stall keyd's only thread. */
	sqlite3_stmt *st = prep(s, "DELETE FROM audit WHERE rowid IN (SELECT rowid FROM audit WHERE t < ? LIMIT 20000)");
	if (st)
		sqlite3_bind_int64(st, 1, i64(before));
	int rc = run(st);
	if (rc == VEIL_OK) {
		*n += (uint64_t)sqlite3_changes(s->db);
		st = prep(s, "DELETE FROM rotate_requests WHERE done_at IS NOT NULL AND done_at < ?");
		if (st)
			sqlite3_bind_int64(st, 1, i64(before));
		rc = run(st);
	}
	if (rc == VEIL_OK)
		*n += (uint64_t)sqlite3_changes(s->db);
	return rc;
}

int kd_store__rotate_request(struct kd_store *s, const char *scope, uint64_t now)
{
	sqlite3_stmt *st = prep(s, "INSERT INTO rotate_requests (scope, requested_at) VALUES (?, ?)");
	if (st) {
		sqlite3_bind_text(st, 1, scope, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, i64(now));
	}
	return run(st);
}

int kd_store__scope_known(struct kd_store *s, const char *name, bool *known)
{
	sqlite3_stmt *st = prep(s, "SELECT EXISTS (SELECT 1 FROM scopes WHERE filter = ?1)"
	                           " OR EXISTS (SELECT 1 FROM instances WHERE filter = ?1)");
	if (!st)
		return VEIL_ERR_IO;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st) == SQLITE_ROW ? VEIL_OK : VEIL_ERR_IO;
	*known = rc == VEIL_OK && sqlite3_column_int(st, 0) != 0;
	sqlite3_finalize(st);
	return rc;
}

int kd_store__scopes_print(struct kd_store *s, FILE *f)
{
	sqlite3_stmt *st = prep(s, "SELECT filter FROM scopes ORDER BY filter");
	if (!st)
		return VEIL_ERR_IO;
	int step;
	while ((step = sqlite3_step(st)) == SQLITE_ROW)
		fprintf(f, "  %s\n", (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	return step == SQLITE_DONE ? VEIL_OK : VEIL_ERR_IO;
}

int kd_store__rotate_next(struct kd_store *s, int64_t *id, char *scope, size_t cap)
{
	sqlite3_stmt *st = prep(s, "SELECT id, scope FROM rotate_requests WHERE done_at IS NULL ORDER BY id LIMIT 1");
	if (!st)
		return VEIL_ERR_IO;
	int step = sqlite3_step(st);
	int rc = step == SQLITE_ROW ? VEIL_OK : step == SQLITE_DONE ? VEIL_ERR_NOT_FOUND : VEIL_ERR_IO;
	if (rc == VEIL_OK) {
		*id = sqlite3_column_int64(st, 0);
		textcol(st, 1, scope, cap);
	}
	sqlite3_finalize(st);
	return rc;
}

int kd_store__rotate_done(struct kd_store *s, int64_t id, uint64_t now, const char *result)
{
	sqlite3_stmt *st = prep(s, "UPDATE rotate_requests SET done_at = ?, result = ? WHERE id = ?");
	if (st) {
		sqlite3_bind_int64(st, 1, i64(now));
		sqlite3_bind_text(st, 2, result, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, id);
	}
	return run(st);
}

int kd_store__report_status(struct kd_store *s, FILE *f, uint64_t now)
{
	uint64_t next_id = 0, last_version = 0;
	if (meta_get(s, "key_id_next", &next_id) != VEIL_OK || meta_get(s, "version_last", &last_version) != VEIL_OK)
		return VEIL_ERR_IO;
	fprintf(f, "schema %d, next key id 0x%08llx, last version %llu\n", kd_store__schema(s),
	        (unsigned long long)next_id, (unsigned long long)last_version);
	/* Per epoch: how many devices were granted it and how many acknowledged
	 * a bundle holding it. */
	sqlite3_stmt *st = prep(s,
		"SELECT i.filter, e.epoch, e.key_id, e.send_from, e.send_until, e.accept_until, e.superseded_at,"
		" (SELECT COUNT(*) FROM grants g WHERE g.key_id = e.key_id),"
		" (SELECT COUNT(*) FROM grants g JOIN devices d ON d.cred_id = g.cred_id"
		"   WHERE g.key_id = e.key_id AND d.acked_version >= g.version)"
		" FROM epochs e JOIN instances i ON i.id = e.instance_id ORDER BY i.filter, e.epoch");
	if (!st)
		return VEIL_ERR_IO;
	fprintf(f, "%-40s %8s %10s %-8s %8s %8s\n", "instance", "epoch", "key id", "state", "granted", "acked");
	int step;
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		uint64_t from = u64col(st, 3), until = u64col(st, 4), acc = u64col(st, 5), sup = u64col(st, 6);
		const char *state = sup ? "superseded" : now < from ? "ahead" : now < until ? "sending" : now < acc ? "accepted" : "expired";
		fprintf(f, "%-40s %8lld 0x%08llx %-8s %8lld %8lld\n", (const char *)sqlite3_column_text(st, 0),
		        (long long)sqlite3_column_int64(st, 1), (long long)sqlite3_column_int64(st, 2), state,
		        (long long)sqlite3_column_int64(st, 7), (long long)sqlite3_column_int64(st, 8));
	}
	sqlite3_finalize(st);
	if (step != SQLITE_DONE)
		return VEIL_ERR_IO;
	st = prep(s, "SELECT scope, requested_at, done_at, result FROM rotate_requests ORDER BY id DESC LIMIT 5");
	if (!st)
		return VEIL_ERR_IO;
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		const char *scope = (const char *)sqlite3_column_text(st, 0), *result =
		                                                                (const char *)sqlite3_column_text(st, 3);
		fprintf(f, "rotate %s requested %lld: %s\n", scope ? scope : "-", (long long)sqlite3_column_int64(st, 1),
		        sqlite3_column_type(st, 2) == SQLITE_NULL ? "pending" : result ? result : "-");
	}
	sqlite3_finalize(st);
	return step == SQLITE_DONE ? VEIL_OK : VEIL_ERR_IO;
}

struct device_report {
	struct kd_store *s;
	FILE *f;
};

/* Under a device's line, every epoch it is granted: acknowledged when the
 * device acknowledged a bundle version that carried it. */
static int print_device_epochs(struct kd_store *s, FILE *f, const struct kd_device_row *d)
{
	sqlite3_stmt *st = prep(s,
		"SELECT i.filter, e.epoch, e.key_id, g.version, e.superseded_at FROM grants g"
		" JOIN epochs e ON e.key_id = g.key_id JOIN instances i ON i.id = e.instance_id"
		" WHERE g.cred_id = ? ORDER BY i.filter, e.epoch");
	if (!st)
		return VEIL_ERR_IO;
	sqlite3_bind_blob(st, 1, d->cred_id, VEIL_CREDENTIAL_ID_BYTES, SQLITE_STATIC);
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		uint64_t v = u64col(st, 3);
		fprintf(f, "  %-38s epoch %lld 0x%08llx in version %llu: %s%s\n", (const char *)sqlite3_column_text(st, 0),
		        (long long)sqlite3_column_int64(st, 1), (long long)sqlite3_column_int64(st, 2),
		        (unsigned long long)v, d->acked_version >= v ? "acknowledged" : "not acknowledged",
		        u64col(st, 4) ? " (superseded)" : "");
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? VEIL_OK : VEIL_ERR_IO;
}

static int print_device(void *ctx, const struct kd_device_row *d)
{
	struct device_report *r = ctx;
	FILE *f = r->f;
	char id[2 * VEIL_CREDENTIAL_ID_BYTES + 1];
	kd_log__hex(d->cred_id, VEIL_CREDENTIAL_ID_BYTES, id, sizeof(id));
	fprintf(f, "%-24s %s %-20s issued %llu published %llu acked %llu%s\n", d->client_id, id,
	        d->roles[0] ? d->roles : "-", (unsigned long long)d->issued_version,
	        (unsigned long long)d->published_version, (unsigned long long)d->acked_version,
	        d->acked_version == d->issued_version ? "" : " (not acknowledged)");
	return print_device_epochs(r->s, f, d);
}

int kd_store__report_devices(struct kd_store *s, FILE *f)
{
	fprintf(f, "%-24s %-32s %-20s versions\n", "client id", "credential id", "roles");
	struct device_report r = { s, f };
	return kd_store__devices_each(s, print_device, &r);
}
