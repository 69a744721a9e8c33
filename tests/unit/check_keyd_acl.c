/*
 * One table of cases run against both users of the ACL engine (issue 12,
 * "the ACL engine gives keyd and the plugin the same decisions"): the
 * plugin's decision path (vp_acl_view__new + vp_acl__decide, as acl.c
 * calls them for a credential login: username = client id, the
 * credential's roles) and keyd's (keyd/acl.c: kd_acl__view +
 * kd_acl__rights). For a topic, the plugin's READ must be keyd's "reads
 * every topic" and its WRITE keyd's "writes at least one"; for a filter
 * (a scope), the plugin's SUBSCRIBE must be keyd's "reads every topic"
 * (these rules have no subscribe-only grant), except where a deny cuts the
 * scope in part: the plugin grants that subscription and filters at
 * delivery, keyd must not hand out the key for reading (the table says so
 * in keyd_read). keyd's write answer is the plugin's WRITE for a topic and
 * "some topic of the scope" for a filter.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "veil/error.h"
#include "acl.h"
#include "acl_decide.h"
#include "acl_rules.h"

#include "check_run.h"
#include "files.h"
#include "timing.h"

static const char *const RULES[] = {
	/* 0: a fleet: sensors own a subtree, dashboards read it all, an alarm role writes */
	"pattern readwrite,encrypted factory/%c/#\n"
	"pattern read status/%c\n"
	"role dashboard\n"
	"topic read factory/#\n"
	"topic read,signed alarms/#\n"
	"role alarm\n"
	"topic write,signed alarms/#\n"
	"role writer\n"
	"topic write factory/+/cmd\n"
	"user dash-2\n"
	"topic deny factory/sensor-2/#\n",
	/* 1: Mosquitto's own forms: anonymous rules, users, the '$' rule */
	"topic read public/#\n"
	"user ops\n"
	"topic readwrite ops/#\n"
	"topic read #\n"
	"topic deny ops/secret/#\n",
};

static const struct {
	int rules;
	const char *cid, *roles;
	const char *topic; /* a topic, or a filter (a scope) */
	bool read, write;  /* plugin READ/SUBSCRIBE and keyd read_all; plugin WRITE and keyd write_some */
	int keyd_read;     /* -1: as read; else keyd's answer where the plugin's SUBSCRIBE differs */
} CASES[] = {
	{ 0, "sensor-1", "sensor", "factory/sensor-1/temp", true, true, -1 },
	{ 0, "sensor-1", "sensor", "factory/sensor-2/temp", false, false, -1 },
	{ 0, "sensor-1", "sensor", "factory/sensor-1/#", true, true, -1 },
	{ 0, "sensor-1", "sensor", "factory/sensor-2/#", false, false, -1 },
	{ 0, "sensor-1", "sensor", "factory/#", false, true, -1 }, /* it writes its own part */
	{ 0, "sensor-1", "sensor", "status/sensor-1", true, false, -1 },
	{ 0, "sensor-1", "sensor", "alarms/fire", false, false, -1 },
	{ 0, "dash-1", "dashboard", "factory/sensor-2/temp", true, false, -1 },
	{ 0, "dash-1", "dashboard", "factory/sensor-2/#", true, false, -1 },
	{ 0, "dash-1", "dashboard", "factory/#", true, true, -1 }, /* its own factory/dash-1/# */
	{ 0, "dash-1", "dashboard", "alarms/#", true, false, -1 },
	{ 0, "dash-1", "dashboard,alarm", "alarms/#", true, true, -1 },
	{ 0, "dash-2", "dashboard", "factory/sensor-2/#", false, false, -1 }, /* an explicit deny wins */
	{ 0, "dash-2", "dashboard", "factory/sensor-2/temp", false, false, -1 },
	{ 0, "dash-2", "dashboard", "factory/sensor-1/#", true, false, -1 },
	{ 0, "siren", "alarm", "alarms/fire", false, true, -1 },
	{ 0, "siren", "alarm", "alarms/#", false, true, -1 },
	{ 0, "nobody", NULL, "factory/nobody/x", true, true, -1 }, /* its own %c subtree */
	{ 0, "nobody", NULL, "alarms/#", false, false, -1 },
	{ 1, "ops", NULL, "ops/a", true, true, -1 },
	{ 1, "ops", NULL, "ops/secret/k", false, false, -1 },
	{ 1, "ops", NULL, "ops/secret/#", false, false, -1 },
	{ 1, "ops", NULL, "x/y", true, false, -1 },
	{ 1, "ops", NULL, "$SYS/x", false, false, -1 }, /* '#' never reaches a '$' topic */
	{ 1, "dev", NULL, "public/a", false, false, -1 }, /* anonymous rules: a credential login has a username */
	/* A deny cutting a scope in part: the plugin grants the subscription
	 * and filters at delivery; keyd must not hand out the scope's key for
	 * reading (writing some of it still counts). */
	{ 1, "ops", NULL, "ops/#", true, true, 0 },
	{ 1, "ops", NULL, "#", true, true, 0 },
	/* Write rights on part of a scope: keyd grants (may send), never for reading. */
	{ 0, "w1", "writer", "factory/sensor-1/cmd", false, true, -1 },
	{ 0, "w1", "writer", "factory/sensor-1/#", false, true, -1 },
	{ 0, "w1", "writer", "factory/sensor-1/temp", false, false, -1 },
	{ 0, "w1", "writer", "alarms/#", false, false, -1 },
};

