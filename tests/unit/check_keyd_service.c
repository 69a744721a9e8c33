/*
 * Tests for keyd's request handling and issuing (keyd/service.c,
 * keyd/issue.c, keyd/material.c) with real files, a real store and an
 * injected clock; bundles are captured from the publish callback and
 * opened as a device would (tests/support/keyd_device.c).
 *
 * Every refusal of section 11 is produced, refused with its name and
 * audited; replayed and outdated messages; the re-issue limit; a flood
 * costs at most the rate limit in verifications and one bundle per
 * interval; acknowledgements; a restart loses nothing; rotations reach
 * every entitled device; `veil keys rotate` and a revocation supersede;
 * the revocation statement.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "veil/veil.h"
#include "../../core/bundle.h"
#include "service.h"
#include "store.h"

#include "check_run.h"
#include "files.h"
#include "keyd_device.h"
#include "material.h"
#include "timing.h"

static char dir[256], cfgpath[300], aclpath[300], revpath[300], dbpath[300], skpath[300];
static struct veil_identity *auth;
static uint8_t auth_pk[VEIL_PK_BYTES];
static struct kd_store *st;
static uint8_t *skey;
static struct kd_service *svc;
static struct kd_now now;

/* What the service published: the newest per topic, and counts. */
#define MAXPUB 64
static struct pub {
	char topic[200];
	uint8_t *buf;
	size_t len;
	uint64_t version;
} pubs[MAXPUB];
static size_t n_pubs;
static size_t n_bundles, n_statements;

/* Audit lines. */
static char audit[1 << 16];
static size_t audit_len;

static void sink(void *ctx, const char *line)
{
	(void)ctx;
	size_t n = strlen(line);
	if (audit_len + n + 2 < sizeof(audit)) {
		memcpy(audit + audit_len, line, n);
		audit_len += n;
		audit[audit_len++] = '\n';
		audit[audit_len] = '\0';
	}
}

static int publish(void *ctx, const char *topic, const uint8_t *buf, size_t len, const uint8_t *cred_id,
                   uint64_t version)
{
	(void)ctx;
	size_t i = 0;
	while (i < n_pubs && strcmp(pubs[i].topic, topic))
		i++;
	ck_assert_uint_lt(i, MAXPUB);
	if (i == n_pubs)
		n_pubs++;
	free(pubs[i].buf);
	snprintf(pubs[i].topic, sizeof(pubs[i].topic), "%s", topic);
	pubs[i].buf = malloc(len);
	memcpy(pubs[i].buf, buf, len);
	pubs[i].len = len;
	ck_assert_uint_gt(version, pubs[i].version); /* versions only grow */
	pubs[i].version = version;
	if (cred_id)
		n_bundles++;
	else
		n_statements++;
	return VEIL_OK;
}

static struct pub *pub_of(const char *topic)
{
	for (size_t i = 0; i < n_pubs; i++)
		if (!strcmp(pubs[i].topic, topic))
			return &pubs[i];
	return NULL;
}

static struct pub *bundle_of(const struct test_kd_device *d)
{
	char t[200];
	snprintf(t, sizeof(t), "%s%s", VEIL__TOPIC_BUNDLE_PREFIX, d->c.client_id);
	return pub_of(t);
}

static const char *ACL = "pattern readwrite,encrypted factory/%c/#\n"
                         "role dashboard\n"
                         "topic read factory/#\n";

static void write_config(const char *extra)
{
	char text[2048];
	snprintf(text, sizeof(text),
	         "broker tcp://127.0.0.1:1\nclient_id veil-keyd\nidentity keyd.key\ncredential keyd.cred\n"
	         "authorities authority.pub\nacl_file veil.acl\nrevocation_file revoked.txt\ndatabase keyd.db\n"
	         "storage_key storage.key\nreissue_interval 5\nrequest_rate 10\n"
	         "scope factory/%%c/# period 3600 lead 300 grace 600 depth 2\n%s",
	         extra ? extra : "");
	ck_assert_int_eq(test_write_file(cfgpath, text, 0644), 0);
}

static void start_service(void)
{
	char err[512] = "";
	struct kd_config cfg;
	struct kd_material m;
	ck_assert_msg(kd_config__load(cfgpath, &cfg, err, sizeof(err)) == VEIL_OK, "%s", err);
	ck_assert_int_eq(kd_storage_key__load(skpath, &skey, err, sizeof(err)), VEIL_OK);
	ck_assert_int_eq(kd_store__open(dbpath, skey, true, &st, err, sizeof(err)), VEIL_OK);
	ck_assert_msg(kd_material__load(&cfg, now.unix_us / 1000000U, &m, err, sizeof(err)) == VEIL_OK, "%s", err);
	ck_assert_int_eq(kd_service__new(&cfg, &m, st, &now, &svc, err, sizeof(err)), VEIL_OK);
	kd_service__set_publisher(svc, publish, NULL);
}

static void stop_service(void)
{
	kd_service__free(&svc);
	kd_store__close(&st);
	kd_storage_key__free(&skey);
}

