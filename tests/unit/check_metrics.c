/*
 * Tests for plugin/metrics.c: counters fed only by audit lines (through
 * vp_log__audit, the one place), labels and their limits, the gauges read
 * from a registry, the publication schedule and text, getCounters' JSON,
 * the options, and the documentation: every reason a counter can carry is
 * in docs/AUTH.md's table and every family in docs/OPERATIONS.md.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>

#include "veil/veil.h"
#include "auth_private.h"
#include "metrics.h"
#include "plugin_private.h"

#include "check_run.h"
#include "files.h"
#include "timing.h"

static struct vp_metrics *new_metrics(const char *key, const char *value)
{
	struct mosquitto_opt opt = { (char *)key, (char *)value };
	struct vp_metrics *m = NULL;
	ck_assert_int_eq(vp_metrics__new(&opt, key ? 1 : 0, &m), VEIL_OK);
	return m;
}

START_TEST(counted_from_audit_lines)
{
	struct vp_ctx ctx = { 0 };
	ctx.metrics = new_metrics(NULL, NULL);
	struct vp_ctx *prev = vp_log__bind(&ctx);
	vp_log__audit(MOSQ_LOG_NOTICE, "auth", "refuse", "client=a addr=1.2.3.4 method=password reason=bad-password");
	vp_log__audit(MOSQ_LOG_NOTICE, "auth", "refuse", "client=a addr=1.2.3.4 method=password reason=bad-password");
	vp_log__audit(MOSQ_LOG_NOTICE, "auth", "refuse",
	              "client=x addr=1.2.3.4 method=password reason=rate-limited retry_ms=250");
	vp_log__audit(MOSQ_LOG_NOTICE, "auth", "accept", "client=d addr=- method=credential roles=a,b credential=00");
	vp_log__audit(MOSQ_LOG_INFO, "auth", "defer", "client=c addr=- method=password reason=unknown-user");
	vp_log__audit(MOSQ_LOG_NOTICE, "auth", "kick", "client=d reason=revoked-client");
	vp_log__audit(MOSQ_LOG_NOTICE, "control", "kick", "client=d by=ops reason=admin-kick");
	vp_log__audit(MOSQ_LOG_INFO, "acl", "deny", "client=d access=subscribe topic=# reason=rules");
	vp_log__audit(MOSQ_LOG_NOTICE, "acl", "refuse", "client=d topic=t reason=not-envelope retain=0 bytes=3");
	vp_log__audit(MOSQ_LOG_NOTICE, "auth", "load", "file=password users=3");
	vp_log__audit(MOSQ_LOG_ERR, "auth", "reload-failed", "file=revocation error=\"x:1: bad reason=fake\" action=kept-old");
	vp_log__audit(MOSQ_LOG_NOTICE, "acl", "loaded", "why=init file=acl rules=3");
	vp_log__audit(MOSQ_LOG_NOTICE, "plugin", "reload", "result=failed auth=kept-old acl=ok trigger=sighup");
	vp_log__audit(MOSQ_LOG_NOTICE, "control", "command", "client=ops command=revokeClient result=ok target=d");
	vp_log__audit(MOSQ_LOG_NOTICE, "control", "command", "client=ops command=kickClient result=error reason=not-found");
	vp_log__audit(MOSQ_LOG_WARNING, "auth", "token-v1", "client=d addr=- logins=1 (a token bound to no deployment)");
	/* Lines that are not refusals count nowhere. */
	vp_log__audit(MOSQ_LOG_INFO, "auth", "forget", "client=g previous=h state=parked reason=reused-client-pointer");
	vp_log__bind(prev);
	/* Unbound, a line is only logged. */
	vp_log__audit(MOSQ_LOG_NOTICE, "auth", "refuse", "client=a addr=- method=password reason=bad-password");
	struct vp_metrics *m = ctx.metrics;
	ck_assert_uint_eq(vp_metrics__get(m, "logins_refused", "bad-password"), 2);
	ck_assert_uint_eq(vp_metrics__get(m, "logins_refused", "rate-limited"), 1);
	ck_assert_uint_eq(vp_metrics__get(m, "logins_refused", "anonymous"), 0);
	ck_assert_uint_eq(vp_metrics__get(m, "logins_accepted", "credential"), 1);
	ck_assert_uint_eq(vp_metrics__get(m, "logins_deferred", "unknown-user"), 1);
	ck_assert_uint_eq(vp_metrics__get(m, "kicks", "revoked-client"), 1);
	ck_assert_uint_eq(vp_metrics__get(m, "kicks", "admin-kick"), 1);
	ck_assert_uint_eq(vp_metrics__get(m, "acl_denied", "rules"), 1);
	ck_assert_uint_eq(vp_metrics__get(m, "envelope_refused", "not-envelope"), 1);
	ck_assert_uint_eq(vp_metrics__get(m, "file_loads", "password"), 1);
	ck_assert_uint_eq(vp_metrics__get(m, "file_loads", "rules"), 1);
	ck_assert_uint_eq(vp_metrics__get(m, "file_load_failures", "revocation"), 1);
	ck_assert_uint_eq(vp_metrics__get(m, "reloads", "failed"), 1);
	ck_assert_uint_eq(vp_metrics__get(m, "control_commands", "revokeClient"), 1);
	ck_assert_uint_eq(vp_metrics__get(m, "control_commands", "kickClient"), 1);
	ck_assert_uint_eq(vp_metrics__get(m, "control_errors", "not-found"), 1);
	ck_assert_uint_eq(vp_metrics__get(m, "token_v1_logins", "total"), 1);
	ck_assert_uint_eq(vp_metrics__get(m, "logins_refused", "reused-client-pointer"), 0);
	ck_assert_uint_eq(vp_metrics__get(m, "logins_refused", "fake"), 0);
	vp_metrics__free(&ctx.metrics);
	ck_assert_ptr_null(ctx.metrics);
}
END_TEST

