/*
 * Tests for keyd/config.c (and keyd/filter.c, whose overlap rule refuses
 * overlapping scopes): a good file with defaults and relative paths, the
 * trailing-comment rule with the scope filter '#', and every refusal with
 * its "path:line:" checked; truncated, binary and oversized input.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "veil/error.h"
#include "filter.h"
#include "keyd.h"

#include "check_run.h"
#include "files.h"
#include "timing.h"

#define BASE                                                                                                \
	"broker tcp://127.0.0.1:1883\n"                                                                      \
	"client_id veil-keyd\n"                                                                              \
	"identity keyd.key\n"                                                                                \
	"credential keyd.cred\n"                                                                             \
	"authorities /etc/veil/authority.pub\n"                                                              \
	"acl_file /etc/mosquitto/veil.acl\n"                                                                 \
	"database keyd.db\n"                                                                                 \
	"storage_key storage.key\n"

static int parse(const char *text, struct kd_config *c, char *err, size_t errlen)
{
	return kd_config__parse("/etc/veil/keyd.conf", text, strlen(text), c, err, errlen);
}

/* text must be refused with exactly this "path:line: reason" prefix. */
static void refused(const char *text, const char *want)
{
	struct kd_config c;
	char err[512] = "";
	int rc = parse(text, &c, err, sizeof(err));
	ck_assert_msg(rc != VEIL_OK, "accepted: %s", text);
	ck_assert_msg(strstr(err, want) != NULL, "error '%s' lacks '%s'", err, want);
	ck_assert_ptr_null(c.scopes);
	ck_assert_ptr_null(c.path);
}

START_TEST(good_file)
{
	struct kd_config c;
	char err[512] = "";
	const char *text = BASE "token_window 30   # seconds\n"
	                        "\n# a comment line\n"
	                        "scope factory/%c/# period 3600 lead 300 grace 600 depth 3\n"
	                        "scope # period 86400 lead 600 grace 600   # everything else\n";
	/* '#' as a scope filter overlaps factory/%c/#: refused. */
	ck_assert_int_ne(parse(text, &c, err, sizeof(err)), VEIL_OK);
	ck_assert_ptr_nonnull(strstr(err, "/etc/veil/keyd.conf:13: scope '#' overlaps scope 'factory/%c/#' (line 12)"));
	text = BASE "token_window 30   # seconds\n"
	            "scope factory/%c/# period 3600 lead 300 grace 600 depth 3\n"
	            "scope status/# period 86400 grace 600 lead 600   # any order\n"
	            "scope alarms/# period 600 lead 120 grace 120 depth 0\n";
	ck_assert_int_eq(parse(text, &c, err, sizeof(err)), VEIL_OK);
	ck_assert_str_eq(c.broker, "tcp://127.0.0.1:1883");
	ck_assert_str_eq(c.client_id, "veil-keyd");
	ck_assert_str_eq(c.identity, "/etc/veil/keyd.key");         /* relative to the config */
	ck_assert_str_eq(c.authorities, "/etc/veil/authority.pub");
	ck_assert_ptr_null(c.revocation_file);
	ck_assert_ptr_null(c.audience); /* no deployment name: version 1 tokens */
	ck_assert_uint_eq(c.token_window, 30);
	ck_assert_uint_eq(c.reissue_interval, KD_DEFAULT_REISSUE);
	ck_assert_uint_eq(c.rekey_grace, KD_DEFAULT_REKEY_GRACE);
	ck_assert_uint_eq(c.request_rate, KD_DEFAULT_REQUEST_RATE);
	ck_assert_uint_eq(c.n_scopes, 3);
	ck_assert_str_eq(c.scopes[0].filter, "factory/%c/#");
	ck_assert(c.scopes[0].per_device);
	ck_assert_uint_eq(c.scopes[0].period, 3600);
	ck_assert_uint_eq(c.scopes[0].lead, 300);
	ck_assert_uint_eq(c.scopes[0].grace, 600);
	ck_assert_uint_eq(c.scopes[0].depth, 3);
	ck_assert_uint_eq(c.scopes[0].line, 10);
	ck_assert(!c.scopes[1].per_device);
	ck_assert_uint_eq(c.scopes[1].depth, KD_DEFAULT_DEPTH);
	ck_assert_uint_eq(KD_DEFAULT_DEPTH, 2); /* issue 13: two periods beyond the lead */
	ck_assert_uint_eq(c.scopes[2].depth, 0); /* just the lead */
	ck_assert_ptr_eq(kd_config__scope(&c, "status/#"), &c.scopes[1]);
	ck_assert_ptr_null(kd_config__scope(&c, "status"));
	kd_config__free(&c);
	kd_config__free(&c); /* twice is harmless */
}
END_TEST