static void setup(void)
{
	kd_log__set_sink(sink, NULL);
	audit_len = 0;
	audit[0] = '\0';
	n_pubs = n_bundles = n_statements = 0;
	ck_assert_int_eq(test_mkdtemp(dir, sizeof(dir)), 0);
	snprintf(cfgpath, sizeof(cfgpath), "%s/keyd.conf", dir);
	snprintf(aclpath, sizeof(aclpath), "%s/veil.acl", dir);
	snprintf(revpath, sizeof(revpath), "%s/revoked.txt", dir);
	snprintf(dbpath, sizeof(dbpath), "%s/keyd.db", dir);
	snprintf(skpath, sizeof(skpath), "%s/storage.key", dir);
	ck_assert_int_eq(veil_identity_generate(&auth), VEIL_OK);
	veil_identity_public(auth, auth_pk);
	char path[320];
	test_authority_save(auth, dir, path, sizeof(path));
	struct veil_identity *k = NULL;
	ck_assert_int_eq(veil_identity_generate(&k), VEIL_OK);
	snprintf(path, sizeof(path), "%s/keyd.key", dir);
	ck_assert_int_eq(veil_identity_save(k, path), VEIL_OK);
	uint8_t cred[VEIL_CREDENTIAL_MAX];
	size_t n = test_credential_make(auth, k, "veil-keyd", "veil-keyd", 30 * 86400, cred);
	snprintf(path, sizeof(path), "%s/keyd.cred", dir);
	ck_assert_int_eq(veil_credential_save(cred, n, path), VEIL_OK);
	veil_identity_free(&k);
	ck_assert_int_eq(test_write_file(aclpath, ACL, 0644), 0);
	ck_assert_int_eq(test_write_file(revpath, "# nobody\n", 0644), 0);
	char err[256];
	ck_assert_int_eq(kd_storage_key__create(skpath, err, sizeof(err)), VEIL_OK);
	write_config(NULL);
	now.unix_us = (uint64_t)time(NULL) * 1000000U;
	now.mono_ms = 1000000;
	start_service();
}

static void teardown(void)
{
	stop_service();
	veil_identity_free(&auth);
	for (size_t i = 0; i < n_pubs; i++)
		free(pubs[i].buf);
	memset(pubs, 0, sizeof(pubs));
	test_rmtree(dir);
	kd_log__set_sink(NULL, NULL);
}

static uint64_t secs(void)
{
	return now.unix_us / 1000000U;
}

static void advance(uint64_t s)
{
	now.unix_us += s * 1000000U;
	now.mono_ms += s * 1000U;
}

static int send_msg(struct test_kd_device *d, uint8_t kind, uint64_t ts, uint64_t version)
{
	uint8_t m[VEIL__DEVMSG_MAX];
	size_t n = test_kd_devmsg(d, kind, ts, version, m);
	char topic[200];
	snprintf(topic, sizeof(topic), "%s%s", VEIL__TOPIC_REQ_PREFIX, d->c.client_id);
	return kd_service__message(svc, topic, m, n, &now);
}

static int request(struct test_kd_device *d)
{
	return send_msg(d, VEIL__KIND_REQUEST, secs(), d->held_version);
}

/* Open the device's newest bundle; grants in *g. */
/* The grant of scope carrying the supersedes flag, or NULL. */
static const struct veil__grant *superseding(const struct veil__grants *g, const char *scope)
{
	for (size_t i = 0; i < g->n; i++)
		if (!strcmp(g->g[i].scope, scope) && (g->g[i].flags & VEIL__GRANT_SUPERSEDES))
			return &g->g[i];
	return NULL;
}

static int open_bundle(struct test_kd_device *d, struct veil__grants **g)
{
	struct pub *p = bundle_of(d);
	ck_assert_ptr_nonnull(p);
	return test_kd_open(d, auth_pk, secs(), p->buf, p->len, g);
}

START_TEST(request_gets_bundle)
{
	struct test_kd_device s1;
	test_kd_device_new(&s1, auth, "sensor-1", "sensor", 30 * 86400);
	ck_assert_int_eq(request(&s1), VEIL_OK);
	ck_assert_ptr_nonnull(strstr(audit, "veil-keyd: request | accept | client=sensor-1"));
	ck_assert_ptr_nonnull(strstr(audit, "veil-keyd: bundle | issue | client=sensor-1"));
	struct pub *p = bundle_of(&s1);
	ck_assert_ptr_nonnull(p);
	ck_assert_uint_ge(p->version, now.unix_us);
	struct veil__grants *g = NULL;
	ck_assert_int_eq(open_bundle(&s1, &g), VEIL_OK);
	ck_assert_uint_eq(g->n, 2); /* depth 2: current and next epoch */
	for (size_t i = 0; i < g->n; i++) {
		ck_assert_str_eq(g->g[i].scope, "factory/sensor-1/#");
		ck_assert_uint_ge(g->g[i].key_id, VEIL__GRANT_KEY_ID_MIN);
		ck_assert_uint_eq(g->g[i].flags, VEIL__GRANT_MAY_SEND);
	}
	ck_assert_uint_le(g->g[0].send_from, secs());
	ck_assert_uint_gt(g->g[0].send_until, secs());
	veil__grants_free(&g);
	/* The same bundle does not open again (its receive secret is wiped),
	 * nor for another device. */
	ck_assert_int_eq(open_bundle(&s1, &g), VEIL_ERR_WRONG_RECEIVE_KEY);
	struct test_kd_device s2;
	test_kd_device_new(&s2, auth, "sensor-2", "sensor", 30 * 86400);
	ck_assert_int_eq(test_kd_open(&s2, auth_pk, secs(), p->buf, p->len, &g), VEIL_ERR_MISADDRESSED);
	/* A dashboard gets sensor-1's key for reading (no may-send). */
	struct test_kd_device dash;
	test_kd_device_new(&dash, auth, "dash-1", "dashboard", 30 * 86400);
	ck_assert_int_eq(request(&dash), VEIL_OK);
	ck_assert_int_eq(open_bundle(&dash, &g), VEIL_OK);
	const struct veil__grant *dg = test_kd_grant(g, "factory/sensor-1/#");
	ck_assert_ptr_nonnull(dg);
	ck_assert_uint_eq(dg->flags, 0);
	veil__grants_free(&g);
	test_kd_device_free(&s1);
	test_kd_device_free(&s2);
	test_kd_device_free(&dash);
}
END_TEST

