/*
 * Tests for keyd/store.c: the storage key file (created 0600, refused when
 * others may read it, malformed), the schema (created, reopened, a newer
 * one refused), sealing at rest (the database and its WAL hold none of the
 * topic keys: every key is searched for in the raw bytes; another storage
 * key or a moved row opens nothing), counters that never go back across a
 * reopen, devices, grants, rotate requests, and deleting keys (secure
 * delete and WAL truncation leave no copy).
 */
#include <check.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "veil/error.h"
#include "store.h"

#include "check_run.h"
#include "files.h"
#include "timing.h"

static char dir[256], keypath[300], dbpath[300], walpath[310];
static uint8_t *skey;

static void setup(void)
{
	ck_assert_int_eq(test_mkdtemp(dir, sizeof(dir)), 0);
	snprintf(keypath, sizeof(keypath), "%s/storage.key", dir);
	snprintf(dbpath, sizeof(dbpath), "%s/keyd.db", dir);
	snprintf(walpath, sizeof(walpath), "%s-wal", dbpath);
	char err[256] = "";
	ck_assert_int_eq(kd_storage_key__create(keypath, err, sizeof(err)), VEIL_OK);
	ck_assert_int_eq(kd_storage_key__load(keypath, &skey, err, sizeof(err)), VEIL_OK);
}

static void teardown(void)
{
	kd_storage_key__free(&skey);
	test_rmtree(dir);
}

static struct kd_store *open_store(const uint8_t *key, bool create)
{
	struct kd_store *s = NULL;
	char err[256] = "";
	int rc = kd_store__open(dbpath, key, create, &s, err, sizeof(err));
	ck_assert_msg(rc == VEIL_OK, "open: %s", err);
	return s;
}

/* Whether the database file or its WAL holds these bytes anywhere. */
static bool on_disk(const uint8_t *p, size_t n)
{
	return test_file_has_n(dbpath, p, n) || test_file_has_n(walpath, p, n);
}