START_TEST(labels)
{
	struct vp_metrics *m = new_metrics(NULL, NULL);
	/* A reason the documentation does not know yet still counts. */
	vp_metrics__count(m, "auth", "refuse", "reason=brand-new-reason");
	ck_assert_uint_eq(vp_metrics__get(m, "logins_refused", "brand-new-reason"), 1);
	/* Not one topic level, or missing: "other", "unknown". */
	vp_metrics__count(m, "auth", "refuse", "reason=a/b");
	vp_metrics__count(m, "auth", "refuse", "reason=#");
	ck_assert_uint_eq(vp_metrics__get(m, "logins_refused", "other"), 2);
	vp_metrics__count(m, "auth", "refuse", "client=x");
	vp_metrics__count(m, "auth", "refuse", "reason=");
	ck_assert_uint_eq(vp_metrics__get(m, "logins_refused", "unknown"), 2);
	/* "reason=" inside another value is not the field. */
	vp_metrics__count(m, "auth", "kick", "client=xreason=bad reason=expired-credential");
	ck_assert_uint_eq(vp_metrics__get(m, "kicks", "expired-credential"), 1);
	/* Bounded: past VP_METRICS_MAX entries, new labels share "other". */
	char f[64];
	for (unsigned i = 0; i < VP_METRICS_MAX + 10; i++) {
		snprintf(f, sizeof(f), "reason=r%u", i);
		vp_metrics__count(m, "acl", "deny", f);
	}
	ck_assert_uint_ge(vp_metrics__get(m, "acl_denied", "other"), 10);
	ck_assert_uint_eq(vp_metrics__get(m, "acl_denied", "r1"), 1);
	vp_metrics__free(&m);
}
END_TEST

struct seen {
	char topics[2048][96];
	char values[2048][32];
	size_t n;
};

static void collect(void *arg, const char *topic, const char *value)
{
	struct seen *s = arg;
	ck_assert_uint_lt(s->n, 2048);
	snprintf(s->topics[s->n], sizeof(s->topics[0]), "%s", topic);
	snprintf(s->values[s->n], sizeof(s->values[0]), "%s", value);
	s->n++;
}

static const char *value_of(const struct seen *s, const char *topic)
{
	for (size_t i = 0; i < s->n; i++) {
		if (!strcmp(s->topics[i], topic))
			return s->values[i];
	}
	return NULL;
}