/* A message is refused with want and the audit names it. */
static void refused(const char *topic, const uint8_t *m, size_t n, int want, const char *line)
{
	int rc = kd_service__message(svc, topic, m, n, &now);
	ck_assert_msg(rc == want, "got %s, want %s", veil_errname(rc), veil_errname(want));
	ck_assert_msg(strstr(audit, line) != NULL, "audit lacks '%s':\n%s", line, audit);
}

START_TEST(refusals_each_audited)
{
	struct test_kd_device d, other_auth, old, rev;
	test_kd_device_new(&d, auth, "sensor-1", "sensor", 30 * 86400);
	uint8_t m[VEIL__DEVMSG_MAX];
	size_t n = test_kd_devmsg(&d, VEIL__KIND_REQUEST, secs(), 0, m);
	const char *topic = VEIL__TOPIC_REQ_PREFIX "sensor-1";
	refused("$veil/v1/req/", m, n, VEIL_ERR_PARSE, "request | refuse | topic=$veil/v1/req/ reason=not-a-request-topic");
	refused("other/topic", m, n, VEIL_ERR_PARSE, "reason=not-a-request-topic");
	refused(topic, m, 100, VEIL_ERR_TRUNCATED, "client=sensor-1 cred=- reason=truncated");
	refused(VEIL__TOPIC_REQ_PREFIX "sensor-9", m, n, VEIL_ERR_CLIENT_ID, "client=sensor-9 cred=");
	ck_assert_ptr_nonnull(strstr(audit, "reason=wrong-client-id"));
	/* Tampered signature. */
	uint8_t t[VEIL__DEVMSG_MAX];
	memcpy(t, m, n);
	t[n - 1] ^= 1;
	refused(topic, t, n, VEIL_ERR_BAD_SIGNATURE, "reason=bad-signature");
	/* Another authority's credential. */
	struct veil_identity *a2 = NULL;
	ck_assert_int_eq(veil_identity_generate(&a2), VEIL_OK);
	test_kd_device_new(&other_auth, a2, "sensor-1", "sensor", 30 * 86400);
	n = test_kd_devmsg(&other_auth, VEIL__KIND_REQUEST, secs(), 0, t);
	refused(topic, t, n, VEIL_ERR_WRONG_AUTHORITY, "reason=wrong-authority");
	/* Expired credential. */
	test_kd_device_new(&old, auth, "sensor-1", "sensor", -10);
	n = test_kd_devmsg(&old, VEIL__KIND_REQUEST, secs(), 0, t);
	refused(topic, t, n, VEIL_ERR_EXPIRED, "reason=expired-credential");
	/* Stale: outside the 60 s window, either side. */
	n = test_kd_devmsg(&d, VEIL__KIND_REQUEST, secs() - 61, 0, t);
	refused(topic, t, n, VEIL_ERR_STALE, "reason=stale-token");
	n = test_kd_devmsg(&d, VEIL__KIND_REQUEST, secs() + 61, 0, t);
	refused(topic, t, n, VEIL_ERR_STALE, "reason=stale-token");
	/* Revoked, by client id (the plugin's revocation list, reloaded). */
	test_kd_device_new(&rev, auth, "sensor-7", "sensor", 30 * 86400);
	ck_assert_int_eq(test_write_file(revpath, "client sensor-7\n", 0644), 0);
	char err[256];
	ck_assert_int_eq(kd_service__reload(svc, cfgpath, &now, err, sizeof(err)), VEIL_OK);
	n = test_kd_devmsg(&rev, VEIL__KIND_REQUEST, secs(), 0, t);
	refused(VEIL__TOPIC_REQ_PREFIX "sensor-7", t, n, VEIL_ERR_REVOKED, "client=sensor-7 cred=");
	ck_assert_ptr_nonnull(strstr(audit, "reason=revoked"));
	/* Accepted once; the same message again is a replay; an older one
	 * with a fresh nonce is outdated. */
	ck_assert_int_eq(kd_service__message(svc, topic, m, n = veil__devmsg_len(d.cred_len), &now), VEIL_OK);
	refused(topic, m, n, VEIL_ERR_REPLAY, "reason=replay");
	n = test_kd_devmsg(&d, VEIL__KIND_REQUEST, secs() - 1, 0, t);
	refused(topic, t, n, VEIL_ERR_OUTDATED, "reason=outdated");
	n = test_kd_devmsg(&d, VEIL__KIND_REQUEST, secs(), 0, t); /* same second: not newer */
	refused(topic, t, n, VEIL_ERR_OUTDATED, "reason=outdated");
	struct kd_stats s;
	kd_service__stats(svc, &s);
	ck_assert_uint_eq(s.accepted, 1);
	ck_assert_uint_eq(s.refused, 13);
	ck_assert_uint_eq(n_bundles, 1);
	veil_identity_free(&a2);
	test_kd_device_free(&d);
	test_kd_device_free(&other_auth);
	test_kd_device_free(&old);
	test_kd_device_free(&rev);
}
END_TEST

