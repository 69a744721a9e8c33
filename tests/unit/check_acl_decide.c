/*
 * Tests for plugin/acl_decide.c: which lists apply (anonymous rules, user
 * blocks, roles, patterns), deny by default, explicit deny winning, Mosquitto's
 * refusal of '+'/'#' ids when patterns exist, SUBSCRIBE checked filter
 * against filter with $share understood, '$' topics only by explicit rules,
 * protection attributes, and the scale requirement: 10,000 rules and 10,000
 * client views load in under a second and decisions stay fast.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "acl_decide.h"
#include "check_run.h"
#include "timing.h"

static struct vp_acl_rules *rules(const char *text)
{
	struct vp_acl_rules *r = NULL;
	char err[300] = "";
	ck_assert_msg(vp_acl_rules__parse("t.acl", text, strlen(text), &r, err, sizeof(err)) == 0, "%s", err);
	return r;
}

static bool decide(const struct vp_acl_rules *r, const char *id, const char *user, const char *roles,
                   unsigned access, const char *topic, uint8_t *attrs)
{
	struct vp_acl_who w = { id, user, roles };
	struct vp_acl_view *v = vp_acl_view__new(r, &w, 1);
	ck_assert_ptr_nonnull(v);
	struct vp_acl_result res;
	vp_acl__decide(r, v, &w, access, topic, &res);
	free(v);
	if (attrs)
		*attrs = res.attrs;
	return res.allowed;
}

#define R VP_ACC_READ
#define W VP_ACC_WRITE
#define S VP_ACC_SUBSCRIBE

START_TEST(lists_like_mosquitto)
{
	struct vp_acl_rules *r = rules("topic read anon/#\n"
	                               "user alice\n"
	                               "topic readwrite alice/#\n"
	                               "pattern read dev/%c/#\n"
	                               "pattern write up/%u/x\n");
	/* Anonymous rules: only for clients without a username. */
	ck_assert(decide(r, "c1", NULL, NULL, R, "anon/x", NULL));
	ck_assert(!decide(r, "c1", "alice", NULL, R, "anon/x", NULL));
	ck_assert(!decide(r, "c1", "bob", NULL, R, "anon/x", NULL));
	/* User block. */
	ck_assert(decide(r, "c1", "alice", NULL, W, "alice/x", NULL));
	ck_assert(!decide(r, "c1", "bob", NULL, W, "alice/x", NULL));
	ck_assert(!decide(r, "c1", NULL, NULL, W, "alice/x", NULL));
	/* Patterns apply to everyone, wherever they are written. */
	ck_assert(decide(r, "c1", "bob", NULL, R, "dev/c1/t", NULL));
	ck_assert(decide(r, "c1", NULL, NULL, R, "dev/c1/t", NULL));
	ck_assert(!decide(r, "c1", "bob", NULL, R, "dev/c2/t", NULL));
	ck_assert(!decide(r, "c1", "bob", NULL, W, "dev/c1/t", NULL));
	ck_assert(decide(r, "c1", "bob", NULL, W, "up/bob/x", NULL));
	ck_assert(!decide(r, "c1", NULL, NULL, W, "up/bob/x", NULL));
	/* Deny by default. */
	ck_assert(!decide(r, "c1", "alice", NULL, R, "other", NULL));
	vp_acl_rules__free(&r);
	/* Empty policy denies everything. */
	r = rules("# nothing\n");
	ck_assert(!decide(r, "c1", NULL, NULL, R, "a", NULL));
	ck_assert(!decide(r, "c1", NULL, NULL, S, "a", NULL));
	vp_acl_rules__free(&r);
}
END_TEST

