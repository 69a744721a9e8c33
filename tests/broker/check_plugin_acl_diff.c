/*
 * Differential test: the plugin's ACL decisions equal Mosquitto 2.0.11's
 * built-in acl_file decisions on the same file, both observed on REAL
 * brokers with real Paho MQTT 5 clients:
 *   WRITE: the PUBACK reason code (0x87 when denied) for a QoS 1 PUBLISH;
 *   READ:  whether a message published by a privileged user (or a retained
 *          $SYS message) reaches a client subscribed to exactly that topic.
 * A corpus of rules files (anonymous rules, user blocks, patterns with
 * %c/%u, deny, '$' topics, spaces in topics and usernames, repeated blocks,
 * an empty policy) is run through both. Clients use the ids the plugin's
 * authentication lets them use (a user its username or an "auto-" id, an
 * anonymous client an "auto-" id; ids with '+'/'#' are refused at CONNECT,
 * so they are unit-tested only). Files Mosquitto
 * refuses are refused by both. The documented differences (docs/ACL.md) are
 * asserted as differences.
 */
#include <check.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "acl_client.h"
#include "check_run.h"
#include "timing.h"

#define GOD_BLOCK "\nuser zgod\ntopic readwrite #\ntopic readwrite $app/#\n"

struct who {
	const char *id;
	const char *user;
};

struct corpus {
	const char *name;
	const char *rules;
	struct who clients[6];
	const char *topics[16];
	bool expect_mixed; /* sanity: some allowed and some denied */
};

static const struct corpus corpora[] = {
	{ "users",
	  "# users, anonymous rules and deny\n"
	  "topic read pub/#\n"
	  "topic write anonw/+\n"
	  "user alice\n"
	  "topic readwrite a/#\n"
	  "topic deny a/secret/#\n"
	  "topic read shared/#\n"
	  "user bob\n"
	  "topic write shared/bob\n"
	  "topic b/#\n",
	  { { "auto-anon1", NULL }, { "alice", "alice" }, { "bob", "bob" }, { "auto-carl1", "carl" } },
	  { "pub/x", "anonw/1", "anonw/1/2", "a/x", "a", "a/secret", "a/secret/y", "shared/bob", "shared/z", "b/q",
	    "b", "other" },
	  true },
	{ "patterns",
	  "pattern readwrite dev/%c/#\n"
	  "pattern read users/%u/inbox\n"
	  "pattern write out/%u/%c\n"
	  "pattern deny dev/%c/locked\n"
	  "user alice\n"
	  "topic read other/#\n",
	  { { "auto-dev1", NULL }, { "auto-dev2", "alice" }, { "auto-dev3", "eve" }, { "carl", "carl" } },
	  { "dev/auto-dev1/t", "dev/auto-dev2/t", "dev/auto-dev3/t", "dev/auto-dev1/locked", "dev/auto-dev2/locked",
	    "users/alice/inbox", "users/eve/inbox", "out/alice/auto-dev2", "out/eve/auto-dev3", "out/eve/x", "other/1",
	    "dev/x" },
	  true },
	{ "dollar",
	  "topic read $SYS/broker/version\n"
	  "topic readwrite #\n"
	  "user carol\n"
	  "topic read +/status\n"
	  "topic write cmd/+/set\n"
	  "topic read $app/carol/#\n",
	  { { "auto-anon3", NULL }, { "carol", "carol" } },
	  { "$SYS/broker/version", "$SYS/broker/uptime", "x/status", "cmd/1/set", "cmd/1/get", "a/b/c", "$app/x",
	    "$app/carol/k" },
	  true },
	{ "quirks",
	  "user dave smith\n"
	  "topic read room 1/temp\n"
	  "topic ctl/x\n"
	  "user erin\n"
	  "topic write e/1\n"
	  "user dave smith\n"
	  "topic write room 1/set\n"
	  "topic read\n",
	  { { "auto-dave1", "dave smith" }, { "erin", "erin" }, { "auto-anon4", NULL }, { "dave", "dave" } },
	  { "room 1/temp", "room 1/set", "ctl/x", "e/1", "read", "room" },
	  true },
	{ "empty", "# only a comment\n\n", { { "auto-anon5", NULL }, { "u5", "u5" } }, { "a", "b/c" }, false },
};