START_TEST(reissue_limit)
{
	struct test_kd_device d;
	test_kd_device_new(&d, auth, "sensor-1", "sensor", 30 * 86400);
	ck_assert_int_eq(request(&d), VEIL_OK);
	ck_assert_uint_eq(n_bundles, 1);
	uint64_t v1 = bundle_of(&d)->version;
	/* Asked again 2 s later: same content, deferred to last + 5 s. */
	advance(2);
	ck_assert_int_eq(request(&d), VEIL_OK);
	ck_assert_uint_eq(n_bundles, 1);
	ck_assert_ptr_nonnull(strstr(audit, "bundle | defer | client=sensor-1"));
	advance(2);
	ck_assert_int_eq(kd_service__tick(svc, &now), VEIL_OK);
	ck_assert_uint_eq(n_bundles, 1);
	advance(1);
	ck_assert_int_eq(kd_service__tick(svc, &now), VEIL_OK);
	ck_assert_uint_eq(n_bundles, 2);
	/* The re-issue is sealed to the newest request's receive key and opens. */
	struct veil__grants *g;
	ck_assert_uint_gt(bundle_of(&d)->version, v1);
	ck_assert_int_eq(open_bundle(&d, &g), VEIL_OK);
	ck_assert_uint_eq(d.n_rx, 0); /* the older key was wiped with it */
	veil__grants_free(&g);
	test_kd_device_free(&d);
}
END_TEST

START_TEST(flood_costs_the_limit)
{
	struct test_kd_device d;
	test_kd_device_new(&d, auth, "sensor-1", "sensor", 30 * 86400);
	/* 500 valid requests within one second of keyd's monotonic clock. */
	int ok = 0, dropped = 0;
	for (int i = 0; i < 500; i++) {
		now.mono_ms += 1;
		int rc = send_msg(&d, VEIL__KIND_REQUEST, secs() - 50 + (uint64_t)(i / 5), 0);
		ok += rc == VEIL_OK;
		dropped += rc == VEIL_ERR_TIMEOUT;
	}
	ck_assert_int_ge(ok, 1);
	struct kd_stats s;
	kd_service__stats(svc, &s);
	/* At most request_rate (10) + what refilled in the 0.5 s: verified. */
	ck_assert_uint_le(s.accepted + s.refused, 16);
	ck_assert_int_ge(dropped, 484);
	ck_assert_uint_eq(n_bundles, 1); /* one bundle; the rest deferred */
	/* One audit line per second of flood, not per message. */
	int drops = 0;
	for (const char *p = audit; (p = strstr(p, "request | drop")); p++)
		drops++;
	ck_assert_int_eq(drops, 1);
	advance(5);
	ck_assert_int_eq(kd_service__tick(svc, &now), VEIL_OK);
	ck_assert_uint_eq(n_bundles, 2); /* the deferred re-issue, once */
	test_kd_device_free(&d);
}
END_TEST

START_TEST(acks_recorded)
{
	struct test_kd_device d;
	test_kd_device_new(&d, auth, "sensor-1", "sensor", 30 * 86400);
	ck_assert_int_eq(request(&d), VEIL_OK);
	struct veil__grants *g;
	ck_assert_int_eq(open_bundle(&d, &g), VEIL_OK);
	veil__grants_free(&g);
	advance(1);
	/* An ack of a version never issued is ignored. */
	ck_assert_int_eq(send_msg(&d, VEIL__KIND_ACK, secs(), d.held_version + 1), VEIL_OK);
	ck_assert_ptr_nonnull(strstr(audit, "ack | ignore | client=sensor-1"));
	advance(1);
	ck_assert_int_eq(send_msg(&d, VEIL__KIND_ACK, secs(), d.held_version), VEIL_OK);
	ck_assert_ptr_nonnull(strstr(audit, "ack | record | client=sensor-1"));
	struct kd_device_row row;
	ck_assert_int_eq(kd_store__device_get(st, d.c.id, &row), VEIL_OK);
	ck_assert_uint_eq(row.acked_version, d.held_version);
	ck_assert_uint_eq(row.issued_version, d.held_version);
	ck_assert_uint_eq(n_bundles, 1); /* an ack asks for nothing */
	/* The broker's PUBACK reaches the store at the next sync, not before. */
	ck_assert_uint_eq(row.published_version, 0);
	kd_service__published(svc, d.c.id, d.held_version);
	ck_assert_int_eq(kd_store__device_get(st, d.c.id, &row), VEIL_OK);
	ck_assert_uint_eq(row.published_version, 0);
	ck_assert_int_eq(kd_service__sync(svc), VEIL_OK);
	ck_assert_int_eq(kd_store__device_get(st, d.c.id, &row), VEIL_OK);
	ck_assert_uint_eq(row.published_version, d.held_version);
	test_kd_device_free(&d);
}
END_TEST

