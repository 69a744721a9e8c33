/*
 * plugin/revoke.c: the revocation list format, lookups, and every way a
 * file can be broken (reported as path:line, nothing half-loaded).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "veil/error.h"
#include "broker.h"
#include "revoke.h"
#include "check_run.h"
#include "timing.h"

static char dir[256], path[300];

static void setup(void)
{
	ck_assert_int_eq(test_mkdtemp(dir, sizeof(dir)), 0);
	snprintf(path, sizeof(path), "%s/revoked", dir);
}

static void teardown(void)
{
	remove(path);
	remove(dir);
}

static int load_text(const char *text, struct vp_revoke **r, char *err, size_t errlen)
{
	ck_assert_int_eq(test_write_file(path, text, 0600), 0);
	return vp_revoke__load(path, r, err, errlen);
}

START_TEST(test_entries)
{
	struct vp_revoke *r = NULL;
	char err[256] = "";
	int rc = load_text("# comment\n\n  credential 00112233445566778899aabbccddeeff  \r\n"
	                   "client lost-device\nclient \xc3\xa9t\xc3\xa9\n\tclient  spaced-id\t\n"
	                   "credential FFEEDDCCBBAA99887766554433221100\n",
	                   &r, err, sizeof(err));
	ck_assert_msg(rc == VEIL_OK, "%s", err);
	ck_assert_uint_eq(vp_revoke__count(r), 5);
	uint8_t id[16] = { 0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
		           0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff };
	ck_assert(vp_revoke__credential(r, id));
	uint8_t id2[16] = { 0xff, 0xee, 0xdd, 0xcc, 0xbb, 0xaa, 0x99, 0x88,
		            0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11, 0x00 };
	ck_assert(vp_revoke__credential(r, id2));
	id[0] = 1;
	ck_assert(!vp_revoke__credential(r, id));
	ck_assert(vp_revoke__client(r, "lost-device"));
	ck_assert(vp_revoke__client(r, "\xc3\xa9t\xc3\xa9"));
	ck_assert(vp_revoke__client(r, "spaced-id"));
	ck_assert(!vp_revoke__client(r, "lost"));
	ck_assert(!vp_revoke__client(r, "lost-device2"));
	ck_assert(!vp_revoke__client(r, NULL));
	vp_revoke__free(&r);
	ck_assert_ptr_null(r);
}
END_TEST

/* The example of docs/AUTH.md, verbatim: trailing comments (PROTOCOL.md
 * section 2). Refusing them kept the old list, and the device the operator
 * had just revoked stayed connected. */
START_TEST(test_trailing_comments)
{
	struct vp_revoke *r = NULL;
	char err[256] = "";
	int rc = load_text("credential 5f0c9a7e2b8d41c3a6e0f1d2c3b4a596   # credential id (veil credential show)\n"
	                   "client lost-device-17                        # every login with this client id\n"
	                   "client my device\t#7 (an id with a space)\n"
	                   "client x #\n",
	                   &r, err, sizeof(err));
	ck_assert_msg(rc == VEIL_OK, "%s", err);
	ck_assert_uint_eq(vp_revoke__count(r), 4);
	uint8_t id[16] = { 0x5f, 0x0c, 0x9a, 0x7e, 0x2b, 0x8d, 0x41, 0xc3,
		           0xa6, 0xe0, 0xf1, 0xd2, 0xc3, 0xb4, 0xa5, 0x96 };
	ck_assert(vp_revoke__credential(r, id));
	ck_assert(vp_revoke__client(r, "lost-device-17"));
	ck_assert(vp_revoke__client(r, "my device"));
	ck_assert(vp_revoke__client(r, "x"));
	vp_revoke__free(&r);
	/* A '#' inside a word is no comment: "a#b" is an id with '#', refused. */
	ck_assert_int_eq(load_text("client a#b\n", &r, err, sizeof(err)), VEIL_ERR_PARSE);
	ck_assert_int_eq(load_text("credential 00112233445566778899aabbccddeeff#x\n", &r, err, sizeof(err)),
	                 VEIL_ERR_PARSE);
	/* A comment that eats the value leaves the directive without one. */
	ck_assert_int_eq(load_text("client #lost\n", &r, err, sizeof(err)), VEIL_ERR_PARSE);
	ck_assert_ptr_null(r);
}
END_TEST

START_TEST(test_empty_and_missing)
{
	struct vp_revoke *r = NULL;
	char err[256] = "";
	ck_assert_int_eq(load_text("", &r, err, sizeof(err)), VEIL_OK);
	ck_assert_uint_eq(vp_revoke__count(r), 0);
	ck_assert(!vp_revoke__client(r, "x"));
	vp_revoke__free(&r);
	ck_assert_int_eq(vp_revoke__empty(&r), VEIL_OK);
	ck_assert(!vp_revoke__client(r, "x"));
	vp_revoke__free(&r);
	remove(path);
	ck_assert_int_eq(vp_revoke__load(path, &r, err, sizeof(err)), VEIL_ERR_IO);
	ck_assert_ptr_null(r);
	ck_assert_ptr_nonnull(strstr(err, path));
}
END_TEST

START_TEST(test_broken_lines)
{
	const struct {
		const char *text;
		const char *where;
	} cases[] = {
		{ "client ok\ncredential 0011\n", ":2:" },                                 /* short id */
		{ "credential 00112233445566778899aabbccddeefg\n", ":1:" },              /* not hex */
		{ "credential 00112233445566778899aabbccddeeff00\n", ":1:" },            /* long */
		{ "# c\nrevoke everything\n", ":2:" },                                    /* unknown */
		{ "client\n", ":1:" },                                                    /* no id */
		{ "client a+b\n", ":1:" },                                                /* wildcard */
		{ "client a\x01\n", ":1:" },                                              /* control */
		{ "clientx foo\n", ":1:" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct vp_revoke *r = NULL;
		char err[256] = "";
		ck_assert_int_eq(load_text(cases[i].text, &r, err, sizeof(err)), VEIL_ERR_PARSE);
		ck_assert_ptr_null(r);
		ck_assert_msg(strstr(err, path) && strstr(err, cases[i].where), "case %zu: '%s'", i, err);
	}
	/* A line longer than the reader's limit is an error, not two lines. */
	char *big = malloc(3000);
	ck_assert_ptr_nonnull(big);
	strcpy(big, "client ");
	memset(big + 7, 'x', 2000);
	strcpy(big + 2007, "\n");
	struct vp_revoke *r = NULL;
	char err[256] = "";
	ck_assert_int_eq(load_text(big, &r, err, sizeof(err)), VEIL_ERR_PARSE);
	ck_assert_ptr_nonnull(strstr(err, ":1:"));
	free(big);
	/* A NUL byte in a line. */
	FILE *f = fopen(path, "wb");
	ck_assert_ptr_nonnull(f);
	fwrite("client a\0b\n", 1, 11, f);
	fclose(f);
	ck_assert_int_eq(vp_revoke__load(path, &r, err, sizeof(err)), VEIL_ERR_PARSE);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("revoke");
	TCase *t = veil_tcase("core", 2);
	tcase_add_checked_fixture(t, setup, teardown);
	tcase_add_test(t, test_entries);
	tcase_add_test(t, test_trailing_comments);
	tcase_add_test(t, test_empty_and_missing);
	tcase_add_test(t, test_broken_lines);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	return veil_check_run(suite());
}