START_TEST(deny_wins)
{
	struct vp_acl_rules *r = rules("user alice\n"
	                               "topic readwrite a/#\n"
	                               "topic deny a/secret/#\n"
	                               "topic readwrite p/#\n"
	                               "pattern deny p/%c/private\n");
	ck_assert(decide(r, "c1", "alice", NULL, W, "a/x", NULL));
	ck_assert(!decide(r, "c1", "alice", NULL, W, "a/secret", NULL));
	ck_assert(!decide(r, "c1", "alice", NULL, R, "a/secret/x", NULL));
	/* A pattern deny beats the user's allow (Mosquitto would allow: documented). */
	ck_assert(decide(r, "c1", "alice", NULL, W, "p/c2/private", NULL));
	ck_assert(!decide(r, "c1", "alice", NULL, W, "p/c1/private", NULL));
	/* SUBSCRIBE: refused when a deny covers the filter; a filter that only
	 * overlaps a deny is allowed and delivery (READ) filters it. */
	ck_assert(!decide(r, "c1", "alice", NULL, S, "a/secret/#", NULL));
	ck_assert(decide(r, "c1", "alice", NULL, S, "a/#", NULL));
	ck_assert(!decide(r, "c1", "alice", NULL, R, "a/secret/y", NULL));
	vp_acl_rules__free(&r);
}
END_TEST

START_TEST(dangerous_ids)
{
	struct vp_acl_rules *r = rules("user u+\n"
	                               "topic read own/#\n"
	                               "pattern read dev/%c/#\n");
	/* Mosquitto: with patterns, '+'/'#' ids get only what their list grants. */
	ck_assert(!decide(r, "c+", NULL, NULL, R, "dev/c+/x", NULL));
	ck_assert(!decide(r, "#", NULL, NULL, R, "dev/x", NULL));
	ck_assert(decide(r, "c1", "u+", NULL, R, "own/x", NULL));
	ck_assert(!decide(r, "c1", "u+", NULL, R, "dev/c1/x", NULL));
	ck_assert(decide(r, "c1", "u", NULL, R, "dev/c1/x", NULL));
	vp_acl_rules__free(&r);
}
END_TEST

START_TEST(roles)
{
	struct vp_acl_rules *r = rules("role ops\n"
	                               "topic readwrite ops/#\n"
	                               "pattern readwrite ops/%c/mine\n"
	                               "role audit\n"
	                               "topic read #\n"
	                               "topic deny ops/keys\n");
	ck_assert(decide(r, "c1", "x", "ops", W, "ops/a", NULL));
	ck_assert(!decide(r, "c1", "x", "opsx", W, "ops/a", NULL));
	ck_assert(!decide(r, "c1", "x", NULL, W, "ops/a", NULL));
	ck_assert(decide(r, "c1", "x", "viewer,audit", R, "anything/x", NULL));
	/* Deny from one role wins over another role's allow. */
	ck_assert(!decide(r, "c1", "x", "ops,audit", W, "ops/keys", NULL));
	ck_assert(decide(r, "c1", "x", "ops", W, "ops/keys", NULL));
	ck_assert(decide(r, "c1", NULL, "ops", W, "ops/c1/mine", NULL));
	ck_assert(!decide(r, "c1", NULL, "audit", W, "ops/c1/mine", NULL));
	/* A role is not a username. */
	ck_assert(!decide(r, "c1", "ops", NULL, W, "ops/a", NULL));
	vp_acl_rules__free(&r);
}
END_TEST