START_TEST(restart_loses_nothing)
{
	struct test_kd_device d, dash;
	test_kd_device_new(&d, auth, "sensor-1", "sensor", 30 * 86400);
	test_kd_device_new(&dash, auth, "dash-1", "dashboard", 30 * 86400);
	ck_assert_int_eq(request(&d), VEIL_OK);
	ck_assert_int_eq(request(&dash), VEIL_OK);
	struct veil__grants *g1, *g2;
	ck_assert_int_eq(open_bundle(&d, &g1), VEIL_OK);
	uint64_t v1 = d.held_version;
	stop_service();
	advance(10);
	start_service();
	/* Device rows, epochs and keys are back: the same keys again, a newer version. */
	ck_assert_int_eq(request(&d), VEIL_OK);
	ck_assert_int_eq(open_bundle(&d, &g2), VEIL_OK);
	ck_assert_uint_gt(d.held_version, v1);
	ck_assert_uint_eq(g2->n, g1->n);
	for (size_t i = 0; i < g1->n; i++) {
		ck_assert_uint_eq(g2->g[i].key_id, g1->g[i].key_id);
		ck_assert_mem_eq(g2->g[i].key, g1->g[i].key, VEIL_KEY_BYTES);
	}
	/* An old request replayed after the restart is outdated (the newest
	 * timestamp per credential is in the store). */
	ck_assert_int_eq(send_msg(&d, VEIL__KIND_REQUEST, secs() - 10, 0), VEIL_ERR_OUTDATED);
	/* The database holds none of the keys. */
	for (size_t i = 0; i < g1->n; i++) {
		ck_assert(!test_file_has_n(dbpath, g1->g[i].key, VEIL_KEY_BYTES));
		char wal[320];
		snprintf(wal, sizeof(wal), "%s-wal", dbpath);
		ck_assert(!test_file_has_n(wal, g1->g[i].key, VEIL_KEY_BYTES));
	}
	veil__grants_free(&g1);
	veil__grants_free(&g2);
	test_kd_device_free(&d);
	test_kd_device_free(&dash);
}
END_TEST

START_TEST(rotation_reaches_entitled)
{
	struct test_kd_device d, dash;
	test_kd_device_new(&d, auth, "sensor-1", "sensor", 30 * 86400);
	test_kd_device_new(&dash, auth, "dash-1", "dashboard", 30 * 86400);
	ck_assert_int_eq(request(&d), VEIL_OK);
	ck_assert_int_eq(request(&dash), VEIL_OK);
	struct veil__grants *g;
	ck_assert_int_eq(open_bundle(&d, &g), VEIL_OK);
	uint32_t top = test_kd_grant(g, "factory/sensor-1/#")->key_id;
	veil__grants_free(&g);
	ck_assert_int_eq(open_bundle(&dash, &g), VEIL_OK);
	veil__grants_free(&g);
	/* Ten rotations, each one period apart: both devices get each new
	 * epoch, the sensor may send with it, the dashboard only reads. */
	for (int r = 0; r < 10; r++) {
		size_t before = n_bundles;
		advance(3600);
		/* The devices acknowledge, so each bundle is sealed to a fresh key. */
		ck_assert_int_eq(send_msg(&d, VEIL__KIND_ACK, secs() - 1, d.held_version), VEIL_OK);
		ck_assert_int_eq(send_msg(&dash, VEIL__KIND_ACK, secs() - 1, dash.held_version), VEIL_OK);
		ck_assert_int_eq(kd_service__tick(svc, &now), VEIL_OK);
		ck_assert_uint_eq(n_bundles, before + 2);
		ck_assert_int_eq(open_bundle(&d, &g), VEIL_OK);
		const struct veil__grant *e = test_kd_grant(g, "factory/sensor-1/#");
		ck_assert_uint_gt(e->key_id, top);
		ck_assert_uint_eq(e->flags, VEIL__GRANT_MAY_SEND);
		top = e->key_id;
		veil__grants_free(&g);
		ck_assert_int_eq(open_bundle(&dash, &g), VEIL_OK);
		ck_assert_uint_eq(test_kd_grant(g, "factory/sensor-1/#")->key_id, top);
		ck_assert_uint_eq(test_kd_grant(g, "factory/sensor-1/#")->flags, 0);
		veil__grants_free(&g);
		/* Nothing more until the next epoch is due. */
		ck_assert_int_eq(kd_service__tick(svc, &now), VEIL_OK);
		ck_assert_uint_eq(n_bundles, before + 2);
	}
	struct kd_stats s;
	kd_service__stats(svc, &s);
	ck_assert_uint_ge(s.rotations, 10);
	test_kd_device_free(&d);
	test_kd_device_free(&dash);
}
END_TEST

