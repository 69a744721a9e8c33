/*
 * Tests for plugin/control_parse.c: the admin API's requests (every command
 * with its fields, case-insensitive names as dynsec), every way a request or
 * a command is refused (truncated, oversized, wrong types, names the
 * plugin's files would refuse), passwords wiped from every block cJSON
 * frees, and the reply builders.
 */
#define _GNU_SOURCE /* memmem */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "veil/veil.h"
#include "control.h"

#include "check_run.h"
#include "timing.h"

static struct vp_control_req parse(const char *s)
{
	struct vp_control_req r;
	ck_assert_int_eq(vp_control__parse(s, strlen(s), &r), VEIL_OK);
	return r;
}

/* One command, valid. */
static struct vp_control_req one(const char *s, enum vp_cmd_kind kind)
{
	struct vp_control_req r = parse(s);
	ck_assert_msg(!r.error, "%s: %s", s, r.error);
	ck_assert_uint_eq(r.n, 1);
	ck_assert_msg(!r.cmds[0].error, "%s: %s", s, r.cmds[0].error);
	ck_assert_int_eq(r.cmds[0].kind, kind);
	return r;
}

START_TEST(commands)
{
	struct vp_control_req r = one("{\"commands\":[{\"command\":\"listClients\",\"correlationData\":\"x1\"}]}",
	                              VP_CMD_LIST_CLIENTS);
	ck_assert_str_eq(r.cmds[0].name, "listClients");
	ck_assert_str_eq(r.cmds[0].correlation, "x1");
	ck_assert_uint_eq(r.cmds[0].offset, 0);
	ck_assert_uint_eq(r.cmds[0].count, 0);
	vp_control__req_free(&r);
	r = one("{\"commands\":[{\"command\":\"LISTCLIENTS\",\"offset\":5,\"count\":10}]}", VP_CMD_LIST_CLIENTS);
	ck_assert_str_eq(r.cmds[0].name, "listClients");
	ck_assert_ptr_null(r.cmds[0].correlation);
	ck_assert_uint_eq(r.cmds[0].offset, 5);
	ck_assert_uint_eq(r.cmds[0].count, 10);
	vp_control__req_free(&r);
	/* White space after the object, and a NUL ending the payload, are fine. */
	r = one("{\"commands\":[{\"command\":\"reload\"}]} \r\n", VP_CMD_RELOAD);
	vp_control__req_free(&r);
	static const char nul_ended[] = "{\"commands\":[{\"command\":\"reload\"}]}";
	ck_assert_int_eq(vp_control__parse(nul_ended, sizeof(nul_ended), &r), VEIL_OK);
	ck_assert_msg(!r.error, "NUL-ended: %s", r.error);
	ck_assert_uint_eq(r.n, 1);
	vp_control__req_free(&r);
	r = one("{\"commands\":[{\"command\":\"kickClient\",\"clientid\":\"dev-1\"}]}", VP_CMD_KICK_CLIENT);
	ck_assert_str_eq(r.cmds[0].client_id, "dev-1");
	vp_control__req_free(&r);
	r = one("{\"commands\":[{\"command\":\"revokeClient\",\"clientId\":\"alice\"}]}", VP_CMD_REVOKE_CLIENT);
	ck_assert_str_eq(r.cmds[0].client_id, "alice");
	vp_control__req_free(&r);
	r = one("{\"commands\":[{\"command\":\"revokeCredential\",\"credentialId\":\"00112233445566778899AABBCCDDEEFF\"}]}",
	        VP_CMD_REVOKE_CREDENTIAL);
	ck_assert(r.cmds[0].has_credential);
	ck_assert_int_eq(r.cmds[0].credential_id[0], 0x00);
	ck_assert_int_eq(r.cmds[0].credential_id[15], 0xff);
	vp_control__req_free(&r);
	r = one("{\"commands\":[{\"command\":\"removeRevocation\",\"credentialId\":\"00112233445566778899aabbccddeeff\"}]}",
	        VP_CMD_REMOVE_REVOCATION);
	ck_assert(r.cmds[0].has_credential);
	ck_assert_ptr_null(r.cmds[0].client_id);
	vp_control__req_free(&r);
	r = one("{\"commands\":[{\"command\":\"removeRevocation\",\"clientId\":\"x\"}]}", VP_CMD_REMOVE_REVOCATION);
	ck_assert_str_eq(r.cmds[0].client_id, "x");
	ck_assert(!r.cmds[0].has_credential);
	vp_control__req_free(&r);
	r = one("{\"commands\":[{\"command\":\"listRevocations\"}]}", VP_CMD_LIST_REVOCATIONS);
	vp_control__req_free(&r);
	r = one("{\"commands\":[{\"command\":\"listPasswordUsers\"}]}", VP_CMD_LIST_PASSWORD_USERS);
	vp_control__req_free(&r);
	r = one("{\"commands\":[{\"command\":\"addPasswordUser\",\"username\":\"bob\",\"password\":\"b ld\\u00e9r\"}]}",
	        VP_CMD_ADD_PASSWORD_USER);
	ck_assert_str_eq(r.cmds[0].username, "bob");
	ck_assert_str_eq(r.cmds[0].password, "b ld\xc3\xa9r");
	ck_assert_uint_eq(r.cmds[0].password_len, 7);
	vp_control__req_free(&r);
	r = one("{\"commands\":[{\"command\":\"removePasswordUser\",\"username\":\"bob\"}]}", VP_CMD_REMOVE_PASSWORD_USER);
	vp_control__req_free(&r);
	r = one("{\"commands\":[{\"command\":\"reload\",\"ignored\":[1,2]}]}", VP_CMD_RELOAD);
	vp_control__req_free(&r);
	r = one("{\"commands\":[{\"command\":\"getCounters\"}]}", VP_CMD_GET_COUNTERS);
	vp_control__req_free(&r);
	/* Several, in order; a bad one does not spoil the others. */
	r = parse("{\"commands\":[{\"command\":\"reload\"},{\"command\":\"nope\"},{\"command\":\"getCounters\"}]}");
	ck_assert_uint_eq(r.n, 3);
	ck_assert_ptr_null(r.cmds[0].error);
	ck_assert_str_eq(r.cmds[1].reason, "unknown-command");
	ck_assert_str_eq(r.cmds[1].given, "nope");
	ck_assert_int_eq(r.cmds[1].kind, VP_CMD_UNKNOWN);
	ck_assert_int_eq(r.cmds[2].kind, VP_CMD_GET_COUNTERS);
	vp_control__req_free(&r);
	ck_assert_ptr_null(r.tree);
	ck_assert_uint_eq(r.n, 0);
}
END_TEST