static size_t count_topics(const struct corpus *c)
{
	size_t n = 0;
	while (n < 16 && c->topics[n])
		n++;
	return n;
}

/* One client's decisions on both brokers at once (k = 0 built-in, 1 plugin):
 * WRITE from its own QoS 1 PUBLISHes, READ from what reaches its
 * subscription to exactly each topic when god publishes there (no_local
 * keeps its own PUBLISHes out of that). */
static void observe(const int ports[2], struct acl_pc god[2], const struct who *w, const struct corpus *c,
                    int wr[2][16], int rd[2][16])
{
	struct acl_pc p[2];
	size_t n = count_topics(c);
	for (int k = 0; k < 2; k++) {
		ck_assert_int_eq(acl_pc_connect(&p[k], ports[k], w->id, w->user), 0);
		acl_pc_sub_many(&p[k], c->topics, (int)n, true);
	}
	for (int k = 0; k < 2; k++) {
		for (size_t i = 0; i < n; i++) {
			int rc = acl_pc_pub(&p[k], c->topics[i], "w", 1, 1, 0);
			/* 0x10 "no matching subscribers" is a success too. */
			ck_assert_msg((rc >= 0 && rc < 0x80) || rc == 0x87, "PUBACK %d for %s", rc, c->topics[i]);
			wr[k][i] = rc >= 0 && rc < 0x80;
		}
		for (size_t i = 0; i < n; i++) {
			if (strncmp(c->topics[i], "$SYS", 4) != 0)
				acl_pc_pub(&god[k], c->topics[i], "r", 1, 1, 0);
		}
	}
	/* Each god PUBLISH was routed (or not) before its PUBACK; a round trip
	 * on the client's own connection then brings in whatever was routed to
	 * it (at most 16 messages: within Mosquitto's 20 in flight). */
	for (int k = 0; k < 2; k++) {
		acl_pc_sync(&p[k]);
		for (size_t i = 0; i < n; i++)
			rd[k][i] = acl_pc_count(&p[k], c->topics[i]) > 0;
		acl_pc_close(&p[k]);
	}
}

static const char *const users[] = { "alice", "bob", "carl", "eve", "carol", "dave smith", "erin", "dave", "u5",
	                                   "zgod", "pbob", "pcarl", NULL };
static struct acl_env env;

static void env_setup(void)
{
	acl_env_init(&env, users);
}

static void env_teardown(void)
{
	acl_env_free(&env);
}

static void write_rules(char *path, size_t cap, const char *dir, const char *name, const char *rules)
{
	snprintf(path, cap, "%s/%s.acl", dir, name);
	char text[4096];
	snprintf(text, sizeof(text), "%s%s", rules, GOD_BLOCK);
	ck_assert_int_eq(test_write_file(path, text, 0644), 0);
}

START_TEST(same_decisions)
{
	const struct corpus *c = &corpora[_i];
	char dir[256], path[400];
	ck_assert_int_eq(test_mkdtemp_readable(dir, sizeof(dir)), 0);
	write_rules(path, sizeof(path), dir, c->name, c->rules);
	struct test_broker builtin, plugin;
	acl_start_builtin(&builtin, path);
	acl_env_start_plugin(&env, &plugin, path, NULL);
	size_t n = count_topics(c);
	int allowed = 0, denied = 0;
	int ports[2] = { builtin.port, plugin.port };
	struct acl_pc god[2];
	for (int k = 0; k < 2; k++)
		ck_assert_int_eq(acl_pc_connect(&god[k], ports[k], "zgod", "zgod"), 0);
	for (size_t k = 0; k < 6 && c->clients[k].id; k++) {
		const struct who *w = &c->clients[k];
		int wr[2][16], rd[2][16];
		observe(ports, god, w, c, wr, rd);
		int *wa = wr[0], *wb = wr[1], *ra = rd[0], *rb = rd[1];
		for (size_t i = 0; i < n; i++) {
			ck_assert_msg(wa[i] == wb[i], "[%s] WRITE %s by id=%s user=%s: builtin %s, plugin %s", c->name,
			              c->topics[i], w->id, w->user ? w->user : "(none)", wa[i] ? "allow" : "deny",
			              wb[i] ? "allow" : "deny");
			ck_assert_msg(ra[i] == rb[i], "[%s] READ %s by id=%s user=%s: builtin %s, plugin %s", c->name,
			              c->topics[i], w->id, w->user ? w->user : "(none)", ra[i] ? "allow" : "deny",
			              rb[i] ? "allow" : "deny");
			allowed += wa[i] + ra[i];
			denied += !wa[i] + !ra[i];
		}
	}
	acl_pc_close(&god[0]);
	acl_pc_close(&god[1]);
	if (c->expect_mixed)
		ck_assert_msg(allowed > 0 && denied > 0, "[%s] degenerate corpus: %d allowed %d denied", c->name, allowed,
		              denied);
	else
		ck_assert_int_eq(allowed, 0);
	test_broker_cleanup(&plugin);
	test_broker_cleanup(&builtin);
	unlink(path);
	rmdir(dir);
}
END_TEST

