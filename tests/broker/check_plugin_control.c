/*
 * The admin API ($CONTROL/veil/v1, plugin/control.c) through a real broker:
 * every command by an admin (libveil client, credential with veil-admin),
 * every command refused for a credential without the role and for a client
 * without identity (PUBACK 0x87, no response, nothing changed), malformed
 * requests answered with an error and nothing changed, the runtime files
 * edited by hand with the same effect, password users added and removed,
 * and the JSON audit lines. veil ctl, restarts: check_cli_ctl.c; the
 * counters: check_plugin_metrics.c.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "veil/veil.h"
#include "check_run.h"
#include "files.h"
#include "ops_fixture.h"
#include "timing.h"

static const char *const COMMANDS[] = {
	"{\"commands\":[{\"command\":\"listClients\"}]}",
	"{\"commands\":[{\"command\":\"kickClient\",\"clientId\":\"dev-2\"}]}",
	"{\"commands\":[{\"command\":\"revokeClient\",\"clientId\":\"dev-2\"}]}",
	"{\"commands\":[{\"command\":\"revokeCredential\",\"credentialId\":\"00112233445566778899aabbccddeeff\"}]}",
	"{\"commands\":[{\"command\":\"removeRevocation\",\"clientId\":\"dev-2\"}]}",
	"{\"commands\":[{\"command\":\"listRevocations\"}]}",
	"{\"commands\":[{\"command\":\"listPasswordUsers\"}]}",
	"{\"commands\":[{\"command\":\"addPasswordUser\",\"username\":\"mallory\",\"password\":\"pw\"}]}",
	"{\"commands\":[{\"command\":\"removePasswordUser\",\"username\":\"prometheus\"}]}",
	"{\"commands\":[{\"command\":\"reload\"}]}",
	"{\"commands\":[{\"command\":\"getCounters\"}]}",
};
#define N_COMMANDS (sizeof(COMMANDS) / sizeof(COMMANDS[0]))

static struct opsfx F;

static void state_file(const char *name, char *out, size_t cap)
{
	ck_assert_int_lt(snprintf(out, cap, "%s/%s", F.state, name), (int)cap);
}

/* The one response to one command; its error reason must be want (NULL:
 * success). The tree stays for the caller to read (delete it). */
static const cJSON *expect(struct opsfx_session *a, const char *payload, const char *want, cJSON **tree)
{
	const cJSON *r = opsfx_one(a, payload, tree);
	const char *got = opsfx_reason(r);
	if (want)
		ck_assert_msg(got && !strcmp(got, want), "%s: want %s, got %s (%s)", payload, want, got ? got : "success",
		              opsfx_str(r, "error"));
	else
		ck_assert_msg(!got, "%s: %s (%s)", payload, got, opsfx_str(r, "error"));
	return r;
}

static void expect_only(struct opsfx_session *a, const char *payload, const char *want)
{
	cJSON *t = NULL;
	expect(a, payload, want, &t);
	cJSON_Delete(t);
}

static const cJSON *data_of(const cJSON *r)
{
	const cJSON *d = cJSON_GetObjectItemCaseSensitive(r, "data");
	ck_assert(cJSON_IsObject(d));
	return d;
}

static double num(const cJSON *o, const char *name)
{
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, name);
	ck_assert_msg(cJSON_IsNumber(j), "no number %s", name);
	return j->valuedouble;
}

static const cJSON *find_client(const cJSON *data, const char *id)
{
	const cJSON *c;
	cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(data, "clients")) {
		if (!strcmp(opsfx_str(c, "clientId"), id))
			return c;
	}
	return NULL;
}

static bool lost(struct opsfx_session *s, int base_ms)
{
	return opsfx_gone(s, base_ms);
}

static int login(const char *stem)
{
	return opsfx_login_rc(&F, stem);
}

static int login_password(const char *user, const char *password)
{
	return opsfx_password_rc(&F, user, password);
}

static void setup(void)
{
	opsfx_setup(&F, NULL);
}

static void teardown(void)
{
	opsfx_teardown(&F);
}