START_TEST(storage_key_file)
{
	struct stat st;
	ck_assert_int_eq(stat(keypath, &st), 0);
	ck_assert_uint_eq(st.st_mode & 0777, 0600);
	char err[256] = "";
	ck_assert_int_ne(kd_storage_key__create(keypath, err, sizeof(err)), VEIL_OK); /* never overwritten */
	ck_assert_ptr_nonnull(strstr(err, "exists"));
	uint8_t *k2 = NULL;
	ck_assert_int_eq(chmod(keypath, 0640), 0);
	ck_assert_int_eq(kd_storage_key__load(keypath, &k2, err, sizeof(err)), VEIL_ERR_PERM);
	ck_assert_ptr_null(k2);
	char other[320];
	snprintf(other, sizeof(other), "%s/bad.key", dir);
	ck_assert_int_eq(test_write_file(other, "veil-storage-key-v1 AAAA\n", 0600), 0);
	ck_assert_int_eq(kd_storage_key__load(other, &k2, err, sizeof(err)), VEIL_ERR_PARSE);
	ck_assert_ptr_nonnull(strstr(err, "bad.key:1: not a storage key"));
	ck_assert_int_eq(test_write_file(other, "# comment\n\nveil-storage-key-v1 "
	                                        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=  # trailing\nmore\n", 0600), 0);
	ck_assert_int_eq(kd_storage_key__load(other, &k2, err, sizeof(err)), VEIL_ERR_PARSE); /* a second line */
	ck_assert_int_eq(test_write_file(other, "# comment\n\nveil-storage-key-v1 "
	                                        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=  # trailing\n", 0600), 0);
	ck_assert_int_eq(kd_storage_key__load(other, &k2, err, sizeof(err)), VEIL_OK);
	ck_assert(sodium_is_zero(k2, KD_STORAGE_KEY_BYTES));
	kd_storage_key__free(&k2);
	ck_assert_ptr_null(k2);
}
END_TEST

START_TEST(schema)
{
	struct kd_store *s = NULL;
	char err[256] = "";
	ck_assert_int_eq(kd_store__open(dbpath, skey, false, &s, err, sizeof(err)), VEIL_ERR_NOT_FOUND);
	s = open_store(skey, true);
	ck_assert_int_eq(kd_store__schema(s), KD_STORE_SCHEMA);
	kd_store__close(&s);
	ck_assert_ptr_null(s);
	struct stat st;
	ck_assert_int_eq(stat(dbpath, &st), 0);
	ck_assert_uint_eq(st.st_mode & 077, 0); /* private to keyd's user */
	s = open_store(skey, false);
	ck_assert_int_eq(kd_store__schema(s), KD_STORE_SCHEMA);
	kd_store__close(&s);
	/* A database from a newer keyd is refused, not downgraded. */
	sqlite3 *db;
	ck_assert_int_eq(sqlite3_open(dbpath, &db), SQLITE_OK);
	ck_assert_int_eq(sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	ck_assert_int_eq(kd_store__open(dbpath, skey, false, &s, err, sizeof(err)), VEIL_ERR_VERSION);
	ck_assert_ptr_nonnull(strstr(err, "schema 99 is newer"));
	ck_assert_ptr_null(s);
}
END_TEST

START_TEST(counters_never_go_back)
{
	struct kd_store *s = open_store(skey, true);
	uint32_t id1, id2, id3;
	uint64_t v1, v2, v3;
	ck_assert_int_eq(kd_store__next_key_id(s, &id1), VEIL_OK);
	ck_assert_uint_eq(id1, 0x80000000U);
	ck_assert_int_eq(kd_store__next_key_id(s, &id2), VEIL_OK);
	ck_assert_uint_eq(id2, id1 + 1);
	ck_assert_int_eq(kd_store__next_version(s, 5000, &v1), VEIL_OK);
	ck_assert_uint_eq(v1, 5000);
	ck_assert_int_eq(kd_store__next_version(s, 4000, &v2), VEIL_OK); /* clock went back */
	ck_assert_uint_eq(v2, 5001);
	/* A rolled-back transaction hands out nothing. */
	ck_assert_int_eq(kd_store__begin(s), VEIL_OK);
	ck_assert_int_eq(kd_store__next_key_id(s, &id3), VEIL_OK);
	kd_store__rollback(s);
	kd_store__close(&s);
	s = open_store(skey, false);
	ck_assert_int_eq(kd_store__next_key_id(s, &id3), VEIL_OK);
	ck_assert_uint_eq(id3, id2 + 1);
	ck_assert_int_eq(kd_store__next_version(s, 1, &v3), VEIL_OK);
	ck_assert_uint_eq(v3, 5002);
	/* The range ends at 0xffffffff: refused, never wrapped into static ids. */
	sqlite3 *db;
	ck_assert_int_eq(sqlite3_open(dbpath, &db), SQLITE_OK);
	ck_assert_int_eq(sqlite3_exec(db, "UPDATE meta SET v = 4294967295 WHERE k = 'key_id_next'", NULL, NULL, NULL),
	                 SQLITE_OK);
	sqlite3_close(db);
	ck_assert_int_eq(kd_store__next_key_id(s, &id3), VEIL_OK);
	ck_assert_uint_eq(id3, 0xffffffffU);
	ck_assert_int_eq(kd_store__next_key_id(s, &id3), VEIL_ERR_TOO_LARGE);
	kd_store__close(&s);
}
END_TEST

#define NKEYS 40

struct seen {
	size_t n;
	uint8_t keys[NKEYS][VEIL_KEY_BYTES];
	uint32_t ids[NKEYS];
};

static int collect(void *ctx, const char *filter, struct kd_epoch *e)
{
	struct seen *v = ctx;
	ck_assert_ptr_nonnull(strstr(filter, "factory/"));
	ck_assert_uint_lt(v->n, NKEYS);
	memcpy(v->keys[v->n], e->key, VEIL_KEY_BYTES);
	v->ids[v->n++] = e->key_id;
	sodium_free(e->key);
	return VEIL_OK;
}

START_TEST(sealed_at_rest)
{
	struct kd_store *s = open_store(skey, true);
	uint8_t keys[NKEYS][VEIL_KEY_BYTES];
	int64_t scope_id, inst[4];
	uint64_t anchor;
	ck_assert_int_eq(kd_store__begin(s), VEIL_OK);
	ck_assert_int_eq(kd_store__scope(s, "factory/%c/#", 1000, &scope_id, &anchor), VEIL_OK);
	ck_assert_uint_eq(anchor, 1000);
	for (int i = 0; i < 4; i++) {
		char f[64], o[16];
		snprintf(o, sizeof(o), "s%d", i);
		snprintf(f, sizeof(f), "factory/%s/#", o);
		ck_assert_int_eq(kd_store__instance(s, scope_id, f, o, &inst[i]), VEIL_OK);
	}
	for (int i = 0; i < NKEYS; i++) {
		struct kd_epoch e = { .instance = inst[i % 4], .epoch = (uint32_t)(i / 4), .send_from = 1000,
			              .send_until = 2000, .accept_until = 3000 };
		randombytes_buf(keys[i], VEIL_KEY_BYTES);
		e.key = keys[i];
		ck_assert_int_eq(kd_store__next_key_id(s, &e.key_id), VEIL_OK);
		char f[64];
		snprintf(f, sizeof(f), "factory/s%d/#", i % 4);
		ck_assert_int_eq(kd_store__epoch_add(s, f, &e), VEIL_OK);
	}
	ck_assert_int_eq(kd_store__commit(s), VEIL_OK);
	/* Anchor of an existing scope is kept. */
	ck_assert_int_eq(kd_store__scope(s, "factory/%c/#", 9999, &scope_id, &anchor), VEIL_OK);
	ck_assert_uint_eq(anchor, 1000);
	/* The raw bytes of the database and its WAL: no key, with the store
	 * still open (WAL full) and after closing (checkpointed). */
	for (int i = 0; i < NKEYS; i++)
		ck_assert_msg(!on_disk(keys[i], VEIL_KEY_BYTES), "key %d in the database file", i);
	kd_store__close(&s);
	for (int i = 0; i < NKEYS; i++)
		ck_assert_msg(!on_disk(keys[i], VEIL_KEY_BYTES), "key %d in the database file", i);
	/* Reopened: every key comes back (restart loses nothing). */
	s = open_store(skey, false);
	struct seen v = { 0 };
	ck_assert_int_eq(kd_store__epochs_each(s, collect, &v), VEIL_OK);
	ck_assert_uint_eq(v.n, NKEYS);
	for (int i = 0; i < NKEYS; i++) {
		ck_assert_uint_eq(v.ids[i], 0x80000000U + (uint32_t)i);
		ck_assert_mem_eq(v.keys[i], keys[i], VEIL_KEY_BYTES);
	}
	kd_store__close(&s);
	/* Another storage key opens nothing. */
	uint8_t wrong[KD_STORAGE_KEY_BYTES];
	memcpy(wrong, skey, sizeof(wrong));
	wrong[0] ^= 1;
	s = open_store(wrong, false);
	v.n = 0;
	ck_assert_int_eq(kd_store__epochs_each(s, collect, &v), VEIL_ERR_DECRYPT);
	ck_assert_uint_eq(v.n, 0);
	kd_store__close(&s);
	/* A sealed key moved to another key id does not open (AAD binds it). */
	sqlite3 *db;
	ck_assert_int_eq(sqlite3_open(dbpath, &db), SQLITE_OK);
	ck_assert_int_eq(sqlite3_exec(db, "UPDATE epochs SET sealed = (SELECT sealed FROM epochs WHERE key_id = 2147483649)"
	                                  " WHERE key_id = 2147483648", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	s = open_store(skey, false);
	v.n = 0;
	ck_assert_int_eq(kd_store__epochs_each(s, collect, &v), VEIL_ERR_DECRYPT);
	/* Admin access (no storage key) never unseals. */
	kd_store__close(&s);
	s = open_store(NULL, false);
	ck_assert_int_eq(kd_store__epochs_each(s, collect, &v), VEIL_ERR_INVAL);
	kd_store__close(&s);
}
END_TEST

START_TEST(delete_leaves_no_copy)
{
	/* Keys written unsealed would be found; here we plant known bytes
	 * through the sealed path and check that a deleted row's sealed blob is
	 * gone from the file and the WAL (secure_delete + truncate). */
	struct kd_store *s = open_store(skey, true);
	int64_t scope_id, inst;
	uint64_t anchor;
	uint8_t key[VEIL_KEY_BYTES];
	randombytes_buf(key, sizeof(key));
	ck_assert_int_eq(kd_store__scope(s, "a/#", 1, &scope_id, &anchor), VEIL_OK);
	ck_assert_int_eq(kd_store__instance(s, scope_id, "a/#", NULL, &inst), VEIL_OK);
	struct kd_epoch e = { .instance = inst, .epoch = 1, .send_from = 1, .send_until = 2, .accept_until = 3, .key = key };
	ck_assert_int_eq(kd_store__next_key_id(s, &e.key_id), VEIL_OK);
	ck_assert_int_eq(kd_store__epoch_add(s, "a/#", &e), VEIL_OK);
	kd_store__close(&s);
	/* Read the sealed blob as stored. */
	sqlite3 *db;
	sqlite3_stmt *st;
	uint8_t sealed[72];
	ck_assert_int_eq(sqlite3_open(dbpath, &db), SQLITE_OK);
	ck_assert_int_eq(sqlite3_prepare_v2(db, "SELECT sealed FROM epochs", -1, &st, NULL), SQLITE_OK);
	ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
	ck_assert_int_eq(sqlite3_column_bytes(st, 0), (int)sizeof(sealed));
	memcpy(sealed, sqlite3_column_blob(st, 0), sizeof(sealed));
	sqlite3_finalize(st);
	sqlite3_close(db);
	ck_assert(test_file_has_n(dbpath, sealed, sizeof(sealed)));
	s = open_store(skey, false);
	const uint8_t cred[VEIL_CREDENTIAL_ID_BYTES] = { 1 };
	struct kd_grant_ref g = { e.key_id, 2 };
	ck_assert_int_eq(kd_store__grants_set(s, cred, 7, &g, 1), VEIL_OK);
	ck_assert_int_eq(kd_store__epoch_delete(s, e.key_id), VEIL_OK);
	ck_assert_int_eq(kd_store__checkpoint(s), VEIL_OK);
	ck_assert(!on_disk(sealed, sizeof(sealed)));
	struct kd_grant_ref *gr;
	size_t n;
	ck_assert_int_eq(kd_store__grants_get(s, cred, &gr, &n), VEIL_OK);
	ck_assert_uint_eq(n, 0); /* the grant rows of a deleted key go with it */
	free(gr);
	kd_store__close(&s);
	ck_assert(!on_disk(sealed, sizeof(sealed)));
}
END_TEST

static int count_dev(void *ctx, const struct kd_device_row *d)
{
	(*(int *)ctx)++;
	ck_assert_str_eq(d->client_id, "sensor-1");
	return VEIL_OK;
}

START_TEST(devices_grants_requests)
{
	struct kd_store *s = open_store(skey, true);
	struct kd_device_row d = { 0 }, got;
	memset(d.cred_id, 0xa0, sizeof(d.cred_id));
	snprintf(d.client_id, sizeof(d.client_id), "sensor-1");
	snprintf(d.roles, sizeof(d.roles), "sensor,eu");
	memset(d.authority_id, 0x5a, sizeof(d.authority_id));
	d.msg_ts = 1700000000;
	d.issued_version = 10;
	d.expires_at = 4102444800;
	memset(d.rx_pk, 7, sizeof(d.rx_pk));
	ck_assert_int_eq(kd_store__device_get(s, d.cred_id, &got), VEIL_ERR_NOT_FOUND);
	ck_assert_int_eq(kd_store__device_put(s, &d), VEIL_OK);
	ck_assert_int_eq(kd_store__device_published(s, d.cred_id, 10), VEIL_OK);
	ck_assert_int_eq(kd_store__device_published(s, d.cred_id, 9), VEIL_OK); /* never goes back */
	kd_store__close(&s);
	s = open_store(skey, false);
	ck_assert_int_eq(kd_store__device_get(s, d.cred_id, &got), VEIL_OK);
	ck_assert_str_eq(got.client_id, "sensor-1");
	ck_assert_str_eq(got.roles, "sensor,eu");
	ck_assert_mem_eq(got.authority_id, d.authority_id, sizeof(d.authority_id));
	ck_assert_uint_eq(got.msg_ts, 1700000000);
	ck_assert_uint_eq(got.published_version, 10);
	ck_assert_uint_eq(got.expires_at, 4102444800);
	ck_assert_mem_eq(got.rx_pk, d.rx_pk, sizeof(d.rx_pk));
	int n = 0;
	ck_assert_int_eq(kd_store__devices_each(s, count_dev, &n), VEIL_OK);
	ck_assert_int_eq(n, 1);
	struct kd_grant_ref g[3] = { { 0x80000001U, 2 }, { 0x80000002U, 0 }, { 0x80000005U, 6 } }, *gr;
	size_t ng;
	ck_assert_int_eq(kd_store__grants_set(s, d.cred_id, 10, g, 3), VEIL_OK);
	ck_assert_int_eq(kd_store__grants_set(s, d.cred_id, 11, g + 1, 2), VEIL_OK); /* replaces */
	ck_assert_int_eq(kd_store__grants_get(s, d.cred_id, &gr, &ng), VEIL_OK);
	ck_assert_uint_eq(ng, 2);
	ck_assert_uint_eq(gr[0].key_id, 0x80000002U);
	ck_assert_uint_eq(gr[1].flags, 6);
	free(gr);
	int64_t id;
	char scope[64];
	ck_assert_int_eq(kd_store__rotate_next(s, &id, scope, sizeof(scope)), VEIL_ERR_NOT_FOUND);
	ck_assert_int_eq(kd_store__rotate_request(s, "factory/#", 5), VEIL_OK);
	ck_assert_int_eq(kd_store__rotate_request(s, "other/#", 6), VEIL_OK);
	ck_assert_int_eq(kd_store__rotate_next(s, &id, scope, sizeof(scope)), VEIL_OK);
	ck_assert_str_eq(scope, "factory/#");
	ck_assert_int_eq(kd_store__rotate_done(s, id, 7, "rotated 1 instance(s)"), VEIL_OK);
	ck_assert_int_eq(kd_store__rotate_next(s, &id, scope, sizeof(scope)), VEIL_OK);
	ck_assert_str_eq(scope, "other/#");
	ck_assert_int_eq(kd_store__audit(s, 8, "bundle", "client=sensor-1 version=10"), VEIL_OK);
	ck_assert_int_eq(kd_store__audit(s, 20, "bundle", "client=sensor-1 version=11"), VEIL_OK);
	/* Retention: rows and finished requests before the bound go, the rest stay. */
	uint64_t pruned = 0;
	ck_assert_int_eq(kd_store__audit_prune(s, 10, &pruned), VEIL_OK);
	ck_assert_uint_eq(pruned, 2); /* the audit row at 8, the request done at 7 */
	ck_assert_int_eq(kd_store__audit_prune(s, 10, &pruned), VEIL_OK);
	ck_assert_uint_eq(pruned, 0);
	/* The admin reports run on the admin (keyless) handle. */
	kd_store__close(&s);
	s = open_store(NULL, false);
	char path[320];
	snprintf(path, sizeof(path), "%s/report.txt", dir);
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(kd_store__report_devices(s, f), VEIL_OK);
	ck_assert_int_eq(kd_store__report_status(s, f, 100), VEIL_OK);
	fclose(f);
	ck_assert(test_file_has(path, "sensor-1"));
	ck_assert(test_file_has(path, "a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0"));
	ck_assert(test_file_has(path, "rotate other/# requested 6: pending"));
	kd_store__close(&s);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("keyd_store");
	TCase *tc = veil_tcase("keyd_store", 10);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, storage_key_file);
	tcase_add_test(tc, schema);
	tcase_add_test(tc, counters_never_go_back);
	tcase_add_test(tc, sealed_at_rest);
	tcase_add_test(tc, delete_leaves_no_copy);
	tcase_add_test(tc, devices_grants_requests);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return veil_check_run(suite());
}
