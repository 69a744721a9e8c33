/*
 * Tests for plugin/acl_rules.c: every directive and access word, Mosquitto
 * 2.0.11's line quirks (comments only in column 1, spaces-only separators,
 * "topic x" = readwrite, spaces inside topics and usernames, repeated user
 * blocks merging), every refusal with its "file:line: reason", truncated,
 * oversized and binary input, and loading from a real file.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "veil/error.h"
#include "acl_rules.h"
#include "broker.h"
#include "check_run.h"
#include "timing.h"

static struct vp_acl_rules *parse_ok(const char *text)
{
	struct vp_acl_rules *r = NULL;
	char err[300] = "";
	int rc = vp_acl_rules__parse("t.acl", text, strlen(text), &r, err, sizeof(err));
	ck_assert_msg(rc == VEIL_OK, "parse failed: %s", err);
	ck_assert_ptr_nonnull(r);
	return r;
}

static void parse_err(const char *text, const char *want_prefix, const char *needle)
{
	struct vp_acl_rules *r = NULL;
	char err[300] = "";
	int rc = vp_acl_rules__parse("t.acl", text, strlen(text), &r, err, sizeof(err));
	ck_assert_int_eq(rc, VEIL_ERR_PARSE);
	ck_assert_ptr_null(r);
	ck_assert_msg(strncmp(err, want_prefix, strlen(want_prefix)) == 0, "want prefix '%s', got '%s'", want_prefix,
	              err);
	ck_assert_msg(strstr(err, needle) != NULL, "want '%s' in '%s'", needle, err);
}

/* Access bits granted on topic by list root (no substitution). */
static unsigned access_on(const struct vp_acl_rules *r, const struct vp_topic_node *root, const char *topic,
                          bool *deny, uint8_t *attrs)
{
	struct vp_match m = { 0, 0, false };
	if (!root)
		return 0;
	ck_assert(vp_trie__match(r->trie, root, topic, NULL, &m));
	if (deny)
		*deny = m.deny;
	if (attrs)
		*attrs = m.attrs;
	return m.allow;
}

START_TEST(mosquitto_directives)
{
	struct vp_acl_rules *r = parse_ok("# comment\n"
	                                  "\n"
	                                  "topic read anon/r\n"
	                                  "topic anon/rw\n"
	                                  "user alice\n"
	                                  "topic write a/w\n"
	                                  "topic readwrite a/rw\n"
	                                  "topic deny a/rw/secret\n"
	                                  "pattern read p/%c/%u\n"
	                                  "user bob smith\n"
	                                  "topic read  b/with space  \n"
	                                  "user alice\n"
	                                  "topic read a/more\r\n");
	ck_assert_uint_eq(r->nrules, 8);
	ck_assert_uint_eq(r->nusers, 2);
	ck_assert_uint_eq(r->npatterns, 1);
	ck_assert_uint_eq(access_on(r, r->anon, "anon/r", NULL, NULL), VP_ACC_READ);
	ck_assert_uint_eq(access_on(r, r->anon, "anon/rw", NULL, NULL), VP_ACC_READ | VP_ACC_WRITE);
	const struct vp_topic_node *alice = vp_acl_rules__user(r, "alice");
	ck_assert_ptr_nonnull(alice);
	ck_assert_uint_eq(access_on(r, alice, "a/w", NULL, NULL), VP_ACC_WRITE);
	ck_assert_uint_eq(access_on(r, alice, "a/more", NULL, NULL), VP_ACC_READ); /* blocks merge */
	bool deny = false;
	access_on(r, alice, "a/rw/secret", &deny, NULL);
	ck_assert(deny);
	ck_assert_uint_eq(access_on(r, alice, "anon/r", NULL, NULL), 0);
	const struct vp_topic_node *bob = vp_acl_rules__user(r, "bob smith");
	ck_assert_ptr_nonnull(bob);
	ck_assert_uint_eq(access_on(r, bob, "b/with space", NULL, NULL), VP_ACC_READ);
	ck_assert_ptr_null(vp_acl_rules__user(r, "bob"));
	ck_assert_ptr_null(vp_acl_rules__user(r, "carol"));
	ck_assert(!r->has_attrs);
	vp_acl_rules__free(&r);
	ck_assert_ptr_null(r);
}
END_TEST

