/*
 * Tests for plugin/topic.c: topic-vs-rule matching (+, #, parent level, '$'
 * topics, %c/%u whole-level substitution), filter-vs-filter covering for
 * SUBSCRIBE, $share stripping, and Mosquitto's filter/topic validity rules.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "topic.h"
#include "check_run.h"

/* Does a single rule `rule` (pattern or not) match topic for id/user? */
static bool matches(const char *rule, bool pattern, const char *topic, const char *id, const char *user)
{
	struct vp_trie *t = NULL;
	ck_assert_int_eq(vp_trie__new(&t), 0);
	struct vp_topic_node *root = vp_trie__new_root(t);
	ck_assert_ptr_nonnull(root);
	ck_assert_int_eq(vp_trie__insert(t, root, rule, pattern, VP_ACC_READ, false, 0), 0);
	struct vp_subst s = { id, user };
	struct vp_match m = { 0, 0, false };
	bool ok = vp_trie__match(t, root, topic, &s, &m);
	vp_trie__free(&t);
	ck_assert_ptr_null(t);
	return ok && (m.allow & VP_ACC_READ);
}

static bool covers(const char *rule, bool pattern, const char *filter, const char *id)
{
	struct vp_trie *t = NULL;
	ck_assert_int_eq(vp_trie__new(&t), 0);
	struct vp_topic_node *root = vp_trie__new_root(t);
	ck_assert_int_eq(vp_trie__insert(t, root, rule, pattern, VP_ACC_READ, false, 0), 0);
	struct vp_subst s = { id, NULL };
	struct vp_match m = { 0, 0, false };
	bool ok = vp_trie__cover(t, root, filter, &s, &m);
	vp_trie__free(&t);
	return ok && (m.allow & VP_ACC_READ);
}

START_TEST(literal_and_plus)
{
	ck_assert(matches("a/b", false, "a/b", NULL, NULL));
	ck_assert(!matches("a/b", false, "a/c", NULL, NULL));
	ck_assert(!matches("a/b", false, "a/b/c", NULL, NULL));
	ck_assert(!matches("a/b", false, "a", NULL, NULL));
	ck_assert(matches("a/+", false, "a/x", NULL, NULL));
	ck_assert(matches("a/+", false, "a/", NULL, NULL)); /* empty level */
	ck_assert(!matches("a/+", false, "a/x/y", NULL, NULL));
	ck_assert(!matches("a/+", false, "a", NULL, NULL));
	ck_assert(matches("+/+", false, "/x", NULL, NULL));
	ck_assert(matches("a//b", false, "a//b", NULL, NULL));
	ck_assert(!matches("a//b", false, "a/b", NULL, NULL));
	ck_assert(matches("a b/c", false, "a b/c", NULL, NULL)); /* spaces are ordinary bytes */
}
END_TEST

START_TEST(hash_and_parent)
{
	ck_assert(matches("#", false, "a/b/c", NULL, NULL));
	ck_assert(matches("a/#", false, "a", NULL, NULL)); /* parent level, as Mosquitto */
	ck_assert(matches("a/#", false, "a/b/c", NULL, NULL));
	ck_assert(!matches("a/#", false, "ab", NULL, NULL));
	ck_assert(!matches("a/#", false, "b/a", NULL, NULL));
	ck_assert(matches("+/#", false, "x", NULL, NULL));
	ck_assert(matches("a/+/#", false, "a/b", NULL, NULL));
	ck_assert(!matches("a/+/#", false, "a", NULL, NULL));
}
END_TEST

START_TEST(dollar_topics)
{
	ck_assert(!matches("#", false, "$SYS/broker/uptime", NULL, NULL));
	ck_assert(!matches("+/broker/uptime", false, "$SYS/broker/uptime", NULL, NULL));
	ck_assert(!matches("#", false, "$veil/keys/x", NULL, NULL));
	ck_assert(matches("$SYS/#", false, "$SYS/broker/uptime", NULL, NULL));
	ck_assert(matches("$SYS/+/uptime", false, "$SYS/broker/uptime", NULL, NULL));
	ck_assert(matches("$veil/#", false, "$veil/keys/x", NULL, NULL));
	/* Only the first level is special. */
	ck_assert(matches("a/+", false, "a/$x", NULL, NULL));
	ck_assert(matches("a/#", false, "a/$x/y", NULL, NULL));
}
END_TEST