START_TEST(whole_request_refused)
{
	static const struct {
		const char *s;
		const char *reason;
	} CASES[] = {
		{ "x", "not-json" },
		{ "{\"commands\":[", "not-json" },
		{ "{\"commands\":[]} garbage", "not-json" },
		{ "{\"commands\":[]}{}", "not-json" },
		{ "\"commands\"", "bad-request" },
		{ "[{\"command\":\"reload\"}]", "bad-request" },
		{ "{}", "bad-request" },
		{ "{\"commands\":null}", "bad-request" },
		{ "{\"commands\":{\"command\":\"reload\"}}", "bad-request" },
		{ "{\"commands\":[]}", "bad-request" },
	};
	for (size_t i = 0; i < sizeof(CASES) / sizeof(CASES[0]); i++) {
		struct vp_control_req r = parse(CASES[i].s);
		ck_assert_msg(r.error && !strcmp(r.reason, CASES[i].reason), "%s: %s", CASES[i].s, r.reason);
		ck_assert_uint_eq(r.n, 0);
		vp_control__req_free(&r);
	}
	struct vp_control_req r;
	ck_assert_int_eq(vp_control__parse("", 0, &r), VEIL_OK);
	ck_assert_str_eq(r.reason, "bad-request");
	vp_control__req_free(&r);
	ck_assert_int_eq(vp_control__parse(NULL, 10, &r), VEIL_OK);
	ck_assert_str_eq(r.reason, "bad-request");
	vp_control__req_free(&r);
	/* Every truncation of a valid request is refused whole, never half run. */
	const char *full = "{\"commands\":[{\"command\":\"revokeClient\",\"clientId\":\"dev-1\"}]}";
	for (size_t n = 1; n < strlen(full); n++) {
		ck_assert_int_eq(vp_control__parse(full, n, &r), VEIL_OK);
		ck_assert_msg(r.error != NULL, "prefix of %zu bytes accepted", n);
		vp_control__req_free(&r);
	}
	/* The length counts, not a NUL: bytes past it are never read. */
	ck_assert_int_eq(vp_control__parse("{\"commands\":[{\"command\":\"reload\"}]}GARBAGE", 35, &r), VEIL_OK);
	ck_assert_ptr_null(r.error);
	vp_control__req_free(&r);
}
END_TEST

