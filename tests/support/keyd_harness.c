/* keyd's service in-process for unit tests (see keyd_harness.h). */
#include "keyd_harness.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "veil/veil.h"
#include "files.h"
#include "material.h"

struct kdh kdh;

const char kdh_acl[] = "pattern readwrite,encrypted factory/%c/#\n"
                       "role dashboard\n"
                       "topic read factory/#\n";

static void sink(void *ctx, const char *line)
{
	(void)ctx;
	size_t n = strlen(line);
	if (kdh.audit_len + n + 2 < sizeof(kdh.audit)) {
		memcpy(kdh.audit + kdh.audit_len, line, n);
		kdh.audit_len += n;
		kdh.audit[kdh.audit_len++] = '\n';
		kdh.audit[kdh.audit_len] = '\0';
	}
	if (kdh.on_audit)
		kdh.on_audit(line);
}

static int publish(void *ctx, const char *topic, const uint8_t *buf, size_t len, const uint8_t *cred_id,
                   uint64_t version)
{
	(void)ctx;
	size_t i = 0;
	while (i < kdh.n_pubs && strcmp(kdh.pubs[i].topic, topic))
		i++;
	ck_assert_uint_lt(i, KDH_MAXPUB);
	if (i == kdh.n_pubs)
		kdh.n_pubs++;
	struct kdh_pub *p = &kdh.pubs[i];
	free(p->buf);
	snprintf(p->topic, sizeof(p->topic), "%s", topic);
	p->buf = malloc(len);
	ck_assert_ptr_nonnull(p->buf);
	memcpy(p->buf, buf, len);
	p->len = len;
	ck_assert_uint_gt(version, p->version); /* versions only grow */
	p->version = version;
	if (cred_id)
		kdh.n_bundles++;
	else
		kdh.n_statements++;
	return VEIL_OK;
}

struct kdh_pub *kdh_pub_of(const char *topic)
{
	for (size_t i = 0; i < kdh.n_pubs; i++)
		if (!strcmp(kdh.pubs[i].topic, topic))
			return &kdh.pubs[i];
	return NULL;
}

struct kdh_pub *kdh_bundle_of(const struct test_kd_device *d)
{
	char t[200];
	snprintf(t, sizeof(t), "%s%s", VEIL__TOPIC_BUNDLE_PREFIX, d->c.client_id);
	return kdh_pub_of(t);
}

void kdh_write_config(const char *extra)
{
	char text[2048];
	snprintf(text, sizeof(text),
	         "broker tcp://127.0.0.1:1\nclient_id veil-keyd\nidentity keyd.key\ncredential keyd.cred\n"
	         "authorities authority.pub\nacl_file veil.acl\nrevocation_file revoked.txt\ndatabase keyd.db\n"
	         "storage_key storage.key\nreissue_interval 5\nrequest_rate 10\n"
	         "scope factory/%%c/# period 3600 lead 300 grace 600 depth 1\n%s",
	         extra ? extra : "");
	ck_assert_int_eq(test_write_file(kdh.cfgpath, text, 0644), 0);
}

void kdh_start(void)
{
	char err[512] = "";
	struct kd_config cfg;
	struct kd_material m;
	ck_assert_msg(kd_config__load(kdh.cfgpath, &cfg, err, sizeof(err)) == VEIL_OK, "%s", err);
	ck_assert_int_eq(kd_storage_key__load(kdh.skpath, &kdh.skey, err, sizeof(err)), VEIL_OK);
	ck_assert_int_eq(kd_store__open(kdh.dbpath, kdh.skey, true, &kdh.st, err, sizeof(err)), VEIL_OK);
	ck_assert_msg(kd_material__load(&cfg, kdh_secs(), &m, err, sizeof(err)) == VEIL_OK, "%s", err);
	ck_assert_msg(kd_service__new(&cfg, &m, kdh.st, &kdh.now, &kdh.svc, err, sizeof(err)) == VEIL_OK, "%s", err);
	kd_service__set_publisher(kdh.svc, publish, NULL);
}

void kdh_stop(void)
{
	kd_service__free(&kdh.svc);
	kd_store__close(&kdh.st);
	kd_storage_key__free(&kdh.skey);
}