START_TEST(patterns_whole_level)
{
	ck_assert(matches("dev/%c/#", true, "dev/c1/x", "c1", "u1"));
	ck_assert(!matches("dev/%c/#", true, "dev/c2/x", "c1", "u1"));
	ck_assert(matches("dev/%u/x", true, "dev/u1/x", "c1", "u1"));
	ck_assert(!matches("dev/%u/x", true, "dev/u1/x", "c1", NULL)); /* no username: never matches */
	ck_assert(matches("%c/%u", true, "c1/u1", "c1", "u1"));
	/* Whole levels only: an id with '/' cannot span levels, partial is literal. */
	ck_assert(!matches("dev/%c/x", true, "dev/a/b/x", "a/b", NULL));
	ck_assert(!matches("dev-%c/x", true, "dev-c1/x", "c1", NULL));
	ck_assert(matches("dev-%c/x", true, "dev-%c/x", "c1", NULL));
	/* In a `topic` rule %c is literal (Mosquitto). */
	ck_assert(!matches("dev/%c", false, "dev/c1", "c1", NULL));
	ck_assert(matches("dev/%c", false, "dev/%c", "c1", NULL));
	/* Wildcard-looking ids compare as bytes, they never act as wildcards. */
	ck_assert(!matches("dev/%c", true, "dev/x", "+", NULL));
	ck_assert(!covers("dev/%c", true, "dev/+", "+"));
}
END_TEST

START_TEST(filter_cover)
{
	ck_assert(covers("a/#", false, "a/#", NULL));
	ck_assert(covers("a/#", false, "a/+/c", NULL));
	ck_assert(covers("a/#", false, "a", NULL));
	ck_assert(covers("#", false, "#", NULL));
	ck_assert(covers("#", false, "+/x", NULL));
	ck_assert(!covers("a/+", false, "a/#", NULL));
	ck_assert(!covers("a/b", false, "a/+", NULL));
	ck_assert(covers("a/+", false, "a/+", NULL));
	ck_assert(covers("a/+", false, "a/b", NULL));
	ck_assert(!covers("a/+/#", false, "a/#", NULL)); /* "a" itself is not covered */
	ck_assert(covers("a/+/#", false, "a/+/#", NULL));
	ck_assert(!covers("a", false, "a/#", NULL));
	ck_assert(!covers("#", false, "$SYS/#", NULL));
	ck_assert(covers("$SYS/#", false, "$SYS/broker/+", NULL));
	ck_assert(!covers("+/#", false, "$SYS/x", NULL));
	ck_assert(covers("dev/%c/#", true, "dev/c1/+", "c1"));
	ck_assert(!covers("dev/%c/#", true, "dev/+/x", "c1"));
	ck_assert(!covers("a/#", false, "a/#/b", NULL)); /* invalid filter */
}
END_TEST

START_TEST(aggregate_and_deny)
{
	struct vp_trie *t = NULL;
	ck_assert_int_eq(vp_trie__new(&t), 0);
	struct vp_topic_node *root = vp_trie__new_root(t);
	ck_assert_int_eq(vp_trie__insert(t, root, "s/#", false, VP_ACC_READ, false, VP_ATTR_ENCRYPTED), 0);
	ck_assert_int_eq(vp_trie__insert(t, root, "s/+/t", false, VP_ACC_WRITE, false, VP_ATTR_SIGNED), 0);
	ck_assert_int_eq(vp_trie__insert(t, root, "s/x/#", false, 0, true, 0), 0);
	struct vp_match m = { 0, 0, false };
	ck_assert(vp_trie__match(t, root, "s/a/t", NULL, &m));
	ck_assert_uint_eq(m.allow, VP_ACC_READ | VP_ACC_WRITE);
	ck_assert_uint_eq(m.attrs, VP_ATTR_ENCRYPTED | VP_ATTR_SIGNED);
	ck_assert(!m.deny);
	struct vp_match d = { 0, 0, false };
	ck_assert(vp_trie__match(t, root, "s/x/t", NULL, &d));
	ck_assert(d.deny);
	/* Wildcards in a PUBLISH topic are unusable: the caller denies. */
	struct vp_match w = { 0, 0, false };
	ck_assert(!vp_trie__match(t, root, "s/+/t", NULL, &w));
	vp_trie__free(&t);
}
END_TEST