START_TEST(list_clients)
{
	time_t t0 = time(NULL);
	struct opsfx_session admin, dev;
	opsfx_open(&F, &dev, "dev-1", false);
	opsfx_open(&F, &admin, "admin-1", true);
	cJSON *t = NULL;
	const cJSON *d = data_of(expect(&admin, "{\"commands\":[{\"command\":\"listClients\",\"correlationData\":\"c1\"}]}",
	                                NULL, &t));
	ck_assert_int_eq((int)num(d, "totalCount"), 2);
	ck_assert_int_eq((int)num(d, "offline"), 0);
	const cJSON *c = find_client(d, "dev-1");
	ck_assert_ptr_nonnull(c);
	ck_assert_str_eq(opsfx_str(c, "login"), "credential");
	ck_assert_str_eq(opsfx_str(c, "address"), "127.0.0.1");
	ck_assert_uint_eq(strlen(opsfx_str(c, "credentialId")), 32);
	ck_assert_uint_eq(strlen(opsfx_str(c, "authority")), 2 * VEIL_AUTHORITY_ID_BYTES);
	ck_assert(num(c, "connectedSince") >= (double)t0 - 1 && num(c, "connectedSince") <= (double)time(NULL) + 1);
	ck_assert(num(c, "expires") > (double)time(NULL));
	const cJSON *roles = cJSON_GetObjectItemCaseSensitive(c, "roles");
	ck_assert_int_eq(cJSON_GetArraySize(roles), 1);
	ck_assert_str_eq(cJSON_GetArrayItem(roles, 0)->valuestring, "sensor");
	c = find_client(d, "admin-1");
	ck_assert_ptr_nonnull(c);
	roles = cJSON_GetObjectItemCaseSensitive(c, "roles");
	ck_assert_int_eq(cJSON_GetArraySize(roles), 2);
	ck_assert_str_eq(cJSON_GetArrayItem(roles, 1)->valuestring, "veil-admin");
	cJSON_Delete(t);
	/* Pages, in client id order; dynsec's lower-case spelling works too. */
	d = data_of(expect(&admin, "{\"commands\":[{\"command\":\"listclients\",\"offset\":1,\"count\":1}]}", NULL, &t));
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(d, "clients")), 1);
	ck_assert_ptr_nonnull(find_client(d, "dev-1"));
	ck_assert_int_eq((int)num(d, "totalCount"), 2);
	cJSON_Delete(t);
	/* Several commands in one request, answered in order. */
	t = opsfx_call(&admin, "{\"commands\":[{\"command\":\"getCounters\",\"correlationData\":\"a\"},"
	                       "{\"command\":\"listRevocations\",\"correlationData\":\"b\"}]}");
	const cJSON *arr = cJSON_GetObjectItemCaseSensitive(t, "responses");
	ck_assert_int_eq(cJSON_GetArraySize(arr), 2);
	ck_assert_str_eq(opsfx_str(cJSON_GetArrayItem(arr, 0), "correlationData"), "a");
	ck_assert_str_eq(opsfx_str(cJSON_GetArrayItem(arr, 1), "command"), "listRevocations");
	const cJSON *counters = cJSON_GetObjectItemCaseSensitive(data_of(cJSON_GetArrayItem(arr, 0)), "counters");
	ck_assert_int_eq((int)num(cJSON_GetObjectItemCaseSensitive(counters, "logins_accepted"), "credential"), 2);
	ck_assert_int_eq((int)num(cJSON_GetObjectItemCaseSensitive(counters, "clients_by_role"), "veil-admin"), 1);
	cJSON_Delete(t);
	ck_assert(test_broker_log_wait(&F.c.broker, "veil: control | command | client=admin-1 command=listClients result=ok",
	                               5000));
	opsfx_close(&admin);
	opsfx_close(&dev);
}
END_TEST

