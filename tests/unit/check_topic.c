/*
 * Tests for core/acl/topic.c: topic-vs-rule matching (+, #, parent level,
 * '$' topics, %c/%u whole-level substitution), filter-vs-filter covering
 * for SUBSCRIBE, filter-vs-filter overlap (keyd's scopes), $share
 * stripping, and Mosquitto's filter/topic validity rules.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "veil/veil.h"
#include "../../core/util.h" /* veil__filters_overlap */
#include "topic.h"
#include "check_run.h"
#include "timing.h"

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

/* Does the rule overlap the filter (share at least one topic)? */
static bool overlaps(const char *rule, bool pattern, const char *filter, const char *id)
{
	struct vp_trie *t = NULL;
	ck_assert_int_eq(vp_trie__new(&t), 0);
	struct vp_topic_node *root = vp_trie__new_root(t);
	ck_assert_int_eq(vp_trie__insert(t, root, rule, pattern, VP_ACC_READ, false, 0), 0);
	struct vp_subst s = { id, NULL };
	struct vp_match m = { 0, 0, false };
	bool ok = vp_trie__overlap(t, root, filter, &s, &m);
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

/* The reference: MQTT 3.1.1 section 4.7, written from the text over level
 * lists (no code shared with topic.c or core/util.c). '+' is one level, '#'
 * any number of levels including none after its parent ("a/#" matches "a";
 * "#" matches every topic, which has at least one level), and a wildcard in
 * the first level never matches a topic whose first level starts with '$'. */
#define MAXL 8
static size_t levels(const char *s, char lv[MAXL][8])
{
	size_t n = 0, k = 0;
	for (;; s++) {
		if (*s == '/' || !*s) {
			lv[n++][k] = '\0';
			k = 0;
			if (!*s)
				return n;
		} else {
			lv[n][k++] = *s;
		}
	}
}

static bool ref_rest(char f[MAXL][8], size_t nf, size_t fi, char t[MAXL][8], size_t nt, size_t ti)
{
	if (fi == nf)
		return ti == nt;
	if (!strcmp(f[fi], "#"))
		return true;
	if (ti == nt)
		return false;
	return (!strcmp(f[fi], "+") || !strcmp(f[fi], t[ti])) && ref_rest(f, nf, fi + 1, t, nt, ti + 1);
}

static bool ref_match(const char *filter, const char *topic)
{
	char f[MAXL][8], t[MAXL][8];
	size_t nf = levels(filter, f), nt = levels(topic, t);
	if (t[0][0] == '$' && (!strcmp(f[0], "+") || !strcmp(f[0], "#")))
		return false;
	return ref_rest(f, nf, 0, t, nt, 0);
}

/* Every topic of 1..maxd levels over lv (a level outside every filter, "z",
 * stands for any other level), and every valid filter of 1..maxd levels. */
static size_t all(const char *const *lv, size_t nlv, size_t maxd, bool filters, char (*out)[32], size_t cap)
{
	size_t n = 0, idx[MAXL] = { 0 };
	for (size_t d = 1; d <= maxd; d++) {
		memset(idx, 0, sizeof(idx));
		for (;;) {
			char buf[32] = "";
			for (size_t i = 0; i < d; i++) {
				if (i)
					strcat(buf, "/");
				strcat(buf, lv[idx[i]]);
			}
			if (buf[0] && (!filters || vp_topic__valid_filter(buf))) { /* "" is no topic or filter */
				ck_assert_uint_lt(n, cap);
				strcpy(out[n++], buf);
			}
			size_t i = 0;
			while (i < d && ++idx[i] == nlv)
				idx[i++] = 0;
			if (i == d)
				break;
		}
	}
	return n;
}

/* Found in the issue-17 review: a rule `+/#` did not cover SUBSCRIBE `#`,
 * although both match exactly the topics whose first level does not start
 * with '$' (and so a `deny +/#` did not refuse `#`). Covering must be exact:
 * a rule covers a filter iff every topic the filter matches, the rule
 * matches; checked here for every pair of filters up to 3 levels against
 * every topic up to 4 levels, '$' and empty levels included. */
START_TEST(cover_exact_exhaustive)
{
	static const char *const flv[] = { "a", "b", "+", "#", "$x", "" };
	static const char *const tlv[] = { "a", "b", "z", "", "$x" };
	static char f[400][32], t[800][32];
	size_t nf = all(flv, 6, 3, true, f, 400), nt = all(tlv, 5, 4, false, t, 800);
	ck_assert_uint_gt(nf, 100);
	static bool m[400][800];
	for (size_t i = 0; i < nf; i++)
		for (size_t k = 0; k < nt; k++)
			m[i][k] = ref_match(f[i], t[k]);
	ck_assert(m[0][0]); /* "a" matches "a" */
	size_t checked = 0, covered = 0;
	for (size_t r = 0; r < nf; r++) {
		for (size_t i = 0; i < nf; i++) {
			bool want = true;
			for (size_t k = 0; k < nt && want; k++)
				want = !m[i][k] || m[r][k];
			ck_assert_msg(covers(f[r], false, f[i], NULL) == want, "rule %s %s filter %s", f[r],
			              want ? "covers" : "does not cover", f[i]);
			checked++;
			covered += want;
		}
	}
	ck_assert_uint_gt(covered, 0);
	ck_assert_uint_lt(covered, checked);
	ck_assert(covers("+/#", false, "#", NULL));
	ck_assert(covers("#", false, "+/#", NULL));
	ck_assert(!covers("+/+/#", false, "#", NULL));
	ck_assert(!covers("+/#", false, "$x/#", NULL));
}
END_TEST

/* Overlap is exact too: a rule overlaps a filter iff some topic matches
 * both, for every pair of filters up to 3 levels over every topic up to 4
 * levels; and the core's one string rule (veil__filters_overlap, which
 * keyd's config and the keyring use) agrees on every pair. */
START_TEST(overlap_exact_exhaustive)
{
	static const char *const flv[] = { "a", "b", "+", "#", "$x", "" };
	static const char *const tlv[] = { "a", "b", "z", "", "$x" };
	static char f[400][32], t[800][32];
	size_t nf = all(flv, 6, 3, true, f, 400), nt = all(tlv, 5, 4, false, t, 800);
	static bool m[400][800];
	for (size_t i = 0; i < nf; i++)
		for (size_t k = 0; k < nt; k++)
			m[i][k] = ref_match(f[i], t[k]);
	size_t yes = 0, checked = 0;
	for (size_t r = 0; r < nf; r++) {
		for (size_t i = 0; i < nf; i++) {
			bool want = false;
			for (size_t k = 0; k < nt && !want; k++)
				want = m[i][k] && m[r][k];
			ck_assert_msg(overlaps(f[r], false, f[i], NULL) == want, "rule %s %s filter %s", f[r],
			              want ? "overlaps" : "does not overlap", f[i]);
			ck_assert_msg(veil__filters_overlap(f[r], f[i]) == want, "core: %s vs %s", f[r], f[i]);
			yes += want;
			checked++;
		}
	}
	ck_assert_uint_gt(yes, 0);
	ck_assert_uint_lt(yes, checked);
}
END_TEST

START_TEST(overlap_patterns_and_lists)
{
	/* %c levels: a wildcard or a '#' filter level meets them when the id is known. */
	ck_assert(overlaps("f/%c/#", true, "f/+/t", "s1"));
	ck_assert(overlaps("f/%c/#", true, "f/#", "s1"));
	ck_assert(overlaps("f/%c/#", true, "f/s1/#", "s1"));
	ck_assert(!overlaps("f/%c/#", true, "f/s2/#", "s1"));
	ck_assert(!overlaps("f/%c/#", true, "f/+/t", NULL));
	ck_assert(!overlaps("f/%c", true, "f/+/t", "s1"));
	/* Everything below a filter's '#': the whole subtree of rules. */
	struct vp_trie *t = NULL;
	ck_assert_int_eq(vp_trie__new(&t), 0);
	struct vp_topic_node *root = vp_trie__new_root(t);
	ck_assert_int_eq(vp_trie__insert(t, root, "a/b/c/d", false, VP_ACC_WRITE, false, 0), 0);
	ck_assert_int_eq(vp_trie__insert(t, root, "a/x/+", false, 0, true, 0), 0);
	ck_assert_int_eq(vp_trie__insert(t, root, "a/y", false, 0, false, VP_ATTR_SIGNED), 0);
	ck_assert_int_eq(vp_trie__insert(t, root, "$a/z", false, VP_ACC_READ, false, 0), 0);
	struct vp_match m = { 0, 0, false };
	ck_assert(vp_trie__overlap(t, root, "a/#", NULL, &m));
	ck_assert_uint_eq(m.allow, VP_ACC_WRITE);
	ck_assert(m.deny);
	ck_assert_uint_eq(m.attrs, VP_ATTR_SIGNED);
	struct vp_match h = { 0, 0, false };
	ck_assert(vp_trie__overlap(t, root, "#", NULL, &h));
	ck_assert_uint_eq(h.allow, VP_ACC_WRITE); /* not the '$a' rule */
	struct vp_match p = { 0, 0, false };
	ck_assert(vp_trie__overlap(t, root, "a/+/c/+", NULL, &p));
	ck_assert_uint_eq(p.allow, VP_ACC_WRITE);
	ck_assert(!p.deny);
	struct vp_match d = { 0, 0, false };
	ck_assert(vp_trie__overlap(t, root, "$a/#", NULL, &d));
	ck_assert_uint_eq(d.allow, VP_ACC_READ);
	ck_assert(!vp_trie__overlap(t, root, "a/+b", NULL, &d)); /* not a filter */
	vp_trie__free(&t);
}
END_TEST

/* The plugin's matcher (topic.c) and the core's (the keyring's filters,
 * core/util.c) both equal the reference on every filter/topic pair, '+' and
 * '#' at a '$' level included. */
START_TEST(match_exact_plugin_and_core)
{
	static const char *const flv[] = { "a", "+", "#", "$x", "" };
	static const char *const tlv[] = { "a", "z", "", "$x" };
	static char f[400][32], t[800][32];
	size_t nf = all(flv, 5, 3, true, f, 400), nt = all(tlv, 4, 4, false, t, 800);
	ck_assert_int_eq(veil_init(), VEIL_OK);
	for (size_t i = 0; i < nf; i++) {
		char text[64];
		snprintf(text, sizeof(text), "policy %s plaintext\n", f[i]);
		struct veil_keyring *kr = NULL;
		ck_assert_int_eq(veil_keyring_parse(text, strlen(text), "t", &kr, NULL, 0), VEIL_OK);
		for (size_t k = 0; k < nt; k++) {
			bool want = ref_match(f[i], t[k]);
			ck_assert_msg(matches(f[i], false, t[k], NULL, NULL) == want, "plugin: %s vs %s", f[i], t[k]);
			struct veil_topic_policy p;
			ck_assert_msg((veil_keyring_policy(kr, t[k], &p) == VEIL_OK) == want, "core: %s vs %s", f[i], t[k]);
		}
		veil_keyring_free(&kr);
	}
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
	TCase *tc = veil_tcase("trie", 3);
	tcase_add_test(tc, literal_and_plus);
	tcase_add_test(tc, hash_and_parent);
	tcase_add_test(tc, dollar_topics);
	tcase_add_test(tc, patterns_whole_level);
	tcase_add_test(tc, filter_cover);
	tcase_add_test(tc, aggregate_and_deny);
	tcase_add_test(tc, validity);
	tcase_add_test(tc, share_strip);
	tcase_add_test(tc, many_children);
	tcase_add_test(tc, overlap_patterns_and_lists);
	suite_add_tcase(s, tc);
	TCase *ex = veil_tcase("exhaustive", 10);
	tcase_add_test(ex, cover_exact_exhaustive);
	tcase_add_test(ex, overlap_exact_exhaustive);
	tcase_add_test(ex, match_exact_plugin_and_core);
	suite_add_tcase(s, ex);
	return veil_check_run(s);
}
