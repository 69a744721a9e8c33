/*
 * Tests for plugin/veil_topics.c: Veil's own topics as the plugin protects
 * them (docs/PROTOCOL.md section 10) and the admin API's
 * (docs/OPERATIONS.md), whatever the rules file says. One
 * table: who (client id, credential, roles), access, topic or filter,
 * payload length and retain, and the verdict. A second table: a declared
 * bridge, which carries Veil's topics for everyone (the payloads it
 * writes are then verified, bridge.c: which kind and client id).
 */
#include <check.h>
#include <string.h>

#include "topic.h"
#include "veil_topics.h"

#include "check_run.h"
#include "timing.h"

#define R VP_ACC_READ
#define W VP_ACC_WRITE
#define S VP_ACC_SUBSCRIBE
#define NV VP_VTOPIC_NOT_VEIL
#define OK VP_VTOPIC_ALLOW
#define NO VP_VTOPIC_DENY

static const struct vp_vtopic_who KEYD = { "veil-keyd", true, "veil-keyd", NULL };
static const struct vp_vtopic_who KEYD_OTHER_ROLES = { "keyd-2", true, "ops,veil-keyd", NULL };
static const struct vp_vtopic_who S1 = { "sensor-1", true, "sensor", NULL };
static const struct vp_vtopic_who S1_PASSWORD = { "sensor-1", false, NULL, NULL }; /* password login */
static const struct vp_vtopic_who S2 = { "sensor-2", true, "sensor", NULL };
static const struct vp_vtopic_who FAKE = { "veil-keyd", false, "veil-keyd", NULL }; /* roles without a credential */
static const struct vp_vtopic_who PREFIX = { "x", true, "veil-keyd-2,aveil-keyd", NULL };
/* The admin API: the role named by plugin_opt_admin_role, on a credential. */
static const struct vp_vtopic_who ADMIN = { "ops-1", true, "ops,veil-admin", "veil-admin" };
static const struct vp_vtopic_who ADMIN_RENAMED = { "ops-2", true, "root", "root" };
static const struct vp_vtopic_who NOT_ADMIN = { "sensor-1", true, "sensor", "veil-admin" };
static const struct vp_vtopic_who ADMIN_PASSWORD = { "veil-admin", false, "veil-admin", "veil-admin" };
static const struct vp_vtopic_who ADMIN_NO_ROLE_SET = { "ops-1", true, "veil-admin", NULL };
static const struct vp_vtopic_who ADMIN_PREFIX = { "ops-3", true, "veil-admin2,xveil-admin", "veil-admin" };

