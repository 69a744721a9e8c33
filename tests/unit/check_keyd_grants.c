/*
 * Tests for keyd/grants.c and keyd/acl.c with real ACL files (docs/ACL.md
 * syntax, parsed by the one ACL engine): per-device scopes (%c), a reader
 * of every device's scope, roles, an explicit deny, protection attributes
 * turned into the signed flag, may-send only with write rights, removing
 * rights, and the grant lists a bundle carries (every granted epoch, in
 * key-id order, "news" only when something is missing).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "veil/error.h"
#include "acl.h"
#include "grants.h"

#include "check_run.h"
#include "files.h"
#include "timing.h"

#define T0 1700000000ULL

static char dir[256], dbpath[300], aclpath[300];
static struct kd_store *st;
static struct kd_epochs E;
static struct kd_acl *acl;
static struct kd_scope_conf scopes[2] = {
	{ .filter = "factory/%c/#", .per_device = true, .period = 3600, .lead = 300, .grace = 600, .depth = 1 },
	{ .filter = "alarms/#", .period = 600, .lead = 120, .grace = 120, .depth = 0 },
};
static struct kd_config cfg = { .scopes = scopes, .n_scopes = 2 };

static const char *ACL =
	"# sensors: their own subtree, encrypted\n"
	"pattern readwrite,encrypted factory/%c/#\n"
	"role dashboard\n"
	"topic read factory/#\n"
	"topic read,signed alarms/#\n"
	"role alarm\n"
	"topic write,signed alarms/#\n"
	"user dash-2\n"
	"topic deny factory/sensor-2/#\n";

static void load_acl(const char *text)
{
	ck_assert_int_eq(test_write_file(aclpath, text, 0644), 0);
	kd_acl__free(&acl);
	char err[256] = "";
	ck_assert_msg(kd_acl__load(aclpath, &acl, err, sizeof(err)) == VEIL_OK, "acl: %s", err);
}

static void check_inst(struct kd_inst *in)
{
	uint8_t attrs;
	in->usable = kd_acl__attrs(acl, in->filter, in->owner[0] ? in->owner : NULL, &attrs);
	in->attrs = attrs;
}

static struct kd_inst *inst(int scope, const char *owner)
{
	struct kd_inst *in = NULL;
	size_t added;
	ck_assert_int_eq(kd_store__begin(st), VEIL_OK);
	ck_assert_int_eq(kd_epochs__instance(&E, st, &scopes[scope], owner, T0, &in), VEIL_OK);
	ck_assert_int_eq(kd_epochs__advance(&E, st, in, &scopes[scope], T0, &added), VEIL_OK);
	ck_assert_int_eq(kd_store__commit(st), VEIL_OK);
	check_inst(in);
	return in;
}

static void setup(void)
{
	ck_assert_int_eq(test_mkdtemp(dir, sizeof(dir)), 0);
	snprintf(dbpath, sizeof(dbpath), "%s/keyd.db", dir);
	snprintf(aclpath, sizeof(aclpath), "%s/veil.acl", dir);
	uint8_t skey[KD_STORAGE_KEY_BYTES];
	randombytes_buf(skey, sizeof(skey));
	char err[256];
	static uint8_t key[KD_STORAGE_KEY_BYTES];
	memcpy(key, skey, sizeof(key));
	ck_assert_int_eq(kd_store__open(dbpath, key, true, &st, err, sizeof(err)), VEIL_OK);
	ck_assert_int_eq(kd_epochs__load(&E, st), VEIL_OK);
	load_acl(ACL);
	inst(0, "sensor-1");
	inst(0, "sensor-2");
	inst(1, NULL);
}

static void teardown(void)
{
	kd_acl__free(&acl);
	kd_epochs__free(&E);
	kd_store__close(&st);
	test_rmtree(dir);
}

/* The entitlement of client id / roles to filter: 0 none, else the flags
 * (+ 0x80 when granted by write alone). */
static int ent(const char *cid, const char *roles, const char *filter)
{
	struct kd_who w = { cid, roles };
	struct kd_ent *e = NULL;
	size_t n = 0;
	ck_assert_int_eq(kd_grants__entitle(&E, acl, &w, 0, &e, &n), VEIL_OK);
	int r = 0;
	for (size_t i = 0; i < n; i++)
		if (!strcmp(e[i].in->filter, filter))
			r = 0x100 | e[i].flags | (e[i].write_only ? 0x80 : 0);
	free(e);
	return r;
}