/* The deployment's name, as the brokers' plugin_opt_audience. */
START_TEST(audience)
{
	struct kd_config c;
	char err[512] = "";
	ck_assert_int_eq(parse(BASE "audience plant-a\nscope a/# period 600 lead 120 grace 120\n", &c, err, sizeof(err)),
	                 VEIL_OK);
	ck_assert_str_eq(c.audience, "plant-a");
	kd_config__free(&c);
	ck_assert_ptr_null(c.audience);
}
END_TEST

START_TEST(scope_filter_hash)
{
	/* The scope's second field is a topic filter: '#' is the filter, the
	 * second '#' starts the comment. */
	struct kd_config c;
	char err[512] = "";
	ck_assert_int_eq(parse(BASE "scope # period 600 lead 120 grace 120 # all\n", &c, err, sizeof(err)), VEIL_OK);
	ck_assert_uint_eq(c.n_scopes, 1);
	ck_assert_str_eq(c.scopes[0].filter, "#");
	kd_config__free(&c);
	/* Anywhere else '#' opens a comment: the value is gone. */
	refused(BASE "token_window # 30\n", "keyd.conf:9: missing value for 'token_window'");
}
END_TEST

START_TEST(refusals)
{
	refused(BASE "nonsense 1\n" "scope a/# period 600 lead 120 grace 120\n", "keyd.conf:9: unknown key 'nonsense'");
	refused(BASE "broker tcp://x:1\n", "keyd.conf:9: duplicate key 'broker' (first set on line 1)");
	refused(BASE "token_window 0\n", "keyd.conf:9: 'token_window' must be a number from 1 to 3600");
	refused(BASE "token_window 12x\n", "keyd.conf:9: 'token_window' must be a number");
	refused(BASE "token_window 99999999999999999999\n", "keyd.conf:9: 'token_window' must be a number");
	refused(BASE "identity a b\n", "keyd.conf:9: duplicate key 'identity'");
	refused(BASE "revocation_file a b\n", "keyd.conf:9: 'revocation_file' takes one value");
	refused("broker http://x\n", "keyd.conf:1: broker 'http://x' is not tcp://");
	refused("client_id a/b\n", "keyd.conf:1: client_id contains '/'");
	refused(BASE "audience plant/a\n", "keyd.conf:9: audience contains '/'");
	refused(BASE "audience plant-a\naudience plant-b\n", "keyd.conf:10: duplicate key 'audience' (first set on line 9)");
	refused(BASE "scope\n", "keyd.conf:9: scope needs a topic filter");
	refused(BASE "scope a/+b period 600 lead 120 grace 120\n", "keyd.conf:9: scope 'a/+b' is not a valid topic filter");
	refused(BASE "scope $veil/# period 600 lead 120 grace 120\n", "keyd.conf:9: scope '$veil/#' names a '$' topic");
	refused(BASE "scope a/%u/# period 600 lead 120 grace 120\n", "keyd.conf:9: scope 'a/%u/#' uses %u");
	refused(BASE "scope a/x%c/# period 600 lead 120 grace 120\n", "uses %c inside a level");
	refused(BASE "scope a/# period 600 lead 120\n", "keyd.conf:9: scope 'a/#' needs 'grace <seconds>'");
	refused(BASE "scope a/# period 600 lead 120 grace 120 color red\n", "keyd.conf:9: unknown scope option 'color'");
	refused(BASE "scope a/# period 600 lead 120 grace 120 lead 130\n", "scope option 'lead' given twice");
	refused(BASE "scope a/# period 600 lead 120 grace\n", "scope option 'grace' needs a value");
	refused(BASE "scope a/# period 0 lead 120 grace 120\n", "scope period '0' is not a number of seconds");
	refused(BASE "scope a/# period 600 lead 120 grace 120 depth 17\n",
	        "keyd.conf:9: scope depth '17' is not a number from 0 to 16");
	refused(BASE "scope a/# period 600 lead 120 grace 120 depth -1\n", "scope depth '-1' is not a number from 0 to 16");
	refused(BASE "scope a/# period 2700000 lead 120 grace 120 depth 12\n",
	        "keyd.conf:9: scope 'a/#': lead + depth x period is more than a year");
	struct kd_config year;
	char yerr[512] = "";
	ck_assert_msg(parse(BASE "scope a/# period 2400000 lead 120 grace 120 depth 13\n", &year, yerr, sizeof(yerr)) ==
	                      VEIL_OK,
	              "%s", yerr); /* just under a year ahead */
	kd_config__free(&year);
	refused(BASE "scope a/# period 100 lead 120 grace 120\n", "keyd.conf:9: scope 'a/#': lead is longer than the period");
	refused(BASE "scope a/# period 600 lead 119 grace 120\n",
	        "keyd.conf:9: scope 'a/#': lead (119) and grace (120) must be at least twice token_window (60)");
	refused(BASE "scope a/# period 600 lead 120 grace 100\n", "must be at least twice token_window");
	refused(BASE "scope a/# period 600 lead 120 grace 120\nscope a/# period 600 lead 120 grace 120\n",
	        "keyd.conf:10: scope 'a/#' already defined at line 9");
	refused(BASE "scope a/+/x period 600 lead 120 grace 120\nscope a/b/# period 600 lead 120 grace 120\n",
	        "keyd.conf:10: scope 'a/b/#' overlaps scope 'a/+/x' (line 9)");
	refused(BASE, "keyd.conf: no scope");
	refused("broker tcp://x:1\nscope a/# period 600 lead 120 grace 120\n", "keyd.conf: missing required key 'client_id'");
}
END_TEST