static const struct {
	const struct vp_vtopic_who *w;
	unsigned access;
	const char *topic;
	size_t len;
	bool retain;
	enum vp_vtopic want;
	const char *why;
} CASES[] = {
	/* Not Veil's: the rules decide. */
	{ &S1, W, "factory/sensor-1/t", 10, false, NV, NULL },
	{ &S1, S, "#", 0, false, NV, NULL },
	{ &S1, S, "+/v1/req/+", 0, false, NV, NULL },
	{ &S1, W, "$veilx/a", 1, false, NV, NULL },
	{ &S1, S, "$share/g/factory/#", 0, false, NV, NULL },
	/* Requests: the device itself writes, keyd reads. */
	{ &S1, W, "$veil/v1/req/sensor-1", 200, false, OK, NULL },
	{ &S1, W, "$veil/v1/req/sensor-2", 200, false, NO, "veil-topic-not-own-request" },
	{ &S1_PASSWORD, W, "$veil/v1/req/sensor-1", 200, false, NO, "veil-topic-not-own-request" },
	/* The relay's records are the nodes' alone (relay.h): no client, not
	 * even keyd or an admin, writes or reads one. */
	{ &S1, W, "$veil/v1/revoked/client/73656e736f722d32", 15, true, NO, "veil-topic" },
	{ &KEYD, W, "$veil/v1/revoked/credential/00112233445566778899aabbccddeeff", 43, true, NO, "veil-topic" },
	{ &ADMIN, W, "$veil/v1/revoked/client/73656e736f722d32", 15, true, NO, "veil-topic" },
	{ &S1, R, "$veil/v1/revoked/client/73656e736f722d32", 15, true, NO, "veil-topic" },
	{ &KEYD, R, "$veil/v1/revoked/client/73656e736f722d32", 15, true, NO, "veil-topic" },
	{ &S1, W, "$veil/v1/req/sensor-1", 200, true, NO, "veil-topic-retained-request" },
	{ &S1, W, "$veil/v1/req/sensor-1", 0, true, NO, "veil-topic-empty-retained" },
	{ &S1, W, "$veil/v1/req/sensor-1/x", 200, false, NO, "veil-topic" },
	{ &KEYD, R, "$veil/v1/req/sensor-1", 0, false, OK, NULL },
	{ &KEYD_OTHER_ROLES, R, "$veil/v1/req/sensor-1", 0, false, OK, NULL },
	{ &S2, R, "$veil/v1/req/sensor-1", 0, false, NO, "veil-topic-keyd-only" },
	{ &FAKE, R, "$veil/v1/req/sensor-1", 0, false, NO, "veil-topic-keyd-only" },
	{ &PREFIX, R, "$veil/v1/req/sensor-1", 0, false, NO, "veil-topic-keyd-only" },
	{ &KEYD, S, "$veil/v1/req/+", 0, false, OK, NULL },
	{ &KEYD, S, "$share/keyd/$veil/v1/req/+", 0, false, OK, NULL },
	{ &KEYD, S, "$veil/v1/req/#", 0, false, OK, NULL },
	{ &S1, S, "$veil/v1/req/+", 0, false, NO, "veil-topic-keyd-only" },
	{ &S1, S, "$veil/v1/req/sensor-1", 0, false, NO, "veil-topic-keyd-only" },
	/* Bundles: keyd writes, only the addressed device reads. */
	{ &KEYD, W, "$veil/v1/bundle/sensor-1", 900, true, OK, NULL },
	{ &KEYD, W, "$veil/v1/bundle/sensor-1", 0, true, NO, "veil-topic-empty-retained" },
	{ &S1, W, "$veil/v1/bundle/sensor-1", 900, true, NO, "veil-topic-keyd-only" },
	{ &FAKE, W, "$veil/v1/bundle/sensor-1", 900, true, NO, "veil-topic-keyd-only" },
	{ &S1, R, "$veil/v1/bundle/sensor-1", 0, false, OK, NULL },
	{ &S2, R, "$veil/v1/bundle/sensor-1", 0, false, NO, "veil-topic-not-own-bundle" },
	{ &KEYD, R, "$veil/v1/bundle/sensor-1", 0, false, NO, "veil-topic-not-own-bundle" },
	{ &S1, S, "$veil/v1/bundle/sensor-1", 0, false, OK, NULL },
	{ &S1_PASSWORD, S, "$veil/v1/bundle/sensor-1", 0, false, OK, NULL }, /* it opens nothing without its key */
	{ &S2, S, "$veil/v1/bundle/sensor-1", 0, false, NO, "veil-topic-not-own-bundle" },
	{ &S1, S, "$veil/v1/bundle/+", 0, false, NO, "veil-topic" },
	{ &KEYD, S, "$veil/v1/bundle/#", 0, false, NO, "veil-topic" },
	/* The revocation statement: keyd writes, anyone reads. */
	{ &KEYD, W, "$veil/v1/revocation", 500, true, OK, NULL },
	{ &KEYD, W, "$veil/v1/revocation", 0, true, NO, "veil-topic-empty-retained" },
	{ &S1, W, "$veil/v1/revocation", 500, true, NO, "veil-topic-keyd-only" },
	{ &S1_PASSWORD, R, "$veil/v1/revocation", 0, false, OK, NULL },
	{ &S1, S, "$veil/v1/revocation", 0, false, OK, NULL },
	/* Anything else under $veil, or a filter reaching other devices' topics. */
	{ &KEYD, W, "$veil/v2/other", 1, false, NO, "veil-topic" },
	{ &KEYD, W, "$veil", 1, false, NO, "veil-topic" },
	{ &KEYD, S, "$veil/#", 0, false, NO, "veil-topic" },
	{ &S1, S, "$veil/+/bundle/sensor-1", 0, false, NO, "veil-topic" },
	{ &S1, R, "$veil/v1/other", 0, false, NO, "veil-topic" },
	/* The admin API: commands in and responses out, the admin role only. */
	{ &ADMIN, W, "$CONTROL/veil/v1", 40, false, OK, NULL },
	{ &ADMIN_RENAMED, W, "$CONTROL/veil/v1", 40, false, OK, NULL },
	{ &NOT_ADMIN, W, "$CONTROL/veil/v1", 40, false, NO, "veil-control-admin-only" },
	{ &ADMIN_PASSWORD, W, "$CONTROL/veil/v1", 40, false, NO, "veil-control-admin-only" },
	{ &ADMIN_NO_ROLE_SET, W, "$CONTROL/veil/v1", 40, false, NO, "veil-control-admin-only" },
	{ &ADMIN_PREFIX, W, "$CONTROL/veil/v1", 40, false, NO, "veil-control-admin-only" },
	{ &KEYD, W, "$CONTROL/veil/v1", 40, false, NO, "veil-control-admin-only" },
	{ &ADMIN, R, "$CONTROL/veil/v1/response", 0, false, OK, NULL },
	{ &NOT_ADMIN, R, "$CONTROL/veil/v1/response", 0, false, NO, "veil-control-admin-only" },
	{ &ADMIN_PASSWORD, R, "$CONTROL/veil/v1/response", 0, false, NO, "veil-control-admin-only" },
	{ &ADMIN, S, "$CONTROL/veil/v1/response", 0, false, OK, NULL },
	{ &ADMIN, S, "$CONTROL/veil/#", 0, false, OK, NULL },
	{ &ADMIN, S, "$share/ops/$CONTROL/veil/v1/response", 0, false, OK, NULL },
	{ &NOT_ADMIN, S, "$CONTROL/veil/v1/response", 0, false, NO, "veil-control-admin-only" },
	{ &NOT_ADMIN, S, "$CONTROL/veil/#", 0, false, NO, "veil-control-admin-only" },
	{ &ADMIN_PASSWORD, S, "$CONTROL/veil/v1/+", 0, false, NO, "veil-control-admin-only" },
	/* Nobody writes the responses (the plugin's publications skip this check),
	 * nor anything else there; requests are never delivered. */
	{ &ADMIN, W, "$CONTROL/veil/v1/response", 40, false, NO, "veil-control" },
	{ &ADMIN, W, "$CONTROL/veil/v2", 40, false, NO, "veil-control" },
	{ &ADMIN, W, "$CONTROL/veil", 40, false, NO, "veil-control" },
	{ &ADMIN, R, "$CONTROL/veil/v1", 0, false, NO, "veil-control" },
	/* Other $CONTROL topics (dynamic security) and wider filters: the rules
	 * decide; READ of Veil's response topic is checked per message above. */
	{ &NOT_ADMIN, W, "$CONTROL/dynamic-security/v1", 40, false, NV, NULL },
	{ &NOT_ADMIN, W, "$CONTROL/veilx/v1", 40, false, NV, NULL },
	{ &NOT_ADMIN, S, "$CONTROL/#", 0, false, NV, NULL },
	{ &NOT_ADMIN, S, "$CONTROL/+/v1/response", 0, false, NV, NULL },
};

