/*
 * plugin/auth_names.c: which client ids and usernames get past the first
 * check: UTF-8, no controls, no wildcards, length limits.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "veil/identity.h"
#include "auth_names.h"
#include "check_run.h"
#include "timing.h"

START_TEST(test_valid)
{
	const char *ok[] = { "a", "sensor-01", "dev.example/x", "Grüße", "日本", "emoji-\xf0\x9f\x98\x80", "x y",
		             "a:b", "$weird" };
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		ck_assert_msg(vp_auth__name_valid(ok[i]), "refused %zu", i);
	char max[VEIL_CLIENT_ID_MAX + 1];
	memset(max, 'm', VEIL_CLIENT_ID_MAX);
	max[VEIL_CLIENT_ID_MAX] = '\0';
	ck_assert(vp_auth__name_valid(max));
}
END_TEST

START_TEST(test_invalid)
{
	const char *bad[] = {
		"", "a+b", "+", "a#", "#", "tab\there", "nl\n", "del\x7f", "esc\x1b[0m",
		"\xc2\x85",               /* C1 control U+0085 */
		"\xc3\x28",               /* broken continuation */
		"\xc0\xaf",               /* overlong '/' */
		"\xe0\x80\xaf",           /* overlong */
		"\xed\xa0\x80",           /* surrogate */
		"\xf4\x90\x80\x80",       /* beyond U+10FFFF */
		"\xff", "trail\xe2\x82",  /* truncated sequence */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(!vp_auth__name_valid(bad[i]), "accepted %zu", i);
	ck_assert(!vp_auth__name_valid(NULL));
	char over[VEIL_CLIENT_ID_MAX + 2];
	memset(over, 'o', VEIL_CLIENT_ID_MAX + 1);
	over[VEIL_CLIENT_ID_MAX + 1] = '\0';
	ck_assert(!vp_auth__name_valid(over));
	/* Multi-byte characters count in bytes. */
	char mb[VEIL_CLIENT_ID_MAX + 3];
	memset(mb, 'x', VEIL_CLIENT_ID_MAX - 1);
	memcpy(mb + VEIL_CLIENT_ID_MAX - 1, "\xc3\xa9", 3);
	ck_assert(!vp_auth__name_valid(mb));
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("auth_names");
	TCase *t = veil_tcase("core", 2);
	tcase_add_test(t, test_valid);
	tcase_add_test(t, test_invalid);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	return veil_check_run(suite());
}