START_TEST(both_refuse_broken_files)
{
	static const char *broken[] = {
		"topic read a\nfoo bar\n",
		"topic bogus a\n",
		"user\n",
		"topic read a/#/b\n",
		"  # indented comment\n",
	};
	char dir[256], path[400];
	ck_assert_int_eq(test_mkdtemp_readable(dir, sizeof(dir)), 0);
	snprintf(path, sizeof(path), "%s/broken.acl", dir);
	for (size_t i = 0; i < sizeof(broken) / sizeof(broken[0]); i++) {
		ck_assert_int_eq(test_write_file(path, broken[i], 0644), 0);
		struct test_broker b;
		char conf[600];
		snprintf(conf, sizeof(conf), "allow_anonymous true\nacl_file %s\n", path);
		ck_assert_msg(test_broker_start(&b, conf) != 0, "built-in accepted broken file %zu", i);
		test_broker_cleanup(&b);
		snprintf(conf, sizeof(conf), "allow_anonymous true\nplugin %s\nplugin_opt_allow_anonymous true\n"
		                             "plugin_opt_acl_file %s\n", test_plugin_path(), path);
		ck_assert_msg(test_broker_start(&b, conf) != 0, "plugin accepted broken file %zu", i);
		char want[420];
		snprintf(want, sizeof(want), "%s:", path);
		ck_assert(test_broker_log_contains(&b, want));
		test_broker_cleanup(&b);
	}
	unlink(path);
	rmdir(dir);
}
END_TEST

/* PUBACK outcome: 1 accepted, 0 not authorized, -1 anything else. */
static int accepted(int rc)
{
	return (rc >= 0 && rc < 0x80) ? 1 : rc == 0x87 ? 0 : -1;
}