START_TEST(binary_and_oversized)
{
	char text[8192];
	snprintf(text, sizeof(text), BASE "scope a/# period 600 lead 120 grace 120\n");
	size_t n = strlen(text);
	text[20] = '\0'; /* a NUL inside line 1 */
	struct kd_config c;
	char err[512] = "";
	ck_assert_int_ne(kd_config__parse("k.conf", text, n, &c, err, sizeof(err)), VEIL_OK);
	ck_assert_ptr_nonnull(strstr(err, "k.conf:1: NUL byte in the file"));
	/* A line over 4096 bytes. */
	char *big = malloc(6000);
	ck_assert_ptr_nonnull(big);
	memset(big, 'a', 5999);
	memcpy(big, "database ", 9);
	big[5999] = '\0';
	ck_assert_int_ne(kd_config__parse("k.conf", big, strlen(big), &c, err, sizeof(err)), VEIL_OK);
	ck_assert_ptr_nonnull(strstr(err, "k.conf:1: line longer than 4096 bytes"));
	free(big);
	/* Truncated: every prefix of a good file either parses or is refused
	 * with a file:line error, never crashes. */
	snprintf(text, sizeof(text), BASE "scope a/# period 600 lead 120 grace 120 depth 2\n");
	n = strlen(text);
	for (size_t k = 0; k < n; k++) {
		err[0] = '\0';
		if (kd_config__parse("k.conf", text, k, &c, err, sizeof(err)) == VEIL_OK)
			kd_config__free(&c);
		else
			ck_assert_msg(!strncmp(err, "k.conf", 6), "prefix %zu: '%s'", k, err);
	}
	ck_assert_int_eq(kd_config__parse("k.conf", text, n, &c, err, sizeof(err)), VEIL_OK);
	kd_config__free(&c);
}
END_TEST