START_TEST(oversized)
{
	size_t cap = VP_CONTROL_MAX_PAYLOAD + 100;
	char *big = malloc(cap);
	ck_assert_ptr_nonnull(big);
	size_t n = (size_t)snprintf(big, cap, "{\"commands\":[");
	for (unsigned i = 0; i <= VP_CONTROL_MAX_COMMANDS; i++)
		n += (size_t)snprintf(big + n, cap - n, "%s{\"command\":\"reload\"}", i ? "," : "");
	n += (size_t)snprintf(big + n, cap - n, "]}");
	struct vp_control_req r;
	ck_assert_int_eq(vp_control__parse(big, n, &r), VEIL_OK);
	ck_assert_str_eq(r.reason, "too-large");
	vp_control__req_free(&r);
	/* Exactly the maximum number of commands is fine. */
	n = (size_t)snprintf(big, cap, "{\"commands\":[");
	for (unsigned i = 0; i < VP_CONTROL_MAX_COMMANDS; i++)
		n += (size_t)snprintf(big + n, cap - n, "%s{\"command\":\"reload\"}", i ? "," : "");
	n += (size_t)snprintf(big + n, cap - n, "]}");
	ck_assert_int_eq(vp_control__parse(big, n, &r), VEIL_OK);
	ck_assert_ptr_null(r.error);
	ck_assert_uint_eq(r.n, VP_CONTROL_MAX_COMMANDS);
	vp_control__req_free(&r);
	/* Past the byte limit nothing is parsed, whatever it holds. */
	memset(big, ' ', cap);
	memcpy(big, "{\"commands\":[{\"command\":\"reload\"}]}", 35);
	ck_assert_int_eq(vp_control__parse(big, VP_CONTROL_MAX_PAYLOAD, &r), VEIL_OK);
	ck_assert_ptr_null(r.error);
	vp_control__req_free(&r);
	ck_assert_int_eq(vp_control__parse(big, VP_CONTROL_MAX_PAYLOAD + 1, &r), VEIL_OK);
	ck_assert_str_eq(r.reason, "too-large");
	ck_assert_ptr_null(r.tree);
	vp_control__req_free(&r);
	free(big);
}
END_TEST

START_TEST(commands_refused)
{
	static const struct {
		const char *cmd;
		const char *reason;
	} CASES[] = {
		{ "5", "bad-request" },
		{ "\"reload\"", "bad-request" },
		{ "{}", "missing-field" },
		{ "{\"command\":null}", "bad-field" },
		{ "{\"command\":\"reloadx\"}", "unknown-command" },
		{ "{\"command\":\"\"}", "unknown-command" },
		{ "{\"command\":\"kickClient\"}", "missing-field" },
		{ "{\"command\":\"kickClient\",\"clientId\":\"\"}", "bad-field" },
		{ "{\"command\":\"kickClient\",\"clientId\":\"a+b\"}", "bad-field" },
		{ "{\"command\":\"kickClient\",\"clientId\":\" a\"}", "bad-field" },
		{ "{\"command\":\"kickClient\",\"clientId\":\"a\\u0001\"}", "bad-field" },
		{ "{\"command\":\"revokeClient\",\"clientId\":[\"a\"]}", "bad-field" },
		{ "{\"command\":\"revokeCredential\"}", "missing-field" },
		{ "{\"command\":\"revokeCredential\",\"credentialId\":\"00112233445566778899aabbccddeef\"}", "bad-field" },
		{ "{\"command\":\"revokeCredential\",\"credentialId\":\"00112233445566778899aabbccddeeff0\"}", "bad-field" },
		{ "{\"command\":\"revokeCredential\",\"credentialId\":\"0011223344556677 899aabbccddeeff\"}", "bad-field" },
		{ "{\"command\":\"removeRevocation\"}", "missing-field" },
		{ "{\"command\":\"removeRevocation\",\"clientId\":\"a\",\"credentialId\":\"b\"}", "bad-field" },
		{ "{\"command\":\"addPasswordUser\",\"password\":\"p\"}", "missing-field" },
		{ "{\"command\":\"addPasswordUser\",\"username\":\"a:b\",\"password\":\"p\"}", "bad-field" },
		{ "{\"command\":\"addPasswordUser\",\"username\":\"a\",\"password\":\"\"}", "bad-field" },
		{ "{\"command\":\"addPasswordUser\",\"username\":\"a\",\"password\":5}", "bad-field" },
		{ "{\"command\":\"removePasswordUser\",\"username\":\"#\"}", "bad-field" },
		{ "{\"command\":\"listClients\",\"offset\":-1}", "bad-field" },
		{ "{\"command\":\"listClients\",\"count\":\"3\"}", "bad-field" },
		{ "{\"command\":\"listClients\",\"count\":1e12}", "bad-field" },
		{ "{\"command\":\"listClients\",\"count\":0.5}", "bad-field" },
		{ "{\"command\":\"reload\",\"correlationData\":{}}", "bad-field" },
	};
	char buf[512];
	for (size_t i = 0; i < sizeof(CASES) / sizeof(CASES[0]); i++) {
		snprintf(buf, sizeof(buf), "{\"commands\":[%s]}", CASES[i].cmd);
		struct vp_control_req r = parse(buf);
		ck_assert_msg(!r.error, "%s: whole request refused (%s)", buf, r.error);
		ck_assert_uint_eq(r.n, 1);
		ck_assert_msg(r.cmds[0].error && !strcmp(r.cmds[0].reason, CASES[i].reason), "%s: got %s", buf,
		              r.cmds[0].reason ? r.cmds[0].reason : "success");
		vp_control__req_free(&r);
	}
	/* A password of 1024 bytes is taken, 1025 is not; a user name of 128. */
	char pw[VP_CONTROL_PASSWORD_MAX + 2];
	memset(pw, 'p', sizeof(pw));
	pw[VP_CONTROL_PASSWORD_MAX] = '\0';
	char *req = malloc(4096);
	ck_assert_ptr_nonnull(req);
	snprintf(req, 4096, "{\"commands\":[{\"command\":\"addPasswordUser\",\"username\":\"u\",\"password\":\"%s\"}]}", pw);
	struct vp_control_req r = one(req, VP_CMD_ADD_PASSWORD_USER);
	vp_control__req_free(&r);
	pw[VP_CONTROL_PASSWORD_MAX] = 'p';
	pw[VP_CONTROL_PASSWORD_MAX + 1] = '\0';
	snprintf(req, 4096, "{\"commands\":[{\"command\":\"addPasswordUser\",\"username\":\"u\",\"password\":\"%s\"}]}", pw);
	r = parse(req);
	ck_assert_str_eq(r.cmds[0].reason, "bad-field");
	vp_control__req_free(&r);
	free(req);
}
END_TEST