START_TEST(gauges_and_publication)
{
	struct vp_ctx ctx = { 0 };
	struct vp_auth auth = { 0 };
	ctx.auth = &auth;
	ctx.metrics = new_metrics("sys_interval", "10");
	ck_assert_int_eq(vp_clients__new(&ctx.clients), VEIL_OK);
	/* Three clients online (two with roles), one offline session. */
	const struct mosquitto *p[4] = { (void *)0x1000, (void *)0x2000, (void *)0x3000, (void *)0x4000 };
	struct vp_client *c = vp_clients__put(ctx.clients, p[0], "d1", "d1", NULL);
	c->login = VP_LOGIN_CREDENTIAL;
	snprintf(c->roles, sizeof(c->roles), "sensor,ops");
	c = vp_clients__put(ctx.clients, p[1], "d2", "d2", NULL);
	c->login = VP_LOGIN_CREDENTIAL;
	snprintf(c->roles, sizeof(c->roles), "sensor");
	c = vp_clients__put(ctx.clients, p[2], "alice", "alice", NULL);
	c->login = VP_LOGIN_PASSWORD;
	c = vp_clients__put(ctx.clients, p[3], "d3", "d3", NULL);
	c->login = VP_LOGIN_CREDENTIAL;
	snprintf(c->roles, sizeof(c->roles), "sensor");
	vp_clients__park(ctx.clients, p[3], NULL);
	auth.hashes_total = 3;
	auth.hash_us_total = 2500001;
	vp_metrics__count(ctx.metrics, "auth", "refuse", "reason=anonymous");
	vp_metrics__refresh(ctx.metrics, &ctx);
	struct seen *s = calloc(1, sizeof(*s));
	vp_metrics__each(ctx.metrics, collect, s);
	ck_assert_str_eq(value_of(s, "$SYS/broker/veil/clients_by_role/sensor"), "2");
	ck_assert_str_eq(value_of(s, "$SYS/broker/veil/clients_by_role/ops"), "1");
	ck_assert_str_eq(value_of(s, "$SYS/broker/veil/clients_by_login/credential"), "2");
	ck_assert_str_eq(value_of(s, "$SYS/broker/veil/clients_by_login/password"), "1");
	ck_assert_str_eq(value_of(s, "$SYS/broker/veil/clients/online"), "3");
	ck_assert_str_eq(value_of(s, "$SYS/broker/veil/clients/offline"), "1");
	ck_assert_str_eq(value_of(s, "$SYS/broker/veil/argon2id_hashes/total"), "3");
	ck_assert_str_eq(value_of(s, "$SYS/broker/veil/argon2id_seconds/total"), "2.500001");
	ck_assert_str_eq(value_of(s, "$SYS/broker/veil/logins_refused/anonymous"), "1");
	ck_assert_str_eq(value_of(s, "$SYS/broker/veil/logins_refused/bad-password"), "0"); /* documented: from 0 */
	/* Every topic is two levels under $SYS/broker/veil. */
	for (size_t i = 0; i < s->n; i++) {
		const char *rest = s->topics[i] + strlen(VP_METRICS_TOPIC_PREFIX);
		ck_assert(!strncmp(s->topics[i], VP_METRICS_TOPIC_PREFIX, strlen(VP_METRICS_TOPIC_PREFIX)));
		const char *slash = strchr(rest, '/');
		ck_assert_msg(slash && slash > rest && slash[1] && !strchr(slash + 1, '/'), "%s", s->topics[i]);
	}
	/* Roles nobody holds any more are published as 0. */
	vp_clients__remove(ctx.clients, p[0], NULL);
	vp_metrics__refresh(ctx.metrics, &ctx);
	s->n = 0;
	vp_metrics__each(ctx.metrics, collect, s);
	ck_assert_str_eq(value_of(s, "$SYS/broker/veil/clients_by_role/ops"), "0");
	ck_assert_str_eq(value_of(s, "$SYS/broker/veil/clients_by_role/sensor"), "1");
	/* getCounters: the same values as JSON. */
	cJSON *j = vp_metrics__json(ctx.metrics);
	ck_assert_ptr_nonnull(j);
	const cJSON *fam = cJSON_GetObjectItemCaseSensitive(j, "argon2id_seconds");
	ck_assert(cJSON_GetObjectItemCaseSensitive(fam, "total")->valuedouble > 2.5);
	fam = cJSON_GetObjectItemCaseSensitive(j, "logins_refused");
	ck_assert_int_eq(cJSON_GetObjectItemCaseSensitive(fam, "anonymous")->valueint, 1);
	cJSON_Delete(j);
	/* Published at once, then every sys_interval. */
	ck_assert(vp_metrics__due(ctx.metrics, 5000));
	ck_assert(!vp_metrics__due(ctx.metrics, 5001));
	ck_assert(!vp_metrics__due(ctx.metrics, 14999));
	ck_assert(vp_metrics__due(ctx.metrics, 15000));
	free(s);
	vp_clients__free(&ctx.clients, NULL);
	vp_metrics__free(&ctx.metrics);
}
END_TEST

