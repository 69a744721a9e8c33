/*
 * Tests for keyd taking keys away (keyd/rekey.c, issue 13) with real files,
 * a real store and an injected clock (tests/support/keyd_harness.c):
 *
 * - a device revoked while keyd was down: the rekey happens at keyd's start;
 * - a revocation right after the next epoch was granted ahead supersedes it
 *   too, and the other holders get a superseding epoch;
 * - a revoked credential stays named by the statement when its client id
 *   gets a new credential;
 * - a credential id of the lists that keyd never saw is named without end;
 * - the plugin's runtime revocation list (its admin API) is read and watched;
 * - a new keyd identity supersedes every key the previous one issued;
 * - a purged epoch leaves no copy of its sealed key in the database or its
 *   WAL, and a reader holding the WAL only delays the truncation.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>
#include <sqlite3.h>

#include "veil/veil.h"
#include "../../core/bundle.h"

#include "check_run.h"
#include "files.h"
#include "keyd_harness.h"
#include "material.h"
#include "timing.h"

static void reload_ok(void)
{
	char err[512] = "";
	ck_assert_msg(kd_service__reload(kdh.svc, kdh.cfgpath, &kdh.now, err, sizeof(err)) == VEIL_OK, "%s", err);
}

static void revoke_with(const char *line)
{
	ck_assert_int_eq(test_write_file(kdh.revpath, line, 0644), 0);
}

/* The key ids g holds for scope. */
static size_t key_ids(const struct veil__grants *g, const char *scope, uint32_t *out, size_t cap)
{
	size_t n = 0;
	for (size_t i = 0; i < g->n && n < cap; i++)
		if (!strcmp(g->g[i].scope, scope))
			out[n++] = g->g[i].key_id;
	return n;
}

/* The newest statement, verified; its entry of kind for id, or NULL. */
static bool stated(uint8_t kind, const uint8_t *id, size_t idlen, uint64_t *keep_until)
{
	struct kdh_pub *p = kdh_pub_of(VEIL__TOPIC_REVOCATION);
	ck_assert_ptr_nonnull(p);
	struct veil__trust tr = { .authorities = (const uint8_t(*)[VEIL_PK_BYTES])kdh.auth_pk, .n_authorities = 1,
		                  .now = kdh_secs() };
	struct veil__revstmt_view v;
	ck_assert_int_eq(veil__revstmt_verify(p->buf, p->len, &tr, &v), VEIL_OK);
	for (size_t i = 0; i < v.n_entries; i++) {
		struct veil__rev_entry e;
		veil__revstmt_entry(&v, i, &e);
		if (e.kind == kind && !memcmp(e.id, id, idlen)) {
			if (keep_until)
				*keep_until = e.keep_until;
			return true;
		}
	}
	return false;
}

START_TEST(revoked_while_down_and_ahead)
{
	struct test_kd_device s1, dash;
	struct veil__grants *g;
	kdh_join(&s1, "sensor-1", "sensor", NULL);
	kdh_join(&dash, "dash-1", "dashboard", &g);
	/* depth 1: the current epoch and the next one, granted ahead. */
	uint32_t held[4];
	ck_assert_uint_eq(key_ids(g, "factory/sensor-1/#", held, 4), 2);
	veil__grants_free(&g);
	/* keyd stops; sensor-1 is revoked meanwhile; keyd starts. */
	kdh_stop();
	revoke_with("client sensor-1\n");
	kdh_advance(30);
	kdh_start();
	ck_assert_msg(strstr(kdh.audit, "revocation | rekey | client=sensor-1 instances=1"), "%s", kdh.audit);
	ck_assert_ptr_nonnull(strstr(kdh.audit, "epoch | rotate | instance=factory/sensor-1/# "));
	ck_assert_int_eq(kdh_send(&dash, VEIL__KIND_ACK, kdh_secs(), dash.held_version), VEIL_OK);
	size_t s1_bundles = kdh.n_bundles;
	uint64_t s1_version = kdh_bundle_of(&s1)->version;
	ck_assert_int_eq(kd_service__tick(kdh.svc, &kdh.now), VEIL_OK);
	ck_assert_uint_gt(kdh.n_bundles, s1_bundles);
	ck_assert_uint_eq(kdh_bundle_of(&s1)->version, s1_version); /* nothing for the revoked */
	ck_assert_int_eq(kdh_open(&dash, &g), VEIL_OK);
	const struct veil__grant *ng = kdh_superseding(g, "factory/sensor-1/#");
	ck_assert_ptr_nonnull(ng);
	/* Neither epoch sensor-1 held is granted any more, the one ahead
	 * included; the new one supersedes both, for rekey_grace seconds, and
	 * already sends (from now minus the fleet's clock skew). */
	uint32_t now_ids[4];
	size_t n = key_ids(g, "factory/sensor-1/#", now_ids, 4);
	for (size_t i = 0; i < n; i++) {
		ck_assert_uint_gt(now_ids[i], held[1]);
		ck_assert_uint_ne(now_ids[i], held[0]);
	}
	ck_assert_uint_eq(ng->grace_s, KD_DEFAULT_REKEY_GRACE);
	ck_assert_uint_eq(ng->send_from, kdh_secs() - KD_DEFAULT_TOKEN_WINDOW);
	veil__grants_free(&g);
	/* The statement names it; nothing rotates again at the next start. */
	uint8_t sid[VEIL_SENDER_ID_BYTES];
	veil_sender_id(s1.c.device_pk, sid);
	ck_assert(stated(VEIL__REV_CREDENTIAL, s1.c.id, VEIL_CREDENTIAL_ID_BYTES, NULL));
	ck_assert(stated(VEIL__REV_SENDER, sid, sizeof(sid), NULL));
	size_t rotations = kdh_audit_count("epoch | rotate |");
	kdh_stop();
	kdh_start();
	ck_assert_uint_eq(kdh_audit_count("epoch | rotate |"), rotations);
	test_kd_device_free(&s1);
	test_kd_device_free(&dash);
}
END_TEST