START_TEST(revoke_kick_and_undo)
{
	struct opsfx_session admin, dev, other;
	opsfx_open(&F, &dev, "dev-1", false);
	opsfx_open(&F, &other, "admin-2", false);
	opsfx_open(&F, &admin, "admin-1", true);
	cJSON *t = NULL;
	const cJSON *c = find_client(data_of(expect(&admin, "{\"commands\":[{\"command\":\"listClients\"}]}", NULL, &t)),
	                             "dev-1");
	char cred[64], req[256];
	snprintf(cred, sizeof(cred), "%s", opsfx_str(c, "credentialId"));
	cJSON_Delete(t);

	/* kickClient: gone at once, but may come back. */
	expect_only(&admin, "{\"commands\":[{\"command\":\"kickClient\",\"clientId\":\"admin-2\"}]}", NULL);
	ck_assert(lost(&other, 2000));
	ck_assert(test_broker_log_wait(&F.c.broker, "veil: control | kick | client=admin-2 by=admin-1 reason=admin-kick",
	                               5000));
	ck_assert_int_eq(login("admin-2"), VEIL_OK);
	expect_only(&admin, "{\"commands\":[{\"command\":\"kickClient\",\"clientId\":\"nobody\"}]}", "not-found");

	/* revokeCredential: the connected device goes at the next TICK and
	 * cannot come back; the runtime file says so. */
	uint64_t t0 = veil_test_now_ms();
	snprintf(req, sizeof(req), "{\"commands\":[{\"command\":\"revokeCredential\",\"credentialId\":\"%s\"}]}", cred);
	const cJSON *d = data_of(expect(&admin, req, NULL, &t));
	ck_assert_int_eq((int)num(d, "kicked"), 1);
	ck_assert(!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(d, "alreadyRevoked")));
	cJSON_Delete(t);
	ck_assert(lost(&dev, 2000));
	printf("FIGURE control_revoke_to_kick ms=%llu\n", (unsigned long long)(veil_test_now_ms() - t0));
	ck_assert(test_broker_log_wait(&F.c.broker, "veil: auth | kick | client=dev-1 reason=revoked-credential", 5000));
	ck_assert_int_eq(login("dev-1"), VEIL_ERR_AUTH);
	char path[512], line[128];
	state_file("revocations", path, sizeof(path));
	snprintf(line, sizeof(line), "\ncredential %s\n", cred);
	ck_assert(test_file_has(path, line));
	expect_only(&admin, req, NULL); /* again: already revoked, still fine */

	/* revokeClient of a client not connected, listed with its source. */
	d = data_of(expect(&admin, "{\"commands\":[{\"command\":\"revokeClient\",\"clientId\":\"dev-2\"}]}", NULL, &t));
	ck_assert_int_eq((int)num(d, "kicked"), 0);
	cJSON_Delete(t);
	ck_assert_int_eq(login("dev-2"), VEIL_ERR_AUTH);
	d = data_of(expect(&admin, "{\"commands\":[{\"command\":\"listRevocations\"}]}", NULL, &t));
	ck_assert_int_eq((int)num(d, "totalCount"), 2);
	const cJSON *e = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(d, "revocations"), 1);
	ck_assert_str_eq(opsfx_str(e, "clientId"), "dev-2");
	ck_assert_str_eq(opsfx_str(e, "source"), "runtime");
	cJSON_Delete(t);

	/* removeRevocation undoes what the API did, only that. */
	expect_only(&admin, "{\"commands\":[{\"command\":\"removeRevocation\",\"clientId\":\"dev-2\"}]}", NULL);
	ck_assert_int_eq(login("dev-2"), VEIL_OK);
	expect_only(&admin, "{\"commands\":[{\"command\":\"removeRevocation\",\"clientId\":\"dev-2\"}]}", "not-found");
	snprintf(req, sizeof(req), "{\"commands\":[{\"command\":\"removeRevocation\",\"credentialId\":\"%s\"}]}", cred);
	expect_only(&admin, req, NULL);
	ck_assert_int_eq(login("dev-1"), VEIL_OK);
	ck_assert_int_eq(test_write_file(F.revoked, "client dev-2\n", 0644), 0);
	ck_assert(test_broker_log_wait(&F.c.broker, "file=revocation entries=1", 5000));
	expect_only(&admin, "{\"commands\":[{\"command\":\"removeRevocation\",\"clientId\":\"dev-2\"}]}", "operator-file");
	ck_assert_int_eq(login("dev-2"), VEIL_ERR_AUTH);
	opsfx_close(&admin);
	opsfx_close(&other);
	opsfx_close(&dev);
}
END_TEST