START_TEST(operator_rotation_and_revocation)
{
	struct test_kd_device s1, s2, dash;
	test_kd_device_new(&s1, auth, "sensor-1", "sensor", 30 * 86400);
	test_kd_device_new(&s2, auth, "sensor-2", "sensor", 30 * 86400);
	test_kd_device_new(&dash, auth, "dash-1", "dashboard", 30 * 86400);
	ck_assert_int_eq(request(&s1), VEIL_OK);
	ck_assert_int_eq(request(&s2), VEIL_OK);
	ck_assert_int_eq(request(&dash), VEIL_OK);
	ck_assert_int_eq(kd_service__tick(svc, &now), VEIL_OK);
	struct veil__grants *g;
	ck_assert_int_eq(open_bundle(&dash, &g), VEIL_OK);
	uint32_t old2 = test_kd_grant(g, "factory/sensor-2/#")->key_id;
	veil__grants_free(&g);
	/* The statement went out at start, empty. */
	struct pub *stmt = pub_of(VEIL__TOPIC_REVOCATION);
	ck_assert_ptr_nonnull(stmt);
	struct veil__revstmt_view rv;
	ck_assert_int_eq(veil__revstmt_parse(stmt->buf, stmt->len, &rv), VEIL_OK);
	ck_assert_uint_eq(rv.n_entries, 0);
	/* `veil keys rotate factory/%c/#`: every instance starts a superseding epoch. */
	ck_assert_int_eq(kd_store__rotate_request(st, "factory/%c/#", secs()), VEIL_OK);
	advance(2);
	ck_assert_int_eq(send_msg(&dash, VEIL__KIND_ACK, secs(), dash.held_version), VEIL_OK);
	ck_assert_int_eq(kd_service__tick(svc, &now), VEIL_OK);
	ck_assert_ptr_nonnull(strstr(audit, "epoch | rotate | instance=factory/sensor-2/# "));
	ck_assert_int_eq(open_bundle(&dash, &g), VEIL_OK);
	const struct veil__grant *ng = superseding(g, "factory/sensor-2/#");
	ck_assert_ptr_nonnull(ng);
	ck_assert_uint_gt(ng->key_id, old2);
	ck_assert_uint_eq(ng->grace_s, KD_DEFAULT_REKEY_GRACE);
	ck_assert_uint_le(ng->send_from, secs());
	old2 = ng->key_id;
	/* The superseded epochs are no longer granted. */
	for (size_t i = 0; i < g->n; i++)
		ck_assert(!strcmp(g->g[i].scope, "factory/sensor-2/#") ? g->g[i].key_id >= old2 : 1);
	veil__grants_free(&g);
	/* Revoke sensor-2: its instance rotates again at the reload, the
	 * dashboard gets the new epoch, sensor-2 nothing, and the statement
	 * names its credential and sender id. */
	size_t s2_bundles_before = n_bundles;
	struct pub *b2 = bundle_of(&s2);
	uint64_t s2_version = b2->version;
	ck_assert_int_eq(test_write_file(revpath, "client sensor-2\n", 0644), 0);
	advance(2);
	char err[256];
	ck_assert_int_eq(kd_service__reload(svc, cfgpath, &now, err, sizeof(err)), VEIL_OK);
	ck_assert_ptr_nonnull(strstr(audit, "revocation | rekey | client=sensor-2 instances="));
	ck_assert_int_eq(send_msg(&dash, VEIL__KIND_ACK, secs(), dash.held_version), VEIL_OK);
	ck_assert_int_eq(kd_service__tick(svc, &now), VEIL_OK);
	ck_assert_uint_gt(n_bundles, s2_bundles_before);
	ck_assert_uint_eq(bundle_of(&s2)->version, s2_version); /* nothing new for the revoked */
	ck_assert_int_eq(open_bundle(&dash, &g), VEIL_OK);
	ng = superseding(g, "factory/sensor-2/#");
	ck_assert_ptr_nonnull(ng);
	ck_assert_uint_gt(ng->key_id, old2);
	veil__grants_free(&g);
	stmt = pub_of(VEIL__TOPIC_REVOCATION);
	struct veil__trust tr = { .authorities = (const uint8_t(*)[VEIL_PK_BYTES])auth_pk, .n_authorities = 1,
		                  .now = secs() };
	ck_assert_int_eq(veil__revstmt_verify(stmt->buf, stmt->len, &tr, &rv), VEIL_OK);
	ck_assert_uint_eq(rv.n_entries, 2);
	struct veil__rev_entry e0, e1;
	veil__revstmt_entry(&rv, 0, &e0);
	veil__revstmt_entry(&rv, 1, &e1);
	ck_assert_uint_eq(e0.kind, VEIL__REV_CREDENTIAL);
	ck_assert_mem_eq(e0.id, s2.c.id, VEIL_CREDENTIAL_ID_BYTES);
	ck_assert_uint_eq(e0.keep_until, s2.c.expires_at);
	ck_assert_uint_eq(e1.kind, VEIL__REV_SENDER);
	uint8_t sid[VEIL_SENDER_ID_BYTES];
	veil_sender_id(s2.c.device_pk, sid);
	ck_assert_mem_eq(e1.id, sid, VEIL_SENDER_ID_BYTES);
	/* An unknown scope is answered, not ignored. */
	ck_assert_int_eq(kd_store__rotate_request(st, "nope/#", secs()), VEIL_OK);
	advance(1);
	ck_assert_int_eq(kd_service__tick(svc, &now), VEIL_OK);
	ck_assert_ptr_nonnull(strstr(audit, "epoch | rotate-refused | scope=nope/# reason=no-such-scope"));
	test_kd_device_free(&s1);
	test_kd_device_free(&s2);
	test_kd_device_free(&dash);
}
END_TEST