START_TEST(revoked_stays_named)
{
	struct test_kd_device old, neu, other;
	test_kd_device_new(&old, kdh.auth, "sensor-1", "sensor", 30 * 86400);
	test_kd_device_new(&neu, kdh.auth, "sensor-1", "sensor", 30 * 86400);
	test_kd_device_new(&other, kdh.auth, "keyd-old", "veil-keyd", 30 * 86400); /* never asks keyd */
	ck_assert_int_eq(kdh_request(&old), VEIL_OK);
	/* The lost device's credential and another keyd's are revoked by id. */
	char text[200], a[2 * VEIL_CREDENTIAL_ID_BYTES + 1], b[2 * VEIL_CREDENTIAL_ID_BYTES + 1];
	sodium_bin2hex(a, sizeof(a), old.c.id, VEIL_CREDENTIAL_ID_BYTES);
	sodium_bin2hex(b, sizeof(b), other.c.id, VEIL_CREDENTIAL_ID_BYTES);
	snprintf(text, sizeof(text), "credential %s\ncredential %s\n", a, b);
	revoke_with(text);
	kdh_advance(1);
	reload_ok();
	ck_assert_int_eq(kd_service__tick(kdh.svc, &kdh.now), VEIL_OK);
	uint64_t keep = 0;
	ck_assert(stated(VEIL__REV_CREDENTIAL, old.c.id, VEIL_CREDENTIAL_ID_BYTES, &keep));
	ck_assert_uint_eq(keep, old.c.expires_at);
	ck_assert(stated(VEIL__REV_CREDENTIAL, other.c.id, VEIL_CREDENTIAL_ID_BYTES, &keep));
	ck_assert_uint_eq(keep, UINT64_MAX);
	/* sensor-1 re-provisioned: served, and its old credential still named. */
	kdh_advance(1);
	ck_assert_int_eq(kdh_request(&neu), VEIL_OK);
	ck_assert_ptr_null(strstr(kdh.audit, "device | replace | client=sensor-1"));
	struct veil__grants *g;
	ck_assert_int_eq(kdh_open(&neu, &g), VEIL_OK);
	veil__grants_free(&g);
	kdh_advance(1);
	reload_ok();
	ck_assert_int_eq(kd_service__tick(kdh.svc, &kdh.now), VEIL_OK);
	uint8_t sid[VEIL_SENDER_ID_BYTES];
	veil_sender_id(old.c.device_pk, sid);
	ck_assert(stated(VEIL__REV_CREDENTIAL, old.c.id, VEIL_CREDENTIAL_ID_BYTES, NULL));
	ck_assert(stated(VEIL__REV_SENDER, sid, sizeof(sid), NULL));
	ck_assert(!stated(VEIL__REV_CREDENTIAL, neu.c.id, VEIL_CREDENTIAL_ID_BYTES, NULL));
	test_kd_device_free(&old);
	test_kd_device_free(&neu);
	test_kd_device_free(&other);
}
END_TEST