START_TEST(password_users)
{
	struct opsfx_session admin, alice;
	opsfx_open(&F, &admin, "admin-1", true);
	cJSON *t = NULL;
	const cJSON *d = data_of(expect(&admin, "{\"commands\":[{\"command\":\"listPasswordUsers\"}]}", NULL, &t));
	ck_assert_int_eq((int)num(d, "totalCount"), 1);
	ck_assert_str_eq(opsfx_str(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(d, "users"), 0), "source"), "file");
	cJSON_Delete(t);
	ck_assert_int_eq(login_password("alice", "wonderland"), VEIL_ERR_AUTH);
	expect_only(&admin,
	            "{\"commands\":[{\"command\":\"addPasswordUser\",\"username\":\"alice\",\"password\":\"wonderland\"}]}",
	            NULL);
	/* A login works; the runtime file holds an Argon2id hash, never the
	 * password, and so does the log. */
	opsfx_open_password(&F, &alice, "alice", "wonderland");
	char path[512];
	state_file("passwd", path, sizeof(path));
	ck_assert(test_file_has(path, "\nalice:$argon2id$"));
	ck_assert(!test_file_has(path, "wonderland"));
	ck_assert(!test_file_has(F.c.broker.log, "wonderland"));
	ck_assert_int_eq(login_password("alice", "wrong"), VEIL_ERR_AUTH);
	ck_assert(test_broker_log_wait(&F.c.broker, "client=alice addr=127.0.0.1 method=password reason=bad-password", 5000));
	d = data_of(expect(&admin, "{\"commands\":[{\"command\":\"listPasswordUsers\"}]}", NULL, &t));
	ck_assert_int_eq((int)num(d, "totalCount"), 2);
	cJSON_Delete(t);
	expect_only(&admin, "{\"commands\":[{\"command\":\"addPasswordUser\",\"username\":\"alice\",\"password\":\"x\"}]}",
	            "exists");
	expect_only(&admin,
	            "{\"commands\":[{\"command\":\"addPasswordUser\",\"username\":\"prometheus\",\"password\":\"x\"}]}",
	            "exists");
	/* A user name is a client id no credential may use: not a live device's. */
	expect_only(&admin, "{\"commands\":[{\"command\":\"addPasswordUser\",\"username\":\"admin-1\",\"password\":\"x\"}]}",
	            "exists");
	/* Removing the user kicks its client and stops its logins. */
	d = data_of(expect(&admin, "{\"commands\":[{\"command\":\"removePasswordUser\",\"username\":\"alice\"}]}", NULL, &t));
	ck_assert_int_eq((int)num(d, "kicked"), 1);
	cJSON_Delete(t);
	ck_assert(lost(&alice, 2000));
	ck_assert(test_broker_log_wait(&F.c.broker, "veil: auth | kick | client=alice reason=user-deleted", 5000));
	ck_assert_int_eq(login_password("alice", "wonderland"), VEIL_ERR_AUTH);
	expect_only(&admin, "{\"commands\":[{\"command\":\"removePasswordUser\",\"username\":\"alice\"}]}", "not-found");
	expect_only(&admin, "{\"commands\":[{\"command\":\"removePasswordUser\",\"username\":\"prometheus\"}]}",
	            "operator-file");
	ck_assert_int_eq(login_password(OPSFX_METRICS_USER, OPSFX_METRICS_PASSWORD), VEIL_OK);
	d = data_of(expect(&admin, "{\"commands\":[{\"command\":\"listPasswordUsers\"}]}", NULL, &t));
	ck_assert_int_eq((int)num(d, "totalCount"), 1);
	ck_assert_str_eq(opsfx_str(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(d, "users"), 0), "username"),
	                 OPSFX_METRICS_USER);
	cJSON_Delete(t);
	opsfx_close(&alice);
	opsfx_close(&admin);
}
END_TEST

