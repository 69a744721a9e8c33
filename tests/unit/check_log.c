/*
 * Tests for plugin/log.c: an audit line as a JSON object (what
 * plugin_opt_audit_format json writes): its fixed members, every k=v field
 * as a string, quoted values with spaces, words that are not fields, field
 * values a client chose (cleaned first, so they cannot add members), and a
 * line cut short by the 512-byte limit.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <mosquitto.h>

#include "plugin_private.h"

#include "check_run.h"
#include "timing.h"

static cJSON *json_of(int level, const char *area, const char *verb, const char *fields)
{
	char *s = vp_log__json(level, area, verb, fields, 1700000000);
	ck_assert_ptr_nonnull(s);
	ck_assert_ptr_null(strchr(s, '\n'));
	cJSON *o = cJSON_Parse(s);
	ck_assert_msg(o != NULL, "not JSON: %s", s);
	cJSON_free(s);
	return o;
}

static const char *str(const cJSON *o, const char *name)
{
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, name);
	ck_assert_msg(cJSON_IsString(j), "%s is not a string", name);
	return j->valuestring;
}

START_TEST(members)
{
	cJSON *o = json_of(MOSQ_LOG_NOTICE, "auth", "refuse",
	                   "client=12345 addr=10.0.0.7 method=credential reason=expired-credential");
	ck_assert_str_eq(str(o, "veil"), "auth");
	ck_assert_str_eq(str(o, "event"), "refuse");
	ck_assert_str_eq(str(o, "level"), "notice");
	ck_assert_int_eq(cJSON_GetObjectItemCaseSensitive(o, "time")->valueint, 1700000000);
	ck_assert_str_eq(str(o, "client"), "12345"); /* digits stay a string */
	ck_assert_str_eq(str(o, "addr"), "10.0.0.7");
	ck_assert_str_eq(str(o, "reason"), "expired-credential");
	ck_assert_ptr_null(cJSON_GetObjectItemCaseSensitive(o, "text"));
	cJSON_Delete(o);

	o = json_of(MOSQ_LOG_ERR, "auth", "reload-failed",
	            "file=revocation error=\"/etc/veil/revoked:7: expected 'credential <hex id>'\" action=kept-old");
	ck_assert_str_eq(str(o, "level"), "error");
	ck_assert_str_eq(str(o, "error"), "/etc/veil/revoked:7: expected 'credential <hex id>'");
	ck_assert_str_eq(str(o, "action"), "kept-old");
	cJSON_Delete(o);

	o = json_of(MOSQ_LOG_ERR, "auth", "state-write-failed",
	            "file=token-nonces errors=1 (a restart could accept these tokens again)");
	ck_assert_str_eq(str(o, "errors"), "1");
	ck_assert_str_eq(str(o, "text"), "(a restart could accept these tokens again)");
	cJSON_Delete(o);

	o = json_of(MOSQ_LOG_WARNING, "x", "y", "");
	ck_assert_str_eq(str(o, "level"), "warning");
	cJSON_Delete(o);
	o = json_of(MOSQ_LOG_INFO, "x", "y", "=odd a= \"quoted\" k=\"unterminated value");
	ck_assert_str_eq(str(o, "level"), "info");
	ck_assert_str_eq(str(o, "a"), "");
	ck_assert_str_eq(str(o, "k"), "unterminated value");
	ck_assert_str_eq(str(o, "text"), "=odd \"quoted\"");
	cJSON_Delete(o);
}
END_TEST

/* A client id passes vp_log__clean before it is a field: no '=', no space,
 * no quote to end a value, so it cannot add a member of its own. */
START_TEST(client_values_cleaned)
{
	char id[80], line[256];
	vp_log__clean("evil reason=fake \"x\" level=error", id, sizeof(id));
	snprintf(line, sizeof(line), "client=%s reason=anonymous", id);
	cJSON *o = json_of(MOSQ_LOG_NOTICE, "auth", "refuse", line);
	ck_assert_str_eq(str(o, "reason"), "anonymous");
	ck_assert_str_eq(str(o, "level"), "notice");
	ck_assert_int_eq(cJSON_GetArraySize(o), 6); /* veil event level time client reason */
	cJSON_Delete(o);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("log");
	TCase *tc = veil_tcase("log", 2);
	tcase_add_test(tc, members);
	tcase_add_test(tc, client_values_cleaned);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return veil_check_run(suite());
}
