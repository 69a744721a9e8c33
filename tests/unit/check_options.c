/*
 * plugin/options.c: the one plugin_opt_* parser of every plugin module:
 * defaults, each kind's accepted and refused values (empty, signs, blanks,
 * out of range, not a boolean), repeated options (the last wins, or every
 * one kept for a list), other modules' options left alone, and strings and
 * lists freed.
 */
#include <check.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>

#include "veil/error.h"
#include "options.h"
#include "check_run.h"
#include "timing.h"

struct conf {
	char *path;
	bool flag, on;
	uint32_t count;
	size_t bytes;
	char **names;
};

#define OFF(f) offsetof(struct conf, f)
static const struct vp_opt defs[] = {
	{ "path", VP_OPT_STRING, OFF(path), 0, 0, 0 },
	{ "flag", VP_OPT_BOOL, OFF(flag), 0, 1, 0 },
	{ "on", VP_OPT_BOOL, OFF(on), 0, 1, 1 },
	{ "count", VP_OPT_U32, OFF(count), 1, 3600, 60 },
	{ "bytes", VP_OPT_SIZE, OFF(bytes), 0, (uint64_t)1 << 40, 4096 },
	{ "name", VP_OPT_LIST, OFF(names), 0, 0, 0 },
};
#define N (sizeof(defs) / sizeof(defs[0]))

static int parse1(struct conf *c, const char *key, const char *value)
{
	struct mosquitto_opt o = { (char *)key, (char *)value };
	vp_options__free(defs, N, c);
	memset(c, 0, sizeof(*c));
	return vp_options__parse(defs, N, c, "test", &o, 1);
}

START_TEST(defaults_and_values)
{
	struct conf c;
	memset(&c, 0, sizeof(c));
	ck_assert_int_eq(vp_options__parse(defs, N, &c, "test", NULL, 0), VEIL_OK);
	ck_assert_ptr_null(c.path);
	ck_assert(!c.flag && c.on);
	ck_assert_uint_eq(c.count, 60);
	ck_assert_uint_eq(c.bytes, 4096);
	struct mosquitto_opt o[] = {
		{ "path", "/etc/a" }, { "flag", "true" }, { "on", "false" }, { "count", "3600" },
		{ "bytes", "1099511627776" }, { "other_module", "x" }, { "path", "/etc/b" },
	};
	ck_assert_int_eq(vp_options__parse(defs, N, &c, "test", o, 7), VEIL_OK);
	ck_assert_str_eq(c.path, "/etc/b"); /* the last one wins */
	ck_assert(c.flag && !c.on);
	ck_assert_uint_eq(c.count, 3600);
	ck_assert_uint_eq(c.bytes, (size_t)1 << 40);
	ck_assert(vp_options__known(defs, N, "bytes"));
	ck_assert(!vp_options__known(defs, N, "other_module"));
	ck_assert(!vp_options__known(defs, N, NULL));
	vp_options__free(defs, N, &c);
	ck_assert_ptr_null(c.path);
}
END_TEST

/* A list keeps every value in order; none given, it stays NULL. */
START_TEST(lists)
{
	struct conf c;
	memset(&c, 0, sizeof(c));
	ck_assert_int_eq(vp_options__parse(defs, N, &c, "test", NULL, 0), VEIL_OK);
	ck_assert_ptr_null(c.names);
	struct mosquitto_opt o[] = {
		{ "name", "node-b" }, { "path", "/x" }, { "name", "node-c" }, { "name", "node b" }, { "name", "node-b" },
	};
	ck_assert_int_eq(vp_options__parse(defs, N, &c, "test", o, 5), VEIL_OK);
	ck_assert_ptr_nonnull(c.names);
	ck_assert_str_eq(c.names[0], "node-b");
	ck_assert_str_eq(c.names[1], "node-c");
	ck_assert_str_eq(c.names[2], "node b");
	ck_assert_str_eq(c.names[3], "node-b");
	ck_assert_ptr_null(c.names[4]);
	vp_options__free(defs, N, &c);
	ck_assert_ptr_null(c.names);
	ck_assert_ptr_null(c.path);
	ck_assert_int_eq(parse1(&c, "name", ""), VEIL_ERR_INVAL);
	ck_assert_int_eq(parse1(&c, "name", NULL), VEIL_ERR_INVAL);
	vp_options__free(defs, N, &c);
}
END_TEST

START_TEST(refusals)
{
	struct conf c;
	memset(&c, 0, sizeof(c));
	static const char *const bad[][2] = {
		{ "path", "" }, { "path", NULL }, { "flag", "yes" }, { "flag", "TRUE" }, { "flag", "" },
		{ "count", "0" }, { "count", "3601" }, { "count", "-1" }, { "count", "+5" }, { "count", " 5" },
		{ "count", "5 " }, { "count", "0x10" }, { "count", "1e3" }, { "count", "99999999999999999999999" },
		{ "bytes", "1099511627777" }, { "bytes", "" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(parse1(&c, bad[i][0], bad[i][1]) == VEIL_ERR_INVAL, "accepted %s=%s", bad[i][0],
		              bad[i][1] ? bad[i][1] : "(null)");
	ck_assert_int_eq(parse1(&c, "count", "1"), VEIL_OK);
	ck_assert_uint_eq(c.count, 1);
	ck_assert_int_eq(parse1(&c, "bytes", "0"), VEIL_OK);
	ck_assert_uint_eq(c.bytes, 0);
	vp_options__free(defs, N, &c);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("options");
	TCase *t = veil_tcase("parser", 2);
	tcase_add_test(t, defaults_and_values);
	tcase_add_test(t, refusals);
	tcase_add_test(t, lists);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	return veil_check_run(suite());
}