START_TEST(runtime_list_read_and_watched)
{
	char rt[320], extra[400];
	snprintf(rt, sizeof(rt), "%s/plugin-state/revocations", kdh.dir);
	snprintf(extra, sizeof(extra), "runtime_revocation_file %s\n", rt);
	kdh_write_config(extra);
	reload_ok(); /* absent: nothing revoked yet, as the plugin takes it */
	ck_assert_int_eq(kd_service__watch(kdh.svc, kdh.cfgpath), VEIL_OK);
	struct test_kd_device s1, dash;
	kdh_join(&s1, "sensor-1", "sensor", NULL);
	kdh_join(&dash, "dash-1", "dashboard", NULL);
	/* The admin API revokes sensor-1: keyd sees the file within a second. */
	char d[330];
	snprintf(d, sizeof(d), "%s/plugin-state", kdh.dir);
	ck_assert_int_eq(mkdir(d, 0700), 0);
	ck_assert_int_eq(test_write_file(rt, "client sensor-1\n", 0600), 0);
	kdh_advance(1);
	ck_assert_int_eq(kd_service__tick(kdh.svc, &kdh.now), VEIL_OK);
	ck_assert_msg(strstr(kdh.audit, "revocation | rekey | client=sensor-1 instances=1"), "%s", kdh.audit);
	uint8_t sid[VEIL_SENDER_ID_BYTES];
	veil_sender_id(s1.c.device_pk, sid);
	ck_assert(stated(VEIL__REV_SENDER, sid, sizeof(sid), NULL));
	/* A broken runtime file keeps the lists as they were. */
	ck_assert_int_eq(test_write_file(rt, "bogus line\n", 0600), 0);
	kdh_advance(1);
	ck_assert_int_eq(kd_service__tick(kdh.svc, &kdh.now), VEIL_OK);
	ck_assert_ptr_nonnull(strstr(kdh.audit, "config | reload-failed | why=changed kept=old"));
	ck_assert_int_eq(kdh_request(&s1), VEIL_ERR_REVOKED);
	test_kd_device_free(&s1);
	test_kd_device_free(&dash);
}
END_TEST

START_TEST(new_identity_supersedes_everything)
{
	struct test_kd_device s1, s2;
	struct veil__grants *g;
	kdh_join(&s1, "sensor-1", "sensor", &g);
	uint32_t before = test_kd_grant(g, "factory/sensor-1/#")->key_id;
	veil__grants_free(&g);
	kdh_join(&s2, "sensor-2", "sensor", NULL);
	/* The same identity again: nothing rotates at start. */
	kdh_stop();
	kdh_start();
	ck_assert_ptr_null(strstr(kdh.audit, "identity-changed"));
	/* keyd's key was stolen: a new identity and credential, same store. */
	kdh_stop();
	struct veil_identity *k = NULL;
	char path[320];
	ck_assert_int_eq(veil_identity_generate(&k), VEIL_OK);
	snprintf(path, sizeof(path), "%s/keyd.key", kdh.dir);
	ck_assert_int_eq(unlink(path), 0);
	ck_assert_int_eq(veil_identity_save(k, path), VEIL_OK);
	uint8_t cred[VEIL_CREDENTIAL_MAX];
	size_t n = test_credential_make(kdh.auth, k, "veil-keyd", "veil-keyd", 30 * 86400, cred);
	snprintf(path, sizeof(path), "%s/keyd.cred", kdh.dir);
	ck_assert_int_eq(veil_credential_save(cred, n, path), VEIL_OK);
	kdh_advance(2);
	kdh_start();
	ck_assert_msg(strstr(kdh.audit, "keyd | identity-changed | was="), "%s", kdh.audit);
	ck_assert_ptr_nonnull(strstr(kdh.audit, "instances=2"));
	ck_assert_int_eq(kdh_send(&s1, VEIL__KIND_ACK, kdh_secs(), s1.held_version), VEIL_OK);
	ck_assert_int_eq(kdh_send(&s2, VEIL__KIND_ACK, kdh_secs(), s2.held_version), VEIL_OK);
	ck_assert_int_eq(kd_service__tick(kdh.svc, &kdh.now), VEIL_OK);
	/* Both devices move: bundles signed by the new identity, superseding
	 * every key the old one issued. */
	ck_assert_int_eq(kdh_open(&s1, &g), VEIL_OK);
	const struct veil__grant *ng = kdh_superseding(g, "factory/sensor-1/#");
	ck_assert_ptr_nonnull(ng);
	ck_assert_uint_gt(ng->key_id, before + 1);
	veil__grants_free(&g);
	ck_assert_int_eq(kdh_open(&s2, &g), VEIL_OK);
	ck_assert_ptr_nonnull(kdh_superseding(g, "factory/sensor-2/#"));
	veil__grants_free(&g);
	struct kdh_pub *p = kdh_bundle_of(&s1);
	struct veil__bundle_view v;
	ck_assert_int_eq(veil__bundle_parse(p->buf, p->len, &v), VEIL_OK);
	ck_assert_uint_eq(v.credential_len, n);
	ck_assert_mem_eq(v.credential, cred, n);
	veil_identity_free(&k);
	test_kd_device_free(&s1);
	test_kd_device_free(&s2);
}
END_TEST