/* The documented differences (docs/ACL.md), each asserted on both brokers. */
START_TEST(documented_differences)
{
	char dir[256], path[400];
	ck_assert_int_eq(test_mkdtemp_readable(dir, sizeof(dir)), 0);
	write_rules(path, sizeof(path), dir, "diff",
	            "user alice\n"
	            "topic read a/#\n"
	            "topic readwrite p/#\n"
	            "pattern deny p/%c/private\n"
	            "pattern readwrite dev-%c/x\n"
	            "pattern readwrite dev/%c/#\n"
	            "user pbob\n"
	            "topic read +/#\n"
	            "user pcarl\n"
	            "topic read #\n"
	            "topic deny +/#\n");
	struct test_broker bi, pl;
	acl_start_builtin(&bi, path);
	acl_env_start_plugin(&env, &pl, path, NULL);
	int ports[2] = { bi.port, pl.port };
	for (int k = 0; k < 2; k++) {
		bool plugin = k == 1;
		struct acl_pc s, god;
		/* 1. SUBSCRIBE wider than the rules: built-in grants and filters at
		 *    delivery, the plugin refuses the subscription. */
		ck_assert_int_eq(acl_pc_connect(&s, ports[k], "alice", "alice"), 0);
		int suback = acl_pc_sub(&s, "#", 1);
		ck_assert_msg(plugin ? suback == 0x87 : suback == 1, "SUBACK %d (plugin=%d)", suback, plugin);
		ck_assert_int_eq(acl_pc_sub(&s, "a/#", 1), 1);
		ck_assert_int_eq(acl_pc_connect(&god, ports[k], "zgod", "zgod"), 0);
		ck_assert_int_eq(accepted(acl_pc_pub(&god, "a/x", "1", 1, 1, 0)), 1);
		ck_assert_int_eq(accepted(acl_pc_pub(&god, "b/x", "2", 1, 1, 0)), 1);
		acl_pc_sync(&s);
		ck_assert_int_eq(acl_pc_count(&s, "a/x"), plugin ? 1 : 2); /* built-in: via '#' and 'a/#' */
		ck_assert_int_eq(acl_pc_count(&s, "b/x"), 0);
		acl_pc_close(&s);
		/* 2. A user's allow against a pattern deny: the deny wins in the plugin. */
		ck_assert_int_eq(acl_pc_connect(&s, ports[k], "auto-c1", "alice"), 0);
		ck_assert_int_eq(accepted(acl_pc_pub(&s, "p/auto-c1/private", "x", 1, 1, 0)), plugin ? 0 : 1);
		ck_assert_int_eq(accepted(acl_pc_pub(&s, "p/auto-c1/public", "x", 1, 1, 0)), 1);
		/* 3. %c inside a level: substituted by the built-in, literal in the plugin. */
		ck_assert_int_eq(accepted(acl_pc_pub(&s, "dev-auto-c1/x", "x", 1, 1, 0)), plugin ? 0 : 1);
		acl_pc_close(&s);
		/* 4. A client id with '/' does not span levels in the plugin. */
		ck_assert_int_eq(acl_pc_connect(&s, ports[k], "auto-a/b", NULL), 0);
		ck_assert_int_eq(accepted(acl_pc_pub(&s, "dev/auto-a/b/x", "x", 1, 1, 0)), plugin ? 0 : 1);
		acl_pc_close(&s);
		ck_assert_int_eq(acl_pc_connect(&s, ports[k], "auto-ab", NULL), 0);
		ck_assert_int_eq(accepted(acl_pc_pub(&s, "dev/auto-ab/x", "x", 1, 1, 0)), 1); /* the same for plain ids */
		acl_pc_close(&s);
		/* 1 again, coverage is exact (issue-17 review): `+/#` matches every
		 * topic `#` matches (`a` too, as its parent level), so it grants
		 * SUBSCRIBE `#` on both; a `deny +/#` covers `#`, so the plugin
		 * refuses it although `read #` is granted. Nothing is delivered to
		 * pcarl by either broker. */
		struct acl_pc c;
		ck_assert_int_eq(acl_pc_connect(&s, ports[k], "pbob", "pbob"), 0);
		ck_assert_int_eq(acl_pc_connect(&c, ports[k], "pcarl", "pcarl"), 0);
		ck_assert_int_eq(acl_pc_sub(&s, "#", 1), 1);
		suback = acl_pc_sub(&c, "#", 1);
		ck_assert_msg(plugin ? suback == 0x87 : suback == 1, "SUBACK %d (plugin=%d)", suback, plugin);
		ck_assert_int_eq(accepted(acl_pc_pub(&god, "a", "1", 1, 1, 0)), 1);
		acl_pc_sync(&s);
		acl_pc_sync(&c);
		ck_assert_int_eq(acl_pc_count(&s, "a"), 1);
		ck_assert_int_eq(acl_pc_count(&c, NULL), 0);
		acl_pc_close(&s);
		acl_pc_close(&c);
		acl_pc_close(&god);
	}
	test_broker_cleanup(&pl);
	test_broker_cleanup(&bi);
	unlink(path);
	rmdir(dir);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("plugin_acl_diff");
	TCase *tc = veil_tcase("diff", 15);
	tcase_add_checked_fixture(tc, env_setup, env_teardown);
	tcase_add_loop_test(tc, same_decisions, 0, (int)(sizeof(corpora) / sizeof(corpora[0])));
	tcase_add_test(tc, both_refuse_broken_files);
	tcase_add_test(tc, documented_differences);
	suite_add_tcase(s, tc);
	return veil_check_run(s);
}