START_TEST(mosquitto_quirks)
{
	/* "topic read" alone: the topic is "read", access readwrite. */
	struct vp_acl_rules *r = parse_ok("topic read\n   \n  topic write x\n");
	ck_assert_uint_eq(access_on(r, r->anon, "read", NULL, NULL), VP_ACC_READ | VP_ACC_WRITE);
	ck_assert_uint_eq(access_on(r, r->anon, "x", NULL, NULL), VP_ACC_WRITE); /* leading spaces are fine */
	vp_acl_rules__free(&r);
	/* A topic may contain spaces: an unchanged Mosquitto line keeps its meaning. */
	r = parse_ok("topic read a/b encrypted\n");
	ck_assert_uint_eq(access_on(r, r->anon, "a/b encrypted", NULL, NULL), VP_ACC_READ);
	ck_assert_uint_eq(access_on(r, r->anon, "a/b", NULL, NULL), 0);
	ck_assert(!r->has_attrs);
	vp_acl_rules__free(&r);
	/* Tabs, as Mosquitto reads them (docs/ACL.md): not separators, ordinary
	 * characters of a word or the topic; trimmed around the topic and at the
	 * end of the line. */
	r = parse_ok("topic read\ta/b\n"           /* one word after "topic": readwrite on it */
	             "topic write \tc/d\t\n"       /* blanks around the topic are trimmed */
	             "topic read e\tf\n"            /* inside the topic: part of it */
	             "\t\n");                       /* a line of blanks is empty */
	ck_assert_uint_eq(access_on(r, r->anon, "read\ta/b", NULL, NULL), VP_ACC_READ | VP_ACC_WRITE);
	ck_assert_uint_eq(access_on(r, r->anon, "a/b", NULL, NULL), 0);
	ck_assert_uint_eq(access_on(r, r->anon, "c/d", NULL, NULL), VP_ACC_WRITE);
	ck_assert_uint_eq(access_on(r, r->anon, "e\tf", NULL, NULL), VP_ACC_READ);
	vp_acl_rules__free(&r);
	/* Empty file and comments only: a valid, empty policy (deny all). */
	r = parse_ok("");
	ck_assert_uint_eq(r->nrules, 0);
	ck_assert_ptr_null(r->anon);
	vp_acl_rules__free(&r);
}
END_TEST

START_TEST(extensions)
{
	struct vp_acl_rules *r = parse_ok("topic subscribe s/#\n"
	                                  "topic readwrite,encrypted enc/#\n"
	                                  "topic write,signed sig/+\n"
	                                  "topic read,subscribe rs/#\n"
	                                  "role ops\n"
	                                  "topic readwrite ops/#\n"
	                                  "pattern write ops/%c/x\n"
	                                  "user u\n"
	                                  "pattern read all/%c\n");
	ck_assert_uint_eq(access_on(r, r->anon, "s/x", NULL, NULL), VP_ACC_SUBSCRIBE);
	uint8_t attrs = 0;
	ck_assert_uint_eq(access_on(r, r->anon, "enc/a", NULL, &attrs), VP_ACC_READ | VP_ACC_WRITE);
	ck_assert_uint_eq(attrs, VP_ATTR_ENCRYPTED);
	ck_assert_uint_eq(access_on(r, r->anon, "sig/a", NULL, &attrs), VP_ACC_WRITE);
	ck_assert_uint_eq(attrs, VP_ATTR_ENCRYPTED | VP_ATTR_SIGNED); /* signed implies encrypted */
	ck_assert_uint_eq(access_on(r, r->anon, "rs/a", NULL, NULL), VP_ACC_READ | VP_ACC_SUBSCRIBE);
	ck_assert(r->has_attrs);
	ck_assert_ptr_nonnull(r->protect);
	ck_assert_uint_eq(access_on(r, r->protect, "enc/z", NULL, &attrs), 0);
	ck_assert_uint_eq(attrs, VP_ATTR_ENCRYPTED);
	const struct vp_topic_node *ops = vp_acl_rules__role(r, "ops", 3);
	ck_assert_ptr_nonnull(ops);
	ck_assert_ptr_null(vp_acl_rules__user(r, "ops")); /* roles and users are separate names */
	ck_assert_uint_eq(access_on(r, ops, "ops/a", NULL, NULL), VP_ACC_READ | VP_ACC_WRITE);
	/* A pattern in a role block stays in the role; elsewhere it is global. */
	struct vp_subst s = { "c1", NULL };
	struct vp_match m = { 0, 0, false };
	ck_assert(vp_trie__match(r->trie, ops, "ops/c1/x", &s, &m));
	ck_assert_uint_eq(m.allow, VP_ACC_READ | VP_ACC_WRITE | VP_ACC_WRITE);
	struct vp_match g = { 0, 0, false };
	ck_assert(vp_trie__match(r->trie, r->patterns, "all/c1", &s, &g));
	ck_assert_uint_eq(g.allow, VP_ACC_READ);
	ck_assert_uint_eq(r->npatterns, 1);
	ck_assert_uint_eq(r->nroles, 1);
	vp_acl_rules__free(&r);
}
END_TEST