static bool is_filter(const char *t)
{
	return strpbrk(t, "+#") != NULL;
}

START_TEST(same_decisions)
{
	char dir[256], path[300], err[256];
	ck_assert_int_eq(test_mkdtemp(dir, sizeof(dir)), 0);
	struct kd_acl *ka[2];
	struct vp_acl_rules *pr[2];
	for (int i = 0; i < 2; i++) {
		snprintf(path, sizeof(path), "%s/acl%d", dir, i);
		ck_assert_int_eq(test_write_file(path, RULES[i], 0644), 0);
		ck_assert_msg(kd_acl__load(path, &ka[i], err, sizeof(err)) == VEIL_OK, "%s", err);
		ck_assert_msg(vp_acl_rules__load(path, VP_ACL_DEFAULT_MAX_BYTES, &pr[i], err, sizeof(err)) == VEIL_OK, "%s",
		              err);
	}
	for (size_t i = 0; i < sizeof(CASES) / sizeof(CASES[0]); i++) {
		int r = CASES[i].rules;
		/* The plugin, as acl.c asks for a credential login. */
		struct vp_acl_who pw = { CASES[i].cid, CASES[i].cid, CASES[i].roles };
		struct vp_acl_view *view = vp_acl_view__new(pr[r], &pw, 1);
		ck_assert_ptr_nonnull(view);
		struct vp_acl_result rd, wr;
		bool filter = is_filter(CASES[i].topic);
		vp_acl__decide(pr[r], view, &pw, filter ? VP_ACC_SUBSCRIBE : VP_ACC_READ, CASES[i].topic, &rd);
		free(view);
		ck_assert_msg(rd.allowed == CASES[i].read, "case %zu: plugin %s %s by %s: %d", i,
		              filter ? "SUBSCRIBE" : "READ", CASES[i].topic, CASES[i].cid, rd.allowed);
		if (!filter) {
			view = vp_acl_view__new(pr[r], &pw, 1);
			vp_acl__decide(pr[r], view, &pw, VP_ACC_WRITE, CASES[i].topic, &wr);
			free(view);
			ck_assert_msg(wr.allowed == CASES[i].write, "case %zu: plugin WRITE %s by %s: %d", i, CASES[i].topic,
			              CASES[i].cid, wr.allowed);
		}
		/* keyd. */
		struct kd_who kw = { CASES[i].cid, CASES[i].roles };
		struct kd_acl_view *kv = kd_acl__view(ka[r], &kw);
		ck_assert_ptr_nonnull(kv);
		struct kd_rights rights;
		kd_acl__rights(kv, CASES[i].topic, &rights);
		kd_acl__view_free(&kv);
		bool kread = CASES[i].keyd_read < 0 ? CASES[i].read : CASES[i].keyd_read != 0;
		ck_assert_msg(rights.read_all == kread, "case %zu: keyd read_all %s by %s: %d", i, CASES[i].topic,
		              CASES[i].cid, rights.read_all);
		ck_assert_msg(rights.write_some == CASES[i].write, "case %zu: keyd write_some %s by %s: %d", i,
		              CASES[i].topic, CASES[i].cid, rights.write_some);
	}
	for (int i = 0; i < 2; i++) {
		kd_acl__free(&ka[i]);
		vp_acl_rules__free(&pr[i]);
	}
	ck_assert_int_eq(test_rmtree(dir), 0);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("keyd_acl");
	TCase *tc = veil_tcase("keyd_acl", 5);
	tcase_add_test(tc, same_decisions);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return veil_check_run(suite());
}