START_TEST(reload_and_hand_edits)
{
	struct opsfx_session admin, dev;
	opsfx_open(&F, &admin, "admin-1", true);
	opsfx_open(&F, &dev, "dev-1", false);
	cJSON *t = NULL;
	const cJSON *d = data_of(expect(&admin, "{\"commands\":[{\"command\":\"reload\"}]}", NULL, &t));
	ck_assert_str_eq(opsfx_str(d, "auth"), "ok");
	ck_assert_str_eq(opsfx_str(d, "acl"), "ok");
	cJSON_Delete(t);
	ck_assert(test_broker_log_wait(&F.c.broker, "veil: plugin | reload | result=ok auth=ok acl=ok trigger=control", 5000));
	/* The runtime file edited by hand: the same effect as the API. */
	char path[512];
	state_file("revocations", path, sizeof(path));
	ck_assert_int_eq(test_write_file(path, "client dev-1\n", 0600), 0);
	ck_assert(lost(&dev, 3000));
	ck_assert(test_broker_log_wait(&F.c.broker, "veil: auth | kick | client=dev-1 reason=revoked-client", 5000));
	d = data_of(expect(&admin, "{\"commands\":[{\"command\":\"listRevocations\"}]}", NULL, &t));
	ck_assert_str_eq(opsfx_str(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(d, "revocations"), 0), "clientId"),
	                 "dev-1");
	cJSON_Delete(t);
	/* A broken runtime file is never rewritten from the old state: the
	 * API refuses until it is fixed, and reload says it kept the old. */
	ck_assert_int_eq(test_write_file(path, "client dev-1\nnonsense\n", 0600), 0);
	expect_only(&admin, "{\"commands\":[{\"command\":\"revokeClient\",\"clientId\":\"dev-2\"}]}", "write-failed");
	expect_only(&admin, "{\"commands\":[{\"command\":\"reload\"}]}", "reload-failed");
	ck_assert(test_file_has(path, "nonsense"));
	ck_assert_int_eq(login("dev-1"), VEIL_ERR_AUTH); /* the last good list holds */
	ck_assert_int_eq(login("dev-2"), VEIL_OK);
	opsfx_close(&dev);
	opsfx_close(&admin);
}
END_TEST

/* Every command from a credential without the role and from a password
 * login: PUBACK 0x87, no response, nothing changed. */
START_TEST(refused_without_admin_role)
{
	struct opsfx_session admin, dev, pw, victim;
	opsfx_open(&F, &admin, "admin-1", true);
	opsfx_open(&F, &dev, "dev-1", false);
	opsfx_open(&F, &victim, "dev-2", false);
	expect_only(&admin,
	            "{\"commands\":[{\"command\":\"addPasswordUser\",\"username\":\"carol\",\"password\":\"carol-pw\"}]}",
	            NULL);
	opsfx_open_password(&F, &pw, "carol", "carol-pw");
	char path[512];
	state_file("revocations", path, sizeof(path));
	struct opsfx_session *who[] = { &dev, &pw };
	for (size_t w = 0; w < 2; w++) {
		/* Nor may they read the responses. */
		ck_assert_int_eq(opsfx_subscribe(who[w], "$CONTROL/veil/v1/response"), VEIL_ERR_AUTH);
		ck_assert_int_eq(opsfx_subscribe(who[w], "$CONTROL/veil/#"), VEIL_ERR_AUTH);
		pthread_mutex_lock(&admin.sink.lock);
		size_t seen = admin.sink.n;
		pthread_mutex_unlock(&admin.sink.lock);
		for (size_t i = 0; i < N_COMMANDS; i++) {
			int reason = 0;
			ck_assert_int_eq(opsfx_send(who[w], COMMANDS[i], strlen(COMMANDS[i]), &reason), VEIL_ERR_AUTH);
			ck_assert_int_eq(reason, 0x87);
		}
		ck_assert(opsfx_no_response(&admin, seen));
		ck_assert_int_eq(test_file_count(F.c.broker.log,
		                                 w == 0 ? "acl | deny | client=dev-1 access=write topic=$CONTROL/veil/v1 "
		                                          "reason=veil-control-admin-only"
		                                        : "acl | deny | client=carol access=write topic=$CONTROL/veil/v1 "
		                                          "reason=veil-control-admin-only"),
		                 (int)N_COMMANDS);
	}
	/* Nothing changed: no revocation, no user, nobody kicked. */
	ck_assert(!test_file_has(path, "dev-2"));
	ck_assert(opsfx_connected(&victim));
	cJSON *t = NULL;
	const cJSON *d = data_of(expect(&admin, "{\"commands\":[{\"command\":\"listPasswordUsers\"}]}", NULL, &t));
	ck_assert_int_eq((int)num(d, "totalCount"), 2); /* prometheus, carol: no mallory, prometheus kept */
	cJSON_Delete(t);
	ck_assert_int_eq(login_password("mallory", "pw"), VEIL_ERR_AUTH);
	ck_assert(test_broker_log_wait(&F.c.broker, "client=mallory addr=127.0.0.1 method=password reason=unknown-user",
	                               5000));
	ck_assert_int_eq(opsfx_subscribe(&victim, "sensors/dev-2/#"), VEIL_OK);
	ck_assert(!test_broker_log_contains(&F.c.broker, "control | command | client=dev-1"));
	ck_assert(!test_broker_log_contains(&F.c.broker, "control | command | client=carol"));
	opsfx_close(&pw);
	opsfx_close(&victim);
	opsfx_close(&dev);
	opsfx_close(&admin);
}
END_TEST