START_TEST(subscribe_filters)
{
	struct vp_acl_rules *r = rules("topic read r/#\n"
	                               "topic subscribe s/#\n"
	                               "topic write w/#\n"
	                               "topic read one/+/x\n");
	ck_assert(decide(r, "c", NULL, NULL, S, "r/#", NULL));
	ck_assert(decide(r, "c", NULL, NULL, S, "r/a/+", NULL));
	ck_assert(decide(r, "c", NULL, NULL, S, "r", NULL));
	ck_assert(!decide(r, "c", NULL, NULL, S, "#", NULL)); /* wider than any rule */
	ck_assert(!decide(r, "c", NULL, NULL, S, "+/a", NULL));
	ck_assert(decide(r, "c", NULL, NULL, S, "s/x", NULL));
	ck_assert(!decide(r, "c", NULL, NULL, R, "s/x", NULL)); /* subscribe is not read */
	ck_assert(!decide(r, "c", NULL, NULL, S, "w/x", NULL)); /* write is not subscribe */
	ck_assert(decide(r, "c", NULL, NULL, S, "one/+/x", NULL));
	ck_assert(!decide(r, "c", NULL, NULL, S, "one/#", NULL));
	ck_assert(decide(r, "c", NULL, NULL, S, "$share/g1/r/#", NULL));
	ck_assert(!decide(r, "c", NULL, NULL, S, "$share/g1/#", NULL));
	ck_assert(!decide(r, "c", NULL, NULL, S, "$share/g1", NULL));
	ck_assert(!decide(r, "c", NULL, NULL, S, "r/#/x", NULL)); /* invalid filter */
	vp_acl_rules__free(&r);
}
END_TEST

/* Found in the issue-17 review, compared with Mosquitto's acl_file: `+/#`
 * matches every topic `#` matches, yet did not let a client SUBSCRIBE to `#`,
 * and a `deny +/#` did not refuse SUBSCRIBE `#` while `read #` was granted. */
START_TEST(subscribe_plus_hash_covers_hash)
{
	struct vp_acl_rules *r = rules("topic read +/#\n");
	ck_assert(decide(r, "c", NULL, NULL, S, "#", NULL));
	ck_assert(decide(r, "c", NULL, NULL, S, "$share/g/#", NULL));
	ck_assert(decide(r, "c", NULL, NULL, S, "+/#", NULL));
	ck_assert(decide(r, "c", NULL, NULL, S, "a", NULL)); /* +/# matches a parent level too */
	ck_assert(!decide(r, "c", NULL, NULL, S, "$SYS/#", NULL));
	ck_assert(decide(r, "c", NULL, NULL, R, "a", NULL));
	ck_assert(!decide(r, "c", NULL, NULL, R, "$SYS/x", NULL));
	vp_acl_rules__free(&r);
	/* `a/+/#` does not match `a`, so it does not cover `a/#`. */
	r = rules("topic read a/+/#\n");
	ck_assert(!decide(r, "c", NULL, NULL, S, "a/#", NULL));
	ck_assert(decide(r, "c", NULL, NULL, S, "a/+/#", NULL));
	vp_acl_rules__free(&r);
	/* The same exact coverage for a deny. */
	r = rules("topic read #\n"
	          "topic deny +/#\n");
	ck_assert(!decide(r, "c", NULL, NULL, S, "#", NULL));
	ck_assert(!decide(r, "c", NULL, NULL, S, "$share/g/#", NULL));
	ck_assert(!decide(r, "c", NULL, NULL, R, "a/b", NULL));
	vp_acl_rules__free(&r);
	r = rules("topic read #\n"
	          "topic deny +/+/#\n"); /* overlaps `#` without covering it (not `a`) */
	ck_assert(decide(r, "c", NULL, NULL, S, "#", NULL));
	ck_assert(decide(r, "c", NULL, NULL, R, "a", NULL));
	ck_assert(!decide(r, "c", NULL, NULL, R, "a/b", NULL));
	vp_acl_rules__free(&r);
}
END_TEST

/* docs/ACL.md: a shared subscription must name a group and a non-empty filter
 * (MQTT 5 4.8.2 and 4.7.3); `$share/g/` could never receive anything and is
 * refused even where every topic is readable. */
START_TEST(subscribe_share_without_filter)
{
	struct vp_acl_rules *r = rules("topic read #\n");
	ck_assert(decide(r, "c", NULL, NULL, S, "$share/g/a", NULL));
	ck_assert(decide(r, "c", NULL, NULL, S, "$share/g/#", NULL));
	ck_assert(!decide(r, "c", NULL, NULL, S, "$share/g/", NULL));
	ck_assert(!decide(r, "c", NULL, NULL, S, "$share/g", NULL));
	ck_assert(!decide(r, "c", NULL, NULL, S, "$share//a", NULL));
	ck_assert(!decide(r, "c", NULL, NULL, S, "$share/g+/a", NULL));
	vp_acl_rules__free(&r);
}
END_TEST