/* Every block cJSON frees is checked for the password before it goes. */
static const char *secret;
static int leaks;

static void *hook_malloc(size_t n)
{
	size_t *p = malloc(n + sizeof(size_t));
	if (!p)
		return NULL;
	*p = n;
	return p + 1;
}

static void hook_free(void *q)
{
	if (!q)
		return;
	size_t *p = (size_t *)q - 1;
	if (secret && memmem(q, *p, secret, strlen(secret)))
		leaks++;
	free(p);
}

START_TEST(passwords_wiped)
{
	cJSON_Hooks hooks = { hook_malloc, hook_free };
	cJSON_InitHooks(&hooks);
	secret = "correct-horse-battery";
	leaks = 0;
	/* Accepted, refused (another field is bad), and in a refused request. */
	static const char *const REQS[] = {
		"{\"commands\":[{\"command\":\"addPasswordUser\",\"username\":\"u\",\"password\":\"correct-horse-battery\"}]}",
		"{\"commands\":[{\"command\":\"addPasswordUser\",\"username\":\"u:x\",\"password\":\"correct-horse-battery\"}]}",
		"{\"commands\":[{\"command\":\"reload\",\"nested\":{\"password\":\"correct-horse-battery\"}}]}",
	};
	for (size_t i = 0; i < sizeof(REQS) / sizeof(REQS[0]); i++) {
		struct vp_control_req r = parse(REQS[i]);
		vp_control__req_free(&r);
	}
	cJSON_InitHooks(NULL);
	secret = NULL;
	ck_assert_int_eq(leaks, 0);
}
END_TEST

START_TEST(replies)
{
	cJSON *arr = NULL;
	cJSON *reply = vp_control__reply_new(&arr);
	ck_assert_ptr_nonnull(reply);
	cJSON *ok = vp_control__reply_add(arr, "listClients", "c-1", NULL, NULL);
	ck_assert_ptr_nonnull(ok);
	ck_assert_ptr_nonnull(cJSON_AddObjectToObject(ok, "data"));
	ck_assert_ptr_nonnull(vp_control__reply_add(arr, "bogus\"x", NULL, "unknown command", "unknown-command"));
	char *s = cJSON_PrintUnformatted(reply);
	ck_assert_str_eq(s, "{\"responses\":[{\"command\":\"listClients\",\"correlationData\":\"c-1\",\"data\":{}},"
	                    "{\"command\":\"bogus\\\"x\",\"error\":\"unknown command\",\"reason\":\"unknown-command\"}]}");
	cJSON_free(s);
	cJSON_Delete(reply);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("control_parse");
	TCase *tc = veil_tcase("control_parse", 5);
	tcase_add_test(tc, commands);
	tcase_add_test(tc, whole_request_refused);
	tcase_add_test(tc, oversized);
	tcase_add_test(tc, commands_refused);
	tcase_add_test(tc, passwords_wiped);
	tcase_add_test(tc, replies);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return veil_check_run(suite());
}