void kdh_setup(void)
{
	memset(&kdh, 0, sizeof(kdh));
	kd_log__set_sink(sink, NULL);
	ck_assert_int_eq(test_mkdtemp(kdh.dir, sizeof(kdh.dir)), 0);
	snprintf(kdh.cfgpath, sizeof(kdh.cfgpath), "%s/keyd.conf", kdh.dir);
	snprintf(kdh.aclpath, sizeof(kdh.aclpath), "%s/veil.acl", kdh.dir);
	snprintf(kdh.revpath, sizeof(kdh.revpath), "%s/revoked.txt", kdh.dir);
	snprintf(kdh.dbpath, sizeof(kdh.dbpath), "%s/keyd.db", kdh.dir);
	snprintf(kdh.skpath, sizeof(kdh.skpath), "%s/storage.key", kdh.dir);
	ck_assert_int_eq(veil_identity_generate(&kdh.auth), VEIL_OK);
	veil_identity_public(kdh.auth, kdh.auth_pk);
	char path[320];
	test_authority_save(kdh.auth, kdh.dir, path, sizeof(path));
	struct veil_identity *k = NULL;
	ck_assert_int_eq(veil_identity_generate(&k), VEIL_OK);
	snprintf(path, sizeof(path), "%s/keyd.key", kdh.dir);
	ck_assert_int_eq(veil_identity_save(k, path), VEIL_OK);
	uint8_t cred[VEIL_CREDENTIAL_MAX];
	size_t n = test_credential_make(kdh.auth, k, "veil-keyd", "veil-keyd", 30 * 86400, cred);
	snprintf(path, sizeof(path), "%s/keyd.cred", kdh.dir);
	ck_assert_int_eq(veil_credential_save(cred, n, path), VEIL_OK);
	veil_identity_free(&k);
	ck_assert_int_eq(test_write_file(kdh.aclpath, kdh_acl, 0644), 0);
	ck_assert_int_eq(test_write_file(kdh.revpath, "# nobody\n", 0644), 0);
	char err[256];
	ck_assert_int_eq(kd_storage_key__create(kdh.skpath, err, sizeof(err)), VEIL_OK);
	kdh_write_config(NULL);
	kdh.now.unix_us = (uint64_t)time(NULL) * 1000000U;
	kdh.now.mono_ms = 1000000;
	kdh_start();
}

void kdh_teardown(void)
{
	kdh_stop();
	veil_identity_free(&kdh.auth);
	for (size_t i = 0; i < kdh.n_pubs; i++)
		free(kdh.pubs[i].buf);
	test_rmtree(kdh.dir);
	kd_log__set_sink(NULL, NULL);
	memset(&kdh, 0, sizeof(kdh));
}

uint64_t kdh_secs(void)
{
	return kdh.now.unix_us / 1000000U;
}

void kdh_advance(uint64_t s)
{
	kdh.now.unix_us += s * 1000000U;
	kdh.now.mono_ms += s * 1000U;
}

int kdh_send(struct test_kd_device *d, uint8_t kind, uint64_t ts, uint64_t version)
{
	uint8_t m[VEIL__DEVMSG_MAX];
	size_t n = test_kd_devmsg(d, kind, ts, version, m);
	char topic[200];
	snprintf(topic, sizeof(topic), "%s%s", VEIL__TOPIC_REQ_PREFIX, d->c.client_id);
	return kd_service__message(kdh.svc, topic, m, n, &kdh.now);
}

int kdh_request(struct test_kd_device *d)
{
	return kdh_send(d, VEIL__KIND_REQUEST, kdh_secs(), d->held_version);
}

void kdh_join(struct test_kd_device *d, const char *client_id, const char *roles, struct veil__grants **g)
{
	struct veil__grants *mine = NULL;
	test_kd_device_new(d, kdh.auth, client_id, roles, 30 * 86400);
	ck_assert_int_eq(kdh_request(d), VEIL_OK);
	ck_assert_int_eq(kdh_open(d, &mine), VEIL_OK);
	if (g)
		*g = mine;
	else
		veil__grants_free(&mine);
}

const struct veil__grant *kdh_superseding(const struct veil__grants *g, const char *scope)
{
	for (size_t i = 0; i < g->n; i++)
		if (!strcmp(g->g[i].scope, scope) && (g->g[i].flags & VEIL__GRANT_SUPERSEDES))
			return &g->g[i];
	return NULL;
}

int kdh_open(struct test_kd_device *d, struct veil__grants **g)
{
	struct kdh_pub *p = kdh_bundle_of(d);
	ck_assert_ptr_nonnull(p);
	return test_kd_open(d, kdh.auth_pk, kdh_secs(), p->buf, p->len, g);
}

size_t kdh_audit_count(const char *needle)
{
	size_t n = 0;
	for (const char *p = kdh.audit; (p = strstr(p, needle)) != NULL; p += strlen(needle))
		n++;
	return n;
}

char *kdh_add_authority(const uint8_t pk[VEIL_PK_BYTES])
{
	char path[320], line[128], text[600];
	snprintf(path, sizeof(path), "%s/authority.pub", kdh.dir);
	size_t len;
	char *was = test_file_read(path, &len);
	ck_assert_ptr_nonnull(was);
	test_b64(line, sizeof(line), pk, VEIL_PK_BYTES);
	snprintf(text, sizeof(text), "%sveil-public-key-v1 %s\n", was, line);
	ck_assert_int_eq(test_write_file(path, text, 0644), 0);
	return was;
}