START_TEST(dollar_only_explicit)
{
	struct vp_acl_rules *r = rules("topic readwrite #\n"
	                               "topic read $SYS/broker/#\n");
	ck_assert(decide(r, "c", NULL, NULL, R, "a/b", NULL));
	ck_assert(!decide(r, "c", NULL, NULL, R, "$veil/x", NULL));
	ck_assert(!decide(r, "c", NULL, NULL, W, "$veil/x", NULL));
	ck_assert(!decide(r, "c", NULL, NULL, S, "$veil/#", NULL));
	ck_assert(decide(r, "c", NULL, NULL, R, "$SYS/broker/uptime", NULL));
	ck_assert(!decide(r, "c", NULL, NULL, R, "$SYS/other", NULL));
	ck_assert(decide(r, "c", NULL, NULL, S, "$SYS/broker/#", NULL));
	ck_assert(!decide(r, "c", NULL, NULL, S, "$SYS/#", NULL));
	vp_acl_rules__free(&r);
}
END_TEST

START_TEST(protection_attrs)
{
	struct vp_acl_rules *r = rules("topic readwrite #\n"
	                               "user a\n"
	                               "topic write,encrypted enc/#\n"
	                               "topic write,signed sig/#\n"
	                               "pattern write,encrypted dev/%c/#\n");
	uint8_t attrs = 0xff;
	/* Protection is a property of the topic: it binds everyone, even a
	 * client whose own rule does not mention it. */
	ck_assert(decide(r, "c", NULL, NULL, W, "enc/x", &attrs));
	ck_assert_uint_eq(attrs, VP_ATTR_ENCRYPTED);
	ck_assert(decide(r, "c", NULL, NULL, W, "sig/x", &attrs));
	ck_assert_uint_eq(attrs, VP_ATTR_ENCRYPTED | VP_ATTR_SIGNED);
	ck_assert(decide(r, "c", NULL, NULL, W, "plain/x", &attrs));
	ck_assert_uint_eq(attrs, 0);
	ck_assert(decide(r, "c", "a", NULL, W, "dev/c/x", &attrs));
	ck_assert_uint_eq(attrs, VP_ATTR_ENCRYPTED);
	ck_assert(decide(r, "c", NULL, NULL, W, "dev/c/x", &attrs));
	ck_assert_uint_eq(attrs, VP_ATTR_ENCRYPTED);
	/* A pattern's %c stands for any device: d may write dev/c/x (its
	 * "topic readwrite #"), but only sealed, as c must (a dashboard with
	 * write rights cannot slip plaintext or another device's sender id in
	 * among a device's own messages). */
	ck_assert(decide(r, "d", NULL, NULL, W, "dev/c/x", &attrs));
	ck_assert_uint_eq(attrs, VP_ATTR_ENCRYPTED);
	ck_assert(decide(r, "d", NULL, NULL, W, "dev/c", &attrs)); /* "dev/%c/#" covers dev/c too */
	ck_assert_uint_eq(attrs, VP_ATTR_ENCRYPTED);
	ck_assert(decide(r, "d", NULL, NULL, W, "dev", &attrs));
	ck_assert_uint_eq(attrs, 0);
	vp_acl_rules__free(&r);
	/* %u and a %c in the middle of a filter; a '%c' of a topic line is literal. */
	r = rules("topic readwrite #\npattern write,signed a/%u/b/%c\ntopic write,encrypted t/%c\n");
	ck_assert(decide(r, "x", NULL, NULL, W, "a/u/b/c", &attrs));
	ck_assert_uint_eq(attrs, VP_ATTR_ENCRYPTED | VP_ATTR_SIGNED);
	ck_assert(decide(r, "x", NULL, NULL, W, "a/u/b/c/d", &attrs));
	ck_assert_uint_eq(attrs, 0);
	ck_assert(decide(r, "x", NULL, NULL, W, "t/x", &attrs));
	ck_assert_uint_eq(attrs, 0);
	ck_assert(decide(r, "x", NULL, NULL, W, "t/%c", &attrs));
	ck_assert_uint_eq(attrs, VP_ATTR_ENCRYPTED);
	vp_acl_rules__free(&r);
}
END_TEST