START_TEST(validity)
{
	ck_assert(vp_topic__valid_filter("a/+/b/#"));
	ck_assert(vp_topic__valid_filter("+"));
	ck_assert(!vp_topic__valid_filter("a/#/b"));
	ck_assert(!vp_topic__valid_filter("a+/b"));
	ck_assert(!vp_topic__valid_filter("a/b#"));
	ck_assert(!vp_topic__valid_filter("a/+b"));
	ck_assert(vp_topic__valid_topic("a/b c/d"));
	ck_assert(!vp_topic__valid_topic("a/+"));
	ck_assert(!vp_topic__valid_topic("a/#"));
	/* Length and depth limits (65535 bytes, 200 slashes). */
	char *big = malloc(VP_TOPIC_MAX_LEN + 2);
	memset(big, 'x', VP_TOPIC_MAX_LEN + 1);
	big[VP_TOPIC_MAX_LEN + 1] = '\0';
	ck_assert(!vp_topic__valid_topic(big));
	big[VP_TOPIC_MAX_LEN] = '\0';
	ck_assert(vp_topic__valid_topic(big));
	free(big);
	char deep[1024] = "";
	for (int i = 0; i < 201; i++)
		strcat(deep, "a/");
	strcat(deep, "a");
	ck_assert(!vp_topic__valid_topic(deep));
	ck_assert(!matches("#", false, deep, NULL, NULL));
	deep[strlen(deep) - 2] = '\0'; /* 200 slashes */
	ck_assert(vp_topic__valid_topic(deep));
	ck_assert(matches("#", false, deep, NULL, NULL));
}
END_TEST

START_TEST(share_strip)
{
	ck_assert_str_eq(vp_topic__strip_share("$share/g/a/#"), "a/#");
	ck_assert_str_eq(vp_topic__strip_share("a/b"), "a/b");
	ck_assert_str_eq(vp_topic__strip_share("$SYS/x"), "$SYS/x");
	ck_assert_ptr_null(vp_topic__strip_share("$share/g"));
	ck_assert_ptr_null(vp_topic__strip_share("$share/g/"));
	ck_assert_ptr_null(vp_topic__strip_share("$share//a"));
	ck_assert_ptr_null(vp_topic__strip_share("$share/+/a"));
	ck_assert_ptr_null(vp_topic__strip_share(NULL));
}
END_TEST

START_TEST(many_children)
{
	/* 20,000 siblings: the hash table grows and every one is found. */
	struct vp_trie *t = NULL;
	ck_assert_int_eq(vp_trie__new(&t), 0);
	struct vp_topic_node *root = vp_trie__new_root(t);
	char buf[64];
	for (int i = 0; i < 20000; i++) {
		snprintf(buf, sizeof(buf), "s/dev%d/#", i);
		ck_assert_int_eq(vp_trie__insert(t, root, buf, false, VP_ACC_READ, false, 0), 0);
	}
	for (int i = 0; i < 20000; i += 7) {
		struct vp_match m = { 0, 0, false };
		snprintf(buf, sizeof(buf), "s/dev%d/x", i);
		ck_assert(vp_trie__match(t, root, buf, NULL, &m));
		ck_assert_uint_eq(m.allow, VP_ACC_READ);
	}
	struct vp_match none = { 0, 0, false };
	ck_assert(vp_trie__match(t, root, "s/dev20000/x", NULL, &none));
	ck_assert_uint_eq(none.allow, 0);
	vp_trie__free(&t);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("topic");
	TCase *tc = tcase_create("trie");
	tcase_add_test(tc, literal_and_plus);
	tcase_add_test(tc, hash_and_parent);
	tcase_add_test(tc, dollar_topics);
	tcase_add_test(tc, patterns_whole_level);
	tcase_add_test(tc, filter_cover);
	tcase_add_test(tc, aggregate_and_deny);
	tcase_add_test(tc, validity);
	tcase_add_test(tc, share_strip);
	tcase_add_test(tc, many_children);
	suite_add_tcase(s, tc);
	return veil_check_run(s);
}