START_TEST(table)
{
	for (size_t i = 0; i < sizeof(CASES) / sizeof(CASES[0]); i++) {
		const char *why = "unset";
		enum vp_vtopic got =
			vp_vtopic__decide(CASES[i].w, CASES[i].access, CASES[i].topic, CASES[i].len, CASES[i].retain, &why);
		ck_assert_msg(got == CASES[i].want, "case %zu (%s on %s by %s): got %d, want %d", i,
		              CASES[i].access == R ? "read" : CASES[i].access == W ? "write" : "subscribe",
		              CASES[i].topic, CASES[i].w->client_id, got, CASES[i].want);
		if (CASES[i].why)
			ck_assert_str_eq(why, CASES[i].why);
		else
			ck_assert_ptr_null(why);
	}
}
END_TEST

static const struct {
	unsigned access;
	const char *topic;
	size_t len;
	bool retain;
	enum vp_vtopic want;
	enum vp_vkind kind;
	const char *level;
	const char *why;
} BRIDGE[] = {
	{ W, "factory/sensor-1/t", 10, true, NV, VP_VKIND_NONE, NULL, NULL },
	{ S, "#", 0, false, NV, VP_VKIND_NONE, NULL, NULL },
	/* Any filter under $veil: forwarding Veil's topics between nodes. */
	{ S, "$veil/#", 0, false, OK, VP_VKIND_NONE, NULL, NULL },
	{ S, "$veil/v1/bundle/+", 0, false, OK, VP_VKIND_NONE, NULL, NULL },
	{ S, "$share/g/$veil/v1/req/+", 0, false, OK, VP_VKIND_NONE, NULL, NULL },
	{ R, "$veil/v1/req/sensor-1", 0, false, OK, VP_VKIND_NONE, NULL, NULL },
	{ R, "$veil/v1/bundle/sensor-1", 0, true, OK, VP_VKIND_NONE, NULL, NULL },
	{ R, "$veil/v1/revocation", 0, true, OK, VP_VKIND_NONE, NULL, NULL },
	{ R, "$veil/v1/other", 0, false, NO, VP_VKIND_NONE, NULL, "veil-topic" },
	/* Writes: allowed as a kind whose payload the caller verifies. */
	{ W, "$veil/v1/req/sensor-1", 200, false, OK, VP_VKIND_REQUEST, "sensor-1", NULL },
	{ W, "$veil/v1/bundle/sensor-1", 500, true, OK, VP_VKIND_BUNDLE, "sensor-1", NULL },
	{ W, "$veil/v1/revocation", 300, true, OK, VP_VKIND_REVOCATION, NULL, NULL },
	{ W, "$veil/v1/req/sensor-1", 200, true, NO, VP_VKIND_NONE, NULL, "veil-topic-retained-request" },
	{ W, "$veil/v1/bundle/sensor-1", 0, true, NO, VP_VKIND_NONE, NULL, "veil-topic-empty-retained" },
	{ W, "$veil/v1/revocation", 0, true, NO, VP_VKIND_NONE, NULL, "veil-topic-empty-retained" },
	{ W, "$veil/v1/bundle/sensor-1/x", 9, false, NO, VP_VKIND_NONE, NULL, "veil-topic" },
	{ W, "$veil/v2/anything", 9, false, NO, VP_VKIND_NONE, NULL, "veil-topic" },
	/* The relay's records (relay.h): retained, the level after the prefix
	 * checked by the caller; an empty retained one (cleared on its node)
	 * needs no check; never a malformed topic. */
	{ W, "$veil/v1/revoked/credential/00112233445566778899aabbccddeeff", 43, true, OK, VP_VKIND_RELAY,
	  "credential/00112233445566778899aabbccddeeff", NULL },
	{ W, "$veil/v1/revoked/client/6c6f7374", 11, true, OK, VP_VKIND_RELAY, "client/6c6f7374", NULL },
	{ W, "$veil/v1/revoked/client/6c6f7374", 0, true, OK, VP_VKIND_NONE, NULL, NULL },
	{ W, "$veil/v1/revoked/client/6c6f7374", 11, false, NO, VP_VKIND_NONE, NULL, "veil-topic-relay-not-retained" },
	{ R, "$veil/v1/revoked/client/6c6f7374", 11, true, OK, VP_VKIND_NONE, NULL, NULL },
	{ W, "$veil/v1/revoked/client/6C6F7374", 11, true, NO, VP_VKIND_NONE, NULL, "veil-topic" },
	{ W, "$veil/v1/revoked/client/", 11, true, NO, VP_VKIND_NONE, NULL, "veil-topic" },
	{ W, "$veil/v1/revoked/client/6c/6f", 11, true, NO, VP_VKIND_NONE, NULL, "veil-topic" },
	{ W, "$veil/v1/revoked/other/6c6f", 11, true, NO, VP_VKIND_NONE, NULL, "veil-topic" },
	{ W, "$veil/v1/revoked/", 11, true, NO, VP_VKIND_NONE, NULL, "veil-topic" },
	/* The admin API stays node-local: a bridge is not an admin. */
	{ W, "$CONTROL/veil/v1", 40, false, NO, VP_VKIND_NONE, NULL, "veil-control-admin-only" },
	{ S, "$CONTROL/veil/#", 0, false, NO, VP_VKIND_NONE, NULL, "veil-control-admin-only" },
	{ R, "$CONTROL/veil/v1/response", 0, false, NO, VP_VKIND_NONE, NULL, "veil-control-admin-only" },
};