START_TEST(options)
{
	struct vp_metrics *m = new_metrics("sys_interval", "0");
	ck_assert(!vp_metrics__due(m, 0));
	ck_assert(!vp_metrics__json_audit(m));
	vp_metrics__free(&m);
	m = new_metrics("audit_format", "json");
	ck_assert(vp_metrics__json_audit(m));
	vp_metrics__free(&m);
	m = new_metrics("audit_format", "text");
	ck_assert(!vp_metrics__json_audit(m));
	vp_metrics__free(&m);
	struct mosquitto_opt bad[] = { { (char *)"audit_format", (char *)"xml" }, { (char *)"sys_interval", (char *)"-1" },
		                       { (char *)"sys_interval", (char *)"86401" } };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		m = NULL;
		ck_assert_int_eq(vp_metrics__new(&bad[i], 1, &m), VEIL_ERR_INVAL);
		ck_assert_ptr_null(m);
	}
	ck_assert(vp_metrics__option_known("sys_interval"));
	ck_assert(vp_metrics__option_known("audit_format"));
	ck_assert(!vp_metrics__option_known("acl_file"));
}
END_TEST

/* The documentation names every reason a counter can carry, and every
 * family; and names no reason the plugin does not seed. */
static void families_and_labels(void *arg, const char *topic, const char *value)
{
	(void)value;
	char **docs = arg; /* [0] AUTH.md, [1] OPERATIONS.md */
	const char *rest = topic + strlen(VP_METRICS_TOPIC_PREFIX);
	char family[64], label[128], want[200];
	const char *slash = strchr(rest, '/');
	snprintf(family, sizeof(family), "%.*s", (int)(slash - rest), rest);
	snprintf(label, sizeof(label), "%s", slash + 1);
	snprintf(want, sizeof(want), "`veil_%s", family);
	ck_assert_msg(strstr(docs[1], want), "docs/OPERATIONS.md does not name %s", want);
	static const char *const REASONS[] = { "logins_refused", "logins_deferred", "kicks", "acl_denied",
		                               "envelope_refused", "control_errors" };
	for (size_t i = 0; i < sizeof(REASONS) / sizeof(REASONS[0]); i++) {
		if (strcmp(family, REASONS[i]) != 0)
			continue;
		snprintf(want, sizeof(want), "| `%s` |", label);
		ck_assert_msg(strstr(docs[0], want), "docs/AUTH.md's reasons table lacks %s (%s)", label, family);
	}
}

START_TEST(documented)
{
	char path[512];
	size_t len = 0;
	char *docs[2];
	snprintf(path, sizeof(path), "%s/docs/AUTH.md", VEIL_SOURCE_DIR);
	docs[0] = test_file_read(path, &len);
	snprintf(path, sizeof(path), "%s/docs/OPERATIONS.md", VEIL_SOURCE_DIR);
	docs[1] = test_file_read(path, &len);
	ck_assert_ptr_nonnull(docs[0]);
	ck_assert_ptr_nonnull(docs[1]);
	struct vp_metrics *m = new_metrics(NULL, NULL);
	vp_metrics__each(m, families_and_labels, docs);
	/* And the other way: each row of the table is a seeded reason. */
	const char *table = strstr(docs[0], "\n## Reasons");
	ck_assert_ptr_nonnull(table);
	const char *end = strstr(table + 1, "\n## ");
	int rows = 0;
	for (const char *p = strstr(table, "\n| `"); p && (!end || p < end); p = strstr(p + 1, "\n| `")) {
		char reason[128] = "";
		ck_assert_int_eq(sscanf(p, "\n| `%127[^`]`", reason), 1);
		const char *families[] = { "logins_refused", "logins_deferred", "kicks", "acl_denied", "envelope_refused",
			                   "control_errors" };
		struct seen *s = calloc(1, sizeof(*s));
		vp_metrics__each(m, collect, s);
		bool found = false;
		for (size_t f = 0; f < 6 && !found; f++) {
			char topic[256];
			snprintf(topic, sizeof(topic), VP_METRICS_TOPIC_PREFIX "%s/%s", families[f], reason);
			found = value_of(s, topic) != NULL;
		}
		free(s);
		ck_assert_msg(found, "docs/AUTH.md lists %s, which no counter carries", reason);
		rows++;
	}
	ck_assert_int_gt(rows, 40);
	vp_metrics__free(&m);
	free(docs[0]);
	free(docs[1]);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("metrics");
	TCase *tc = veil_tcase("metrics", 5);
	tcase_add_test(tc, counted_from_audit_lines);
	tcase_add_test(tc, labels);
	tcase_add_test(tc, gauges_and_publication);
	tcase_add_test(tc, options);
	tcase_add_test(tc, documented);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return veil_check_run(suite());
}