START_TEST(errors_with_line)
{
	parse_err("topic read a\nfoo bar\n", "t.acl:2: ", "invalid line");
	parse_err("\n\n  # indented comment\n", "t.acl:3: ", "invalid line"); /* as Mosquitto */
	parse_err("topic\tread\ta\n", "t.acl:1: ", "invalid line"); /* a tab in the first word */
	parse_err("\ttopic read a\n", "t.acl:1: ", "invalid line");
	/* Not a Veil file, no trailing comments: the topic is the rest of the line,
	 * and " #" makes it an invalid filter. */
	parse_err("topic read a/# # note\n", "t.acl:1: ", "invalid topic");
	parse_err("topic read a/b # note\n", "t.acl:1: ", "invalid topic");
	parse_err("user alice\ntopic write c  # note\n", "t.acl:2: ", "invalid topic");
	/* Veil's own topics are the plugin's (docs/ACL.md): no rule may name them. */
	parse_err("topic read $veil/v1/bundle/x\n", "t.acl:1: ", "rule on Veil's own topics \"$veil/v1/bundle/x\"");
	parse_err("user k\ntopic write $veil/#\n", "t.acl:2: ", "rule on Veil's own topics");
	parse_err("role veil-keyd\npattern read $veil/v1/req/%c\n", "t.acl:2: ", "rule on Veil's own topics");
	parse_err("topic deny $veil\n", "t.acl:1: ", "rule on Veil's own topics");
	{
		/* Not Veil's: another '$' word, and first-level wildcards (which
		 * never reach a '$' topic). */
		struct vp_acl_rules *ok = parse_ok("topic read $veilx/a\ntopic read +/v1/req/+\ntopic read #\n");
		vp_acl_rules__free(&ok);
	}
	parse_err("user\n", "t.acl:1: ", "missing user name");
	parse_err("user   \n", "t.acl:1: ", "missing user name");
	parse_err("role\n", "t.acl:1: ", "missing role name");
	parse_err("role a,b\n", "t.acl:1: ", "contains");
	parse_err("topic\n", "t.acl:1: ", "empty topic");
	parse_err("topic read a/#/b\n", "t.acl:1: ", "invalid topic");
	parse_err("pattern read a+/b\n", "t.acl:1: ", "invalid topic");
	parse_err("topic bogus a\n", "t.acl:1: ", "invalid access");
	parse_err("topic read,bogus a\n", "t.acl:1: ", "invalid access");
	parse_err("topic read, a\n", "t.acl:1: ", "invalid access"); /* "read," then topic "a" */
	parse_err("topic read,,write a\n", "t.acl:1: ", "invalid access");
	parse_err("topic encrypted a\n", "t.acl:1: ", "no access");
	parse_err("topic deny,encrypted a\n", "t.acl:1: ", "deny cannot be combined");
	parse_err("topic read a\ntopic read b\ntopic read c\npattern\n", "t.acl:4: ", "empty topic");
}
END_TEST