START_TEST(bridge_table)
{
	for (size_t i = 0; i < sizeof(BRIDGE) / sizeof(BRIDGE[0]); i++) {
		const char *why = "unset", *level = "unset";
		enum vp_vkind kind = (enum vp_vkind)99;
		enum vp_vtopic got = vp_vtopic__bridge(BRIDGE[i].access, BRIDGE[i].topic, BRIDGE[i].len, BRIDGE[i].retain,
		                                       &kind, &level, &why);
		ck_assert_msg(got == BRIDGE[i].want && kind == BRIDGE[i].kind, "case %zu (%s): got %d/%d, want %d/%d", i,
		              BRIDGE[i].topic, got, kind, BRIDGE[i].want, BRIDGE[i].kind);
		if (BRIDGE[i].level)
			ck_assert_str_eq(level, BRIDGE[i].level);
		else
			ck_assert_ptr_null(level);
		if (BRIDGE[i].why)
			ck_assert_str_eq(why, BRIDGE[i].why);
		else
			ck_assert_ptr_null(why);
	}
	enum vp_vkind kind;
	const char *level;
	ck_assert_int_eq(vp_vtopic__bridge(W, NULL, 1, false, &kind, &level, NULL), VP_VTOPIC_DENY);
	ck_assert_int_eq(vp_vtopic__bridge(0x40, "$veil/v1/revocation", 1, false, &kind, &level, NULL), VP_VTOPIC_DENY);
}
END_TEST