START_TEST(attributes)
{
	struct kd_inst *in = kd_epochs__find(&E, "factory/sensor-1/#");
	ck_assert(in->usable);
	ck_assert_uint_eq(in->attrs, KD_ATTR_ENCRYPTED);
	in = kd_epochs__find(&E, "alarms/#");
	ck_assert(in->usable);
	ck_assert_uint_eq(in->attrs, KD_ATTR_SIGNED | KD_ATTR_ENCRYPTED); /* signed implies encrypted */
}
END_TEST

START_TEST(who_gets_what)
{
	/* A sensor: its own scope, may send; not another sensor's, no alarms. */
	ck_assert_int_eq(ent("sensor-1", "sensor", "factory/sensor-1/#"), 0x100 | VEIL__GRANT_MAY_SEND);
	ck_assert_int_eq(ent("sensor-1", "sensor", "factory/sensor-2/#"), 0);
	ck_assert_int_eq(ent("sensor-1", "sensor", "alarms/#"), 0);
	/* A dashboard reads every sensor's scope (no send), alarms signed. */
	ck_assert_int_eq(ent("dash-1", "dashboard", "factory/sensor-1/#"), 0x100);
	ck_assert_int_eq(ent("dash-1", "dashboard", "factory/sensor-2/#"), 0x100);
	ck_assert_int_eq(ent("dash-1", "dashboard", "alarms/#"), 0x100 | VEIL__GRANT_SIGNED);
	/* An explicit deny wins: dash-2 cannot read sensor-2, so no key. */
	ck_assert_int_eq(ent("dash-2", "dashboard", "factory/sensor-2/#"), 0);
	ck_assert_int_eq(ent("dash-2", "dashboard", "factory/sensor-1/#"), 0x100);
	/* Write without read of the whole scope: granted, may send, audited. */
	ck_assert_int_eq(ent("siren", "alarm", "alarms/#"),
	                 0x100 | 0x80 | VEIL__GRANT_MAY_SEND | VEIL__GRANT_SIGNED);
	/* No role, no rights. */
	ck_assert_int_eq(ent("nobody", NULL, "alarms/#"), 0);
	ck_assert_int_eq(ent("nobody", NULL, "factory/sensor-1/#"), 0);
}
END_TEST

START_TEST(removing_rights)
{
	ck_assert_int_eq(ent("dash-1", "dashboard", "factory/sensor-1/#"), 0x100);
	load_acl("pattern readwrite,encrypted factory/%c/#\nrole alarm\ntopic write,signed alarms/#\n");
	ck_assert_int_eq(ent("dash-1", "dashboard", "factory/sensor-1/#"), 0);
	ck_assert_int_eq(ent("dash-1", "dashboard", "alarms/#"), 0);
	ck_assert_int_eq(ent("sensor-1", NULL, "factory/sensor-1/#"), 0x100 | VEIL__GRANT_MAY_SEND);
	/* Attributes follow the file too: alarms no longer has a reader rule,
	 * its protection comes from the writer's rule. */
	check_inst(kd_epochs__find(&E, "alarms/#"));
	ck_assert_uint_eq(kd_epochs__find(&E, "alarms/#")->attrs, KD_ATTR_SIGNED | KD_ATTR_ENCRYPTED);
}
END_TEST