START_TEST(bad_requests)
{
	static const struct {
		const char *payload;
		const char *reason;
	} CASES[] = {
		{ "not json", "not-json" },
		{ "{\"commands\":[{\"command\":\"listClients\"}", "not-json" },
		{ "[]", "bad-request" },
		{ "{}", "bad-request" },
		{ "{\"commands\":{}}", "bad-request" },
		{ "{\"commands\":[]}", "bad-request" },
		{ "{\"commands\":[5]}", "bad-request" },
		{ "{\"commands\":[{\"command\":5}]}", "bad-field" },
		{ "{\"commands\":[{}]}", "missing-field" },
		{ "{\"commands\":[{\"command\":\"selfDestruct\"}]}", "unknown-command" },
		{ "{\"commands\":[{\"command\":\"revokeClient\"}]}", "missing-field" },
		{ "{\"commands\":[{\"command\":\"revokeClient\",\"clientId\":7}]}", "bad-field" },
		{ "{\"commands\":[{\"command\":\"revokeClient\",\"clientId\":\"a/#\"}]}", "bad-field" },
		{ "{\"commands\":[{\"command\":\"revokeClient\",\"clientId\":\"\"}]}", "bad-field" },
		{ "{\"commands\":[{\"command\":\"revokeCredential\",\"credentialId\":\"0011\"}]}", "bad-field" },
		{ "{\"commands\":[{\"command\":\"revokeCredential\",\"credentialId\":\"zz112233445566778899aabbccddeeff\"}]}",
		  "bad-field" },
		{ "{\"commands\":[{\"command\":\"removeRevocation\",\"clientId\":\"a\",\"credentialId\":\"b\"}]}", "bad-field" },
		{ "{\"commands\":[{\"command\":\"removeRevocation\"}]}", "missing-field" },
		{ "{\"commands\":[{\"command\":\"addPasswordUser\",\"username\":\"a:b\",\"password\":\"p\"}]}", "bad-field" },
		{ "{\"commands\":[{\"command\":\"addPasswordUser\",\"username\":\"eve\",\"password\":\"\"}]}", "bad-field" },
		{ "{\"commands\":[{\"command\":\"addPasswordUser\",\"username\":\"eve\"}]}", "missing-field" },
		{ "{\"commands\":[{\"command\":\"listClients\",\"count\":-1}]}", "bad-field" },
		{ "{\"commands\":[{\"command\":\"listClients\",\"offset\":1.5}]}", "bad-field" },
		{ "{\"commands\":[{\"command\":\"listClients\",\"correlationData\":1}]}", "bad-field" },
	};
	struct opsfx_session admin;
	opsfx_open(&F, &admin, "admin-1", true);
	for (size_t i = 0; i < sizeof(CASES) / sizeof(CASES[0]); i++)
		expect_only(&admin, CASES[i].payload, CASES[i].reason);
	/* Too many commands, too many bytes: refused whole, nothing run. */
	size_t cap = 80 * 1024;
	char *big = malloc(cap);
	ck_assert_ptr_nonnull(big);
	size_t n = (size_t)snprintf(big, cap, "{\"commands\":[");
	for (int i = 0; i < 65; i++)
		n += (size_t)snprintf(big + n, cap - n, "%s{\"command\":\"revokeClient\",\"clientId\":\"dev-2\"}",
		                      i ? "," : "");
	snprintf(big + n, cap - n, "]}");
	expect_only(&admin, big, "too-large");
	static const char head[] = "{\"commands\":[{\"command\":\"revokeClient\",\"clientId\":\"dev-2\"}]";
	memset(big, ' ', cap - 1);
	memcpy(big, head, sizeof(head) - 1);
	big[cap - 2] = '}';
	big[cap - 1] = '\0';
	expect_only(&admin, big, "too-large");
	free(big);
	/* One bad command does not stop the next. */
	cJSON *t = opsfx_call(&admin, "{\"commands\":[{\"command\":\"nope\"},{\"command\":\"listRevocations\"}]}");
	const cJSON *arr = cJSON_GetObjectItemCaseSensitive(t, "responses");
	ck_assert_str_eq(opsfx_reason(cJSON_GetArrayItem(arr, 0)), "unknown-command");
	ck_assert_str_eq(opsfx_str(cJSON_GetArrayItem(arr, 0), "command"), "nope");
	ck_assert_ptr_null(opsfx_reason(cJSON_GetArrayItem(arr, 1)));
	cJSON_Delete(t);
	/* Nothing changed. */
	char path[512];
	state_file("revocations", path, sizeof(path));
	size_t len = 0;
	char *text = test_file_read(path, &len);
	ck_assert_ptr_null(text);
	ck_assert_int_eq(login("dev-2"), VEIL_OK);
	ck_assert_int_eq(login_password("eve", "x"), VEIL_ERR_AUTH);
	opsfx_close(&admin);
}
END_TEST