START_TEST(bad_input)
{
	ck_assert_int_eq(vp_vtopic__decide(NULL, W, "$veil/v1/revocation", 1, false, NULL), VP_VTOPIC_DENY);
	ck_assert_int_eq(vp_vtopic__decide(&KEYD, W, NULL, 1, false, NULL), VP_VTOPIC_DENY);
	ck_assert_int_eq(vp_vtopic__decide(&KEYD, 0x40, "$veil/v1/revocation", 1, false, NULL), VP_VTOPIC_DENY);
	struct vp_vtopic_who anon = { NULL, false, NULL, "veil-admin" };
	ck_assert_int_eq(vp_vtopic__decide(&anon, R, "$veil/v1/bundle/x", 0, false, NULL), VP_VTOPIC_DENY);
	ck_assert_int_eq(vp_vtopic__decide(&anon, R, "$veil/v1/revocation", 0, false, NULL), VP_VTOPIC_ALLOW);
	ck_assert_int_eq(vp_vtopic__decide(&anon, W, "$CONTROL/veil/v1", 9, false, NULL), VP_VTOPIC_DENY);
	ck_assert(!vp_vtopic__has_role(NULL, "veil-admin"));
	ck_assert(!vp_vtopic__has_role("veil-admin", NULL));
	ck_assert(!vp_vtopic__has_role("", "veil-admin"));
	ck_assert(vp_vtopic__has_role("a,veil-admin,b", "veil-admin"));
	ck_assert(!vp_vtopic__has_role("a,veil-admin-x", "veil-admin"));
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("veil_topics");
	TCase *tc = veil_tcase("veil_topics", 2);
	tcase_add_test(tc, table);
	tcase_add_test(tc, bad_input);
	tcase_add_test(tc, bridge_table);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return veil_check_run(suite());
}