START_TEST(reload_keeps_old_on_error)
{
	ck_assert_int_eq(test_write_file(aclpath, "topic bogus a/b\n", 0644), 0);
	char err[256] = "";
	ck_assert_int_ne(kd_service__reload(svc, cfgpath, &now, err, sizeof(err)), VEIL_OK);
	ck_assert_ptr_nonnull(strstr(err, "veil.acl:1"));
	/* Still serving with the old rules. */
	struct test_kd_device d;
	test_kd_device_new(&d, auth, "sensor-1", "sensor", 30 * 86400);
	ck_assert_int_eq(request(&d), VEIL_OK);
	struct veil__grants *g;
	ck_assert_int_eq(open_bundle(&d, &g), VEIL_OK);
	ck_assert_uint_eq(g->n, 2);
	veil__grants_free(&g);
	test_kd_device_free(&d);
}
END_TEST

static int count_rows(void *ctx, const struct kd_device_row *d)
{
	(void)d;
	(*(int *)ctx)++;
	return VEIL_OK;
}

START_TEST(new_credential_replaces_old)
{
	/* sensor-1 re-provisioned (new key, new credential): keyd serves the
	 * new one only, so rotations never overwrite its retained bundle with
	 * one for the old credential. */
	struct test_kd_device old, neu;
	test_kd_device_new(&old, auth, "sensor-1", "sensor", 30 * 86400);
	test_kd_device_new(&neu, auth, "sensor-1", "sensor", 30 * 86400);
	ck_assert_int_eq(request(&old), VEIL_OK);
	advance(1);
	ck_assert_int_eq(request(&neu), VEIL_OK);
	ck_assert_ptr_nonnull(strstr(audit, "device | replace | client=sensor-1"));
	int rows = 0;
	ck_assert_int_eq(kd_store__devices_each(st, count_rows, &rows), VEIL_OK);
	ck_assert_int_eq(rows, 1);
	struct veil__grants *g;
	ck_assert_int_eq(open_bundle(&neu, &g), VEIL_OK);
	veil__grants_free(&g);
	/* A rotation later: the bundle on sensor-1's topic is the new device's. */
	advance(3600);
	ck_assert_int_eq(send_msg(&neu, VEIL__KIND_ACK, secs(), neu.held_version), VEIL_OK);
	ck_assert_int_eq(kd_service__tick(svc, &now), VEIL_OK);
	ck_assert_int_eq(open_bundle(&neu, &g), VEIL_OK);
	veil__grants_free(&g);
	test_kd_device_free(&old);
	test_kd_device_free(&neu);
}
END_TEST