START_TEST(load_file)
{
	char dir[256], path[300];
	ck_assert_int_eq(test_mkdtemp(dir, sizeof(dir)), 0);
	snprintf(path, sizeof(path), "%s/keyd.conf", dir);
	ck_assert_int_eq(test_write_file(path, BASE "scope a/# period 600 lead 120 grace 120\n", 0644), 0);
	struct kd_config c;
	char err[512] = "", want[400];
	ck_assert_int_eq(kd_config__load(path, &c, err, sizeof(err)), VEIL_OK);
	snprintf(want, sizeof(want), "%s/keyd.db", dir);
	ck_assert_str_eq(c.database, want);
	kd_config__free(&c);
	snprintf(want, sizeof(want), "%s/none.conf", dir);
	ck_assert_int_eq(kd_config__load(want, &c, err, sizeof(err)), VEIL_ERR_IO);
	ck_assert_int_eq(kd_config__load(NULL, &c, err, sizeof(err)), VEIL_ERR_INVAL);
	ck_assert_int_eq(test_rmtree(dir), 0);
}
END_TEST

START_TEST(filters)
{
	/* Overlap, as MQTT matching: some topic matches both. */
	ck_assert(kd_filter__overlap("a/#", "a", false));
	ck_assert(kd_filter__overlap("a", "a/#", false));
	ck_assert(!kd_filter__overlap("a/+", "a", false));
	ck_assert(kd_filter__overlap("a/+", "a/#", false));
	ck_assert(kd_filter__overlap("+/b", "a/+", false));
	ck_assert(!kd_filter__overlap("a/b", "a/c", false));
	ck_assert(!kd_filter__overlap("a/b/c", "a/b", false));
	ck_assert(kd_filter__overlap("#", "x/y/z", false));
	ck_assert(!kd_filter__overlap("#", "$SYS/x", false));
	ck_assert(!kd_filter__overlap("+/x", "$SYS/x", false));
	ck_assert(kd_filter__overlap("$SYS/#", "$SYS/x", false));
	ck_assert(kd_filter__overlap("a/+/x", "a/$y/x", false)); /* '$' matters at the first level only */
	ck_assert(!kd_filter__overlap("f/%c/x", "f/s1/y", true));
	ck_assert(kd_filter__overlap("f/%c/#", "f/s1/y", true));
	ck_assert(!kd_filter__overlap("f/%c/#", "f/s1/y", false)); /* literal "%c" level */
	ck_assert(kd_filter__has_subst("f/%c/#"));
	ck_assert(!kd_filter__has_subst("f/x%c/#"));
	char out[64];
	ck_assert(kd_filter__subst("f/%c/#", "s1", out, sizeof(out)));
	ck_assert_str_eq(out, "f/s1/#");
	ck_assert(kd_filter__subst("%c", "s1", out, sizeof(out)));
	ck_assert_str_eq(out, "s1");
	ck_assert(kd_filter__subst("a/b", NULL, out, sizeof(out)));
	ck_assert_str_eq(out, "a/b");
	ck_assert(!kd_filter__subst("f/%c", NULL, out, sizeof(out)));
	ck_assert(!kd_filter__subst("f/%c", "0123456789", out, 8)); /* would not fit */
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("keyd_config");
	TCase *tc = veil_tcase("keyd_config", 5);
	tcase_add_test(tc, good_file);
	tcase_add_test(tc, scope_filter_hash);
	tcase_add_test(tc, audience);
	tcase_add_test(tc, refusals);
	tcase_add_test(tc, binary_and_oversized);
	tcase_add_test(tc, load_file);
	tcase_add_test(tc, filters);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return veil_check_run(suite());
}