START_TEST(hostile_input)
{
	/* Binary: a NUL byte inside a line. */
	const char bin[] = "topic read a\ntopic re\0ad b\n";
	struct vp_acl_rules *r = NULL;
	char err[300] = "";
	ck_assert_int_eq(vp_acl_rules__parse("t.acl", bin, sizeof(bin) - 1, &r, err, sizeof(err)), VEIL_ERR_PARSE);
	ck_assert_msg(strstr(err, "t.acl:2: NUL") != NULL, "%s", err);
	/* Oversized line. */
	size_t n = VP_ACL_MAX_LINE + 100;
	char *big = malloc(n + 1);
	memcpy(big, "topic read ", 11);
	memset(big + 11, 'a', n - 11);
	big[n] = '\0';
	ck_assert_int_eq(vp_acl_rules__parse("t.acl", big, n, &r, err, sizeof(err)), VEIL_ERR_PARSE);
	ck_assert_msg(strstr(err, "t.acl:1: line longer") != NULL, "%s", err);
	/* A topic over 65535 bytes in a line that fits. */
	big[11 + 65536] = '\0';
	ck_assert_int_eq(vp_acl_rules__parse("t.acl", big, strlen(big), &r, err, sizeof(err)), VEIL_ERR_PARSE);
	ck_assert_msg(strstr(err, "invalid topic") != NULL, "%s", err);
	free(big);
	/* Truncated: the last line has no newline, and it is cut mid-word. */
	r = parse_ok("user alice\ntopic read a/b");
	ck_assert_uint_eq(r->nrules, 1);
	vp_acl_rules__free(&r);
	parse_err("user alice\ntopic read a\npatt", "t.acl:3: ", "invalid line");
	/* Cut after the access word: as in Mosquitto, "rea" becomes the topic. */
	r = parse_ok("user alice\ntopic rea");
	ck_assert_uint_eq(access_on(r, vp_acl_rules__user(r, "alice"), "rea", NULL, NULL), VP_ACC_READ | VP_ACC_WRITE);
	vp_acl_rules__free(&r);
}
END_TEST

START_TEST(files)
{
	char dir[256], path[300], err[400] = "";
	ck_assert_int_eq(test_mkdtemp(dir, sizeof(dir)), 0);
	snprintf(path, sizeof(path), "%s/acl", dir);
	ck_assert_int_eq(test_write_file(path, "user a\ntopic read x/#\nbad line\n", 0644), 0);
	struct vp_acl_rules *r = NULL;
	ck_assert_int_eq(vp_acl_rules__load(path, 1 << 20, &r, err, sizeof(err)), VEIL_ERR_PARSE);
	char want[400];
	snprintf(want, sizeof(want), "%s:3: ", path);
	ck_assert_msg(strncmp(err, want, strlen(want)) == 0, "%s", err);
	ck_assert_int_eq(test_write_file(path, "user a\ntopic read x/#\n", 0644), 0);
	ck_assert_int_eq(vp_acl_rules__load(path, 1 << 20, &r, err, sizeof(err)), 0);
	ck_assert_uint_eq(r->nrules, 1);
	vp_acl_rules__free(&r);
	ck_assert_int_eq(vp_acl_rules__load(path, 10, &r, err, sizeof(err)), VEIL_ERR_TOO_LARGE); /* over the limit */
	ck_assert_msg(strstr(err, path) == err && strstr(err, "larger than") != NULL, "%s", err);
	unlink(path);
	ck_assert_int_eq(vp_acl_rules__load(path, 1 << 20, &r, err, sizeof(err)), VEIL_ERR_IO);
	ck_assert_msg(strstr(err, path) == err && strstr(err, "No such file") != NULL, "%s", err);
	ck_assert_int_eq(vp_acl_rules__load(dir, 1 << 20, &r, err, sizeof(err)), VEIL_ERR_IO);
	ck_assert_msg(strstr(err, "not a regular file") != NULL, "%s", err);
	rmdir(dir);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("acl_rules");
	TCase *tc = veil_tcase("parser", 2);
	tcase_add_test(tc, mosquitto_directives);
	tcase_add_test(tc, mosquitto_quirks);
	tcase_add_test(tc, extensions);
	tcase_add_test(tc, errors_with_line);
	tcase_add_test(tc, hostile_input);
	tcase_add_test(tc, files);
	suite_add_tcase(s, tc);
	return veil_check_run(s);
}