START_TEST(collect_and_news)
{
	struct kd_who w = { "dash-1", "dashboard" };
	struct kd_ent *e = NULL;
	size_t n = 0;
	ck_assert_int_eq(kd_grants__entitle(&E, acl, &w, 0, &e, &n), VEIL_OK);
	ck_assert_uint_eq(n, 3);
	struct veil__grants *g;
	struct kd_grant_ref *refs;
	ck_assert_int_eq(kd_grants__collect(e, n, &cfg, T0, &g, &refs), VEIL_OK);
	/* factory: 2 epochs (depth 1) per sensor; alarms: 1 (depth 0). */
	ck_assert_uint_eq(g->n, 5);
	for (size_t i = 0; i + 1 < g->n; i++)
		ck_assert_uint_lt(refs[i].key_id, refs[i + 1].key_id);
	for (size_t i = 0; i < g->n; i++) {
		struct kd_inst *in = kd_epochs__find(&E, g->g[i].scope);
		ck_assert_ptr_nonnull(in);
		bool found = false;
		for (size_t k = 0; k < in->n; k++) {
			if (in->ep[k].key_id == g->g[i].key_id) {
				found = true;
				ck_assert_mem_eq(in->ep[k].key, g->g[i].key, VEIL_KEY_BYTES);
				ck_assert_uint_eq(in->ep[k].send_from, g->g[i].send_from);
				ck_assert_uint_eq(in->ep[k].accept_until, g->g[i].accept_until);
			}
		}
		ck_assert(found);
		ck_assert_uint_eq(g->g[i].flags & VEIL__GRANT_MAY_SEND, 0);
	}
	/* Same set: nothing new; a missing key or changed flags: news. */
	ck_assert(!kd_grants__news(refs, g->n, refs, g->n));
	ck_assert(kd_grants__news(refs, g->n, refs, g->n - 1));
	ck_assert(!kd_grants__news(refs, g->n - 1, refs, g->n)); /* an expired grant is not news */
	struct kd_grant_ref other[5];
	memcpy(other, refs, sizeof(other));
	other[2].flags ^= VEIL__GRANT_MAY_SEND;
	ck_assert(kd_grants__news(refs, g->n, other, 5));
	ck_assert(kd_grants__news(refs, g->n, NULL, 0));
	veil__grants_free(&g);
	ck_assert_ptr_null(g);
	free(refs);
	/* An hour later the first epochs are past send_until but accepted;
	 * past accept_until they are no longer granted. */
	ck_assert_int_eq(kd_grants__collect(e, n, &cfg, T0 + 3600 + 599, &g, &refs), VEIL_OK);
	size_t at_accept = g->n;
	veil__grants_free(&g);
	free(refs);
	ck_assert_int_eq(kd_grants__collect(e, n, &cfg, T0 + 3600 + 600, &g, &refs), VEIL_OK);
	ck_assert_uint_lt(g->n, at_accept);
	veil__grants_free(&g);
	free(refs);
	free(e);
}
END_TEST

START_TEST(incremental)
{
	/* Entitlements for the instances that came after since_seq only,
	 * appended: a joining device costs the others one question each. */
	struct kd_who w = { "dash-1", "dashboard" };
	struct kd_ent *e = NULL;
	size_t n = 0;
	ck_assert_int_eq(kd_grants__entitle(&E, acl, &w, 0, &e, &n), VEIL_OK);
	ck_assert_uint_eq(n, 3);
	uint64_t seen = E.inst_gen;
	ck_assert_int_eq(kd_grants__entitle(&E, acl, &w, seen, &e, &n), VEIL_OK);
	ck_assert_uint_eq(n, 3);
	struct kd_inst *s3 = inst(0, "sensor-3");
	ck_assert_uint_eq(s3->seq, seen + 1);
	ck_assert_int_eq(kd_grants__entitle(&E, acl, &w, seen, &e, &n), VEIL_OK);
	ck_assert_uint_eq(n, 4);
	ck_assert_ptr_eq(e[3].in, s3);
	free(e);
}
END_TEST

START_TEST(straddle)
{
	/* A scope whose topics carry different protection is refused; one
	 * inside a protected subtree takes its attributes. */
	load_acl("topic read,encrypted status/a/#\ntopic read status/#\npattern write,signed dev/%c/out\n");
	uint8_t attrs = 0xff;
	ck_assert(!kd_acl__attrs(acl, "status/#", NULL, &attrs));
	ck_assert(kd_acl__attrs(acl, "status/a/#", NULL, &attrs));
	ck_assert_uint_eq(attrs, KD_ATTR_ENCRYPTED);
	ck_assert(kd_acl__attrs(acl, "status/b/#", NULL, &attrs));
	ck_assert_uint_eq(attrs, 0);
	/* A pattern's protection is the topic's, whoever's instance it is
	 * (docs/ACL.md, "Protected topics"). */
	ck_assert(!kd_acl__attrs(acl, "dev/s1/#", "s1", &attrs)); /* dev/s1/out signed, the rest not */
	ck_assert(kd_acl__attrs(acl, "dev/s1/out", "s1", &attrs));
	ck_assert_uint_eq(attrs, KD_ATTR_SIGNED | KD_ATTR_ENCRYPTED);
	ck_assert(!kd_acl__attrs(acl, "dev/s2/#", "s1", &attrs));
	ck_assert(kd_acl__attrs(acl, "dev/s2/out", "s1", &attrs));
	ck_assert_uint_eq(attrs, KD_ATTR_SIGNED | KD_ATTR_ENCRYPTED);
	ck_assert(kd_acl__attrs(acl, "dev/s2/in", "s1", &attrs));
	ck_assert_uint_eq(attrs, 0);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("keyd_grants");
	TCase *tc = veil_tcase("keyd_grants", 10);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, attributes);
	tcase_add_test(tc, who_gets_what);
	tcase_add_test(tc, removing_rights);
	tcase_add_test(tc, collect_and_news);
	tcase_add_test(tc, incremental);
	tcase_add_test(tc, straddle);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return veil_check_run(suite());
}