/* plugin_opt_audit_format json: every audit line also as one JSON object. */
START_TEST(json_audit_lines)
{
	opsfx_teardown(&F);
	opsfx_setup(&F, "plugin_opt_audit_format json\nplugin_opt_admin_role ops\n");
	struct opsfx_session admin;
	opsfx_open(&F, &admin, "admin-1", true); /* admin-1 has "ops" */
	expect_only(&admin, "{\"commands\":[{\"command\":\"revokeClient\",\"clientId\":\"dev-2\"}]}", NULL);
	ck_assert_int_eq(login("dev-2"), VEIL_ERR_AUTH);
	ck_assert_int_eq(login_password("nobody", "x"), VEIL_ERR_AUTH);
	/* admin-2 has veil-admin, which is not the admin role here. */
	struct opsfx_session other;
	opsfx_open(&F, &other, "admin-2", false);
	int reason = 0;
	ck_assert_int_eq(opsfx_send(&other, COMMANDS[0], strlen(COMMANDS[0]), &reason), VEIL_ERR_AUTH);
	opsfx_close(&other);
	opsfx_close(&admin);
	ck_assert(test_broker_log_wait(&F.c.broker, "\"reason\":\"veil-control-admin-only\"", 5000));
	size_t len = 0;
	char *log = test_file_read(F.c.broker.log, &len);
	ck_assert_ptr_nonnull(log);
	int text = 0, json = 0, refusals = 0;
	for (char *line = strtok(log, "\n"); line; line = strtok(NULL, "\n")) {
		if (strstr(line, ": veil: "))
			text++;
		char *brace = strstr(line, ": {\"veil\":");
		if (!brace)
			continue;
		json++;
		cJSON *o = cJSON_Parse(brace + 2);
		ck_assert_msg(o != NULL, "not JSON: %s", line);
		ck_assert(*opsfx_str(o, "veil") && *opsfx_str(o, "event") && *opsfx_str(o, "level"));
		ck_assert(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(o, "time")));
		const char *ev = opsfx_str(o, "event");
		if (!strcmp(ev, "refuse") || !strcmp(ev, "deny") || !strcmp(ev, "kick")) {
			refusals++;
			ck_assert_msg(*opsfx_str(o, "reason"), "no reason: %s", line);
		}
		cJSON_Delete(o);
	}
	free(log);
	ck_assert_int_eq(text, json);
	ck_assert_int_ge(refusals, 3); /* revoked-client, unknown-user, veil-control-admin-only */
	ck_assert(test_broker_log_contains(&F.c.broker, "\"reason\":\"revoked-client\""));
	ck_assert(test_broker_log_contains(&F.c.broker, "\"event\":\"command\",\"level\":\"notice\""));
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("plugin_control");
	TCase *tc = veil_tcase("control", 60);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, list_clients);
	tcase_add_test(tc, revoke_kick_and_undo);
	tcase_add_test(tc, password_users);
	tcase_add_test(tc, reload_and_hand_edits);
	tcase_add_test(tc, refused_without_admin_role);
	tcase_add_test(tc, bad_requests);
	tcase_add_test(tc, json_audit_lines);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return veil_check_run(suite());
}