START_TEST(rights_removed_or_authority_dropped)
{
	struct test_kd_device s1, dash, other;
	struct veil_identity *a2 = NULL;
	ck_assert_int_eq(veil_identity_generate(&a2), VEIL_OK);
	uint8_t a2pk[VEIL_PK_BYTES];
	veil_identity_public(a2, a2pk);
	/* Two authorities trusted: keyd's and a second fleet's. */
	char path[320], line[128], text[400];
	snprintf(path, sizeof(path), "%s/authority.pub", dir);
	size_t one_len;
	char *one = test_file_read(path, &one_len);
	ck_assert_ptr_nonnull(one);
	test_b64(line, sizeof(line), a2pk, sizeof(a2pk));
	snprintf(text, sizeof(text), "%sveil-public-key-v1 %s\n", one, line);
	ck_assert_int_eq(test_write_file(path, text, 0644), 0);
	char err[256];
	ck_assert_int_eq(kd_service__reload(svc, cfgpath, &now, err, sizeof(err)), VEIL_OK);
	test_kd_device_new(&s1, auth, "sensor-1", "sensor", 30 * 86400);
	test_kd_device_new(&dash, auth, "dash-1", "dashboard", 30 * 86400);
	test_kd_device_new(&other, a2, "sensor-2", "sensor", 30 * 86400);
	ck_assert_int_eq(request(&s1), VEIL_OK);
	ck_assert_int_eq(request(&other), VEIL_OK);
	ck_assert_int_eq(request(&dash), VEIL_OK);
	struct veil__grants *g;
	ck_assert_int_eq(open_bundle(&dash, &g), VEIL_OK);
	ck_assert_ptr_nonnull(test_kd_grant(g, "factory/sensor-1/#"));
	ck_assert_ptr_nonnull(test_kd_grant(g, "factory/sensor-2/#"));
	veil__grants_free(&g);
	/* The dashboard role loses its rule: its next bundle holds no sensor's
	 * key (only its own %c subtree, which the pattern still gives it). */
	ck_assert_int_eq(test_write_file(aclpath, "pattern readwrite,encrypted factory/%c/#\n", 0644), 0);
	ck_assert_int_eq(kd_service__reload(svc, cfgpath, &now, err, sizeof(err)), VEIL_OK);
	advance(6);
	ck_assert_int_eq(request(&dash), VEIL_OK);
	ck_assert_int_eq(open_bundle(&dash, &g), VEIL_OK);
	ck_assert_ptr_null(test_kd_grant(g, "factory/sensor-1/#"));
	ck_assert_ptr_null(test_kd_grant(g, "factory/sensor-2/#"));
	for (size_t i = 0; i < g->n; i++)
		ck_assert_str_eq(g->g[i].scope, "factory/dash-1/#");
	veil__grants_free(&g);
	/* The second authority is no longer trusted: its device is treated as
	 * revoked (its scope rotates, the statement names it). */
	ck_assert_int_eq(test_write_file(path, one, 0644), 0);
	ck_assert_int_eq(kd_service__reload(svc, cfgpath, &now, err, sizeof(err)), VEIL_OK);
	ck_assert_ptr_nonnull(strstr(audit, "revocation | rekey | client=sensor-2 instances=1"));
	ck_assert_ptr_null(strstr(audit, "revocation | rekey | client=sensor-1"));
	ck_assert_int_eq(kd_service__tick(svc, &now), VEIL_OK);
	struct veil__revstmt_view rv;
	struct pub *stmt = pub_of(VEIL__TOPIC_REVOCATION);
	ck_assert_int_eq(veil__revstmt_parse(stmt->buf, stmt->len, &rv), VEIL_OK);
	ck_assert_uint_eq(rv.n_entries, 2);
	free(one);
	veil_identity_free(&a2);
	test_kd_device_free(&s1);
	test_kd_device_free(&dash);
	test_kd_device_free(&other);
}
END_TEST

START_TEST(files_watched)
{
	/* A changed ACL is read within a second, as SIGHUP would; a broken one
	 * keeps the old rules until it changes again. */
	ck_assert_int_eq(kd_service__watch(svc, cfgpath), VEIL_OK);
	advance(1);
	ck_assert_int_eq(kd_service__tick(svc, &now), VEIL_OK);
	ck_assert_ptr_null(strstr(audit, "config | reload"));
	ck_assert_int_eq(test_write_file(aclpath, "topic bogus a/b\n", 0644), 0);
	advance(1);
	ck_assert_int_eq(kd_service__tick(svc, &now), VEIL_OK);
	ck_assert_ptr_nonnull(strstr(audit, "config | reload-failed | why=changed kept=old error="));
	size_t fails = 0;
	advance(1);
	ck_assert_int_eq(kd_service__tick(svc, &now), VEIL_OK);
	for (const char *p = audit; (p = strstr(p, "reload-failed")); p++)
		fails++;
	ck_assert_uint_eq(fails, 1); /* not retried while unchanged */
	ck_assert_int_eq(test_write_file(aclpath, "pattern readwrite,signed factory/%c/#\n", 0644), 0);
	advance(1);
	ck_assert_int_eq(kd_service__tick(svc, &now), VEIL_OK);
	ck_assert_ptr_nonnull(strstr(audit, "config | reload | scopes=1"));
	/* The new rules are in force: the sensor's grants are signed now. */
	struct test_kd_device d;
	test_kd_device_new(&d, auth, "sensor-1", "sensor", 30 * 86400);
	ck_assert_int_eq(request(&d), VEIL_OK);
	struct veil__grants *g;
	ck_assert_int_eq(open_bundle(&d, &g), VEIL_OK);
	ck_assert_uint_eq(g->g[0].flags, VEIL__GRANT_MAY_SEND | VEIL__GRANT_SIGNED);
	veil__grants_free(&g);
	test_kd_device_free(&d);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("keyd_service");
	TCase *tc = veil_tcase("keyd_service", 20);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, request_gets_bundle);
	tcase_add_test(tc, refusals_each_audited);
	tcase_add_test(tc, reissue_limit);
	tcase_add_test(tc, flood_costs_the_limit);
	tcase_add_test(tc, acks_recorded);
	tcase_add_test(tc, restart_loses_nothing);
	tcase_add_test(tc, rotation_reaches_entitled);
	tcase_add_test(tc, operator_rotation_and_revocation);
	tcase_add_test(tc, reload_keeps_old_on_error);
	tcase_add_test(tc, new_credential_replaces_old);
	tcase_add_test(tc, rights_removed_or_authority_dropped);
	tcase_add_test(tc, files_watched);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return veil_check_run(suite());
}