/* CPU time of this process, for the FIGURE lines (never a verdict: speed is
 * judged by the benchmarks). */
static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

START_TEST(scale_10k)
{
	/* 10,000 rules over 5,000 users plus patterns, then 10,000 client views. */
	size_t cap = 1 << 20, len = 0;
	char *text = malloc(cap);
	len += (size_t)snprintf(text + len, cap - len, "pattern readwrite dev/%%c/#\npattern read users/%%u/#\n");
	for (int u = 0; u < 4999; u++)
		len += (size_t)snprintf(text + len, cap - len, "user user%d\ntopic readwrite site/%d/+/data\n"
		                                               "topic read site/%d/status/#\n", u, u, u);
	ck_assert(len < cap);
	double t0 = now_s();
	struct vp_acl_rules *r = rules(text);
	double t1 = now_s();
	ck_assert_uint_eq(r->nrules, 2 + 2 * 4999);
	struct vp_acl_view **views = calloc(10000, sizeof(*views));
	char id[32], user[32];
	for (int c = 0; c < 10000; c++) {
		snprintf(id, sizeof(id), "client%d", c);
		snprintf(user, sizeof(user), "user%d", c % 5000);
		struct vp_acl_who w = { id, user, NULL };
		views[c] = vp_acl_view__new(r, &w, 7);
		ck_assert_ptr_nonnull(views[c]);
	}
	double t2 = now_s();
	fprintf(stderr, "FIGURE acl_scale_load rules=10000 parse_ms=%.1f views=10000 views_ms=%.1f\n", (t1 - t0) * 1e3,
	        (t2 - t1) * 1e3);
	/* Decisions: right answers for 1e5 of them. */
	long allowed = 0;
	char topic[64];
	double t3 = now_s();
	for (int i = 0; i < 100000; i++) {
		int c = i % 10000;
		snprintf(id, sizeof(id), "client%d", c);
		snprintf(user, sizeof(user), "user%d", c % 5000);
		snprintf(topic, sizeof(topic), "site/%d/x/data", (i % 3) ? c % 5000 : (c + 1) % 5000);
		struct vp_acl_who w = { id, user, NULL };
		struct vp_acl_result res;
		vp_acl__decide(r, views[c], &w, VP_ACC_WRITE, topic, &res);
		allowed += res.allowed;
		ck_assert(res.allowed == ((i % 3) != 0 && c % 5000 != 4999));
	}
	double t4 = now_s();
	fprintf(stderr, "FIGURE acl_scale_decide decisions=100000 ms=%.1f allowed=%ld\n", (t4 - t3) * 1e3, allowed);
	for (int c = 0; c < 10000; c++)
		free(views[c]);
	free(views);
	vp_acl_rules__free(&r);
	free(text);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("acl_decide");
	TCase *tc = veil_tcase("decide", 5);
	tcase_add_test(tc, lists_like_mosquitto);
	tcase_add_test(tc, deny_wins);
	tcase_add_test(tc, dangerous_ids);
	tcase_add_test(tc, roles);
	tcase_add_test(tc, subscribe_filters);
	tcase_add_test(tc, subscribe_plus_hash_covers_hash);
	tcase_add_test(tc, subscribe_share_without_filter);
	tcase_add_test(tc, dollar_only_explicit);
	tcase_add_test(tc, protection_attrs);
	tcase_add_test(tc, scale_10k);
	suite_add_tcase(s, tc);
	return veil_check_run(s);
}