/* The sealed blob of key_id's row, read with SQLite itself. */
static size_t sealed_of(uint32_t key_id, uint8_t *out, size_t cap)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	size_t n = 0;
	ck_assert_int_eq(sqlite3_open_v2(kdh.dbpath, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	ck_assert_int_eq(sqlite3_prepare_v2(db, "SELECT sealed FROM epochs WHERE key_id = ?", -1, &st, NULL), SQLITE_OK);
	sqlite3_bind_int64(st, 1, key_id);
	if (sqlite3_step(st) == SQLITE_ROW) {
		n = (size_t)sqlite3_column_bytes(st, 0);
		ck_assert_uint_le(n, cap);
		memcpy(out, sqlite3_column_blob(st, 0), n);
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	return n;
}

static bool in_store_files(const uint8_t *blob, size_t n)
{
	char wal[320];
	snprintf(wal, sizeof(wal), "%s-wal", kdh.dbpath);
	/* Any 16 bytes of it: a partial copy is a copy. */
	for (size_t off = 0; off + 16 <= n; off += 16)
		if (test_file_has_n(kdh.dbpath, blob + off, 16) || test_file_has_n(wal, blob + off, 16))
			return true;
	return false;
}

START_TEST(purged_leaves_no_copy)
{
	struct test_kd_device s1, s2;
	struct veil__grants *g;
	kdh_join(&s1, "sensor-1", "sensor", &g);
	uint32_t first = g->g[0].key_id;
	veil__grants_free(&g);
	kdh_join(&s2, "sensor-2", "sensor", &g);
	uint32_t other = g->g[0].key_id;
	veil__grants_free(&g);
	uint8_t blob[128], blob2[128];
	size_t n = sealed_of(first, blob, sizeof(blob)), n2 = sealed_of(other, blob2, sizeof(blob2));
	ck_assert_uint_gt(n, 0);
	ck_assert_uint_gt(n2, 0);
	ck_assert(in_store_files(blob, n));
	/* sensor-2 revoked: its epochs are superseded, and gone rekey_grace
	 * seconds later, while a reader holds the WAL: the truncation waits
	 * for it, and happens once it is gone. */
	revoke_with("client sensor-2\n");
	reload_ok();
	sqlite3 *reader = NULL;
	sqlite3_stmt *st = NULL;
	ck_assert_int_eq(sqlite3_open_v2(kdh.dbpath, &reader, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	ck_assert_int_eq(sqlite3_prepare_v2(reader, "SELECT key_id FROM epochs", -1, &st, NULL), SQLITE_OK);
	ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW); /* a read transaction, open */
	kdh_advance(KD_DEFAULT_REKEY_GRACE);
	ck_assert_int_eq(kd_service__tick(kdh.svc, &kdh.now), VEIL_OK);
	ck_assert_ptr_nonnull(strstr(kdh.audit, "epoch | purge | deleted="));
	ck_assert_uint_eq(sealed_of(other, blob2 + 64, 64), 0);
	sqlite3_finalize(st);
	sqlite3_close(reader);
	kdh_advance(1);
	ck_assert_int_eq(kd_service__tick(kdh.svc, &kdh.now), VEIL_OK);
	ck_assert(!in_store_files(blob2, n2));
	/* sensor-1's first epoch ends (accept_until: a period and the grace
	 * on): its row goes, the WAL is truncated, no copy is left. */
	kdh_advance(3600 + 600);
	ck_assert_int_eq(kdh_send(&s1, VEIL__KIND_ACK, kdh_secs(), s1.held_version), VEIL_OK);
	ck_assert_int_eq(kd_service__tick(kdh.svc, &kdh.now), VEIL_OK);
	ck_assert_uint_eq(sealed_of(first, blob + 64, 64), 0);
	ck_assert(!in_store_files(blob, n));
	test_kd_device_free(&s1);
	test_kd_device_free(&s2);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("keyd_rekey");
	TCase *tc = veil_tcase("keyd_rekey", 20);
	tcase_add_checked_fixture(tc, kdh_setup, kdh_teardown);
	tcase_add_test(tc, revoked_while_down_and_ahead);
	tcase_add_test(tc, revoked_stays_named);
	tcase_add_test(tc, runtime_list_read_and_watched);
	tcase_add_test(tc, new_identity_supersedes_everything);
	tcase_add_test(tc, purged_leaves_no_copy);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return veil_check_run(suite());
}
