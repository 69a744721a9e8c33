/* Tests for plugin/clients.c: the per-client registry, parked offline
 * sessions, takeover and bounds. Client pointers are opaque keys here. */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "plugin_private.h"
#include "check_run.h"
#include "timing.h"

static int freed;
static void cache_free(void *p)
{
	free(p);
	freed++;
}

#define MOSQ(n) ((const struct mosquitto *)(uintptr_t)(0x1000 + (n) * 64))

START_TEST(test_put_get_remove)
{
	struct vp_clients *cl = NULL;
	ck_assert_int_eq(vp_clients__new(&cl), 0);
	for (int i = 0; i < 1000; i++) {
		char id[16];
		snprintf(id, sizeof(id), "dev-%d", i);
		struct vp_client *c = vp_clients__put(cl, MOSQ(i), id, id, cache_free);
		ck_assert_ptr_nonnull(c);
		c->login = VP_LOGIN_CREDENTIAL;
		c->acl_cache = malloc(8);
	}
	ck_assert_uint_eq(vp_clients__count(cl), 1000);
	ck_assert_str_eq(vp_clients__get(cl, MOSQ(777))->client_id, "dev-777");
	ck_assert_ptr_null(vp_clients__get(cl, MOSQ(5000)));
	/* A reused pointer starts clean: no identity, no cache, new ids. */
	freed = 0;
	struct vp_client *c = vp_clients__put(cl, MOSQ(3), "other", NULL, cache_free);
	ck_assert_int_eq(freed, 1);
	ck_assert_int_eq(c->login, VP_LOGIN_NONE);
	ck_assert_ptr_null(c->acl_cache);
	ck_assert_ptr_null(c->username);
	ck_assert_str_eq(c->client_id, "other");
	vp_clients__remove(cl, MOSQ(777), cache_free);
	ck_assert_ptr_null(vp_clients__get(cl, MOSQ(777)));
	ck_assert_uint_eq(vp_clients__count(cl), 999);
	vp_clients__free(&cl, cache_free);
	ck_assert_ptr_null(cl);
}
END_TEST

START_TEST(test_parked_sessions)
{
	struct vp_clients *cl = NULL;
	ck_assert_int_eq(vp_clients__new(&cl), 0);
	struct vp_client *c = vp_clients__put(cl, MOSQ(1), "dashboard", "dashboard", cache_free);
	c->login = VP_LOGIN_CREDENTIAL;
	snprintf(c->roles, sizeof(c->roles), "dashboard");
	/* Offline: still answered, with its roles, for queued-message READ checks. */
	vp_clients__park(cl, MOSQ(1), cache_free);
	ck_assert_uint_eq(vp_clients__parked(cl), 1);
	c = vp_clients__get(cl, MOSQ(1));
	ck_assert_ptr_nonnull(c);
	ck_assert_str_eq(c->roles, "dashboard");
	/* Reconnect on a new context takes the session over: the old entry goes. */
	c = vp_clients__put(cl, MOSQ(2), "dashboard", "dashboard", cache_free);
	ck_assert_ptr_nonnull(c);
	ck_assert_ptr_null(vp_clients__get(cl, MOSQ(1)));
	ck_assert_uint_eq(vp_clients__parked(cl), 0);
	ck_assert_uint_eq(vp_clients__count(cl), 1);
	/* Same context logging in again: unparked and reset. */
	vp_clients__park(cl, MOSQ(2), cache_free);
	c = vp_clients__put(cl, MOSQ(2), "dashboard", "dashboard", cache_free);
	ck_assert(!c->parked);
	ck_assert_uint_eq(vp_clients__parked(cl), 0);
	/* A revoked parked client is no longer answered (its queue gets no READ). */
	vp_clients__park(cl, MOSQ(2), cache_free);
	vp_clients__get(cl, MOSQ(2))->kick_pending = true;
	ck_assert_ptr_null(vp_clients__get(cl, MOSQ(2)));
	/* Another client id is untouched by takeovers. */
	vp_clients__put(cl, MOSQ(3), "sensor", NULL, cache_free);
	vp_clients__park(cl, MOSQ(3), cache_free);
	vp_clients__put(cl, MOSQ(4), "dashboard", NULL, cache_free);
	ck_assert_ptr_nonnull(vp_clients__get(cl, MOSQ(3)));
	vp_clients__free(&cl, cache_free);
}
END_TEST

START_TEST(test_parked_bounded)
{
	struct vp_clients *cl = NULL;
	ck_assert_int_eq(vp_clients__new(&cl), 0);
	const int n = 100005;
	for (int i = 0; i < n; i++) {
		char id[16];
		snprintf(id, sizeof(id), "s%d", i);
		vp_clients__put(cl, MOSQ(i), id, NULL, cache_free);
		vp_clients__park(cl, MOSQ(i), cache_free);
	}
	ck_assert_uint_eq(vp_clients__parked(cl), 100000);
	ck_assert_uint_eq(vp_clients__count(cl), 100000);
	ck_assert_ptr_null(vp_clients__get(cl, MOSQ(0)));      /* oldest dropped */
	ck_assert_ptr_nonnull(vp_clients__get(cl, MOSQ(n - 1)));
	vp_clients__free(&cl, cache_free);
}
END_TEST

/* A client without a session that left: kept for its Will (WRITE) only,
 * never matched by a new client on the same pointer, gone after the TICK
 * that follows VP_DEPARTED_KEEP seconds. */
START_TEST(test_departed)
{
	struct vp_clients *cl = NULL;
	ck_assert_int_eq(vp_clients__new(&cl), 0);
	for (int i = 0; i < 2; i++) {
		struct vp_client *c = vp_clients__put(cl, MOSQ(i), i ? "dev2" : "dev1", NULL, cache_free);
		c->login = VP_LOGIN_CREDENTIAL;
		snprintf(c->roles, sizeof(c->roles), "%s", i ? "r2" : "r1");
		c->acl_cache = malloc(8);
	}
	/* Both leave back to back: each keeps its own roles for its Will. */
	vp_clients__depart(cl, MOSQ(0), 1000, cache_free);
	vp_clients__depart(cl, MOSQ(1), 1000, cache_free);
	ck_assert_uint_eq(vp_clients__departed(cl), 2);
	ck_assert_ptr_null(vp_clients__get(cl, MOSQ(0))); /* no READ, SUBSCRIBE or login */
	ck_assert_str_eq(vp_clients__get_publisher(cl, MOSQ(0), "dev1")->roles, "r1");
	ck_assert_str_eq(vp_clients__get_publisher(cl, MOSQ(1), "dev2")->roles, "r2");
	ck_assert_ptr_null(vp_clients__get_publisher(cl, MOSQ(0), "dev2")); /* other name */
	ck_assert_ptr_null(vp_clients__get_publisher(cl, MOSQ(0), NULL));
	/* A new client on a freed pointer, logged in by us: a fresh entry. */
	freed = 0;
	struct vp_client *c = vp_clients__put(cl, MOSQ(0), "dev1", NULL, cache_free);
	ck_assert_int_eq(freed, 1);
	ck_assert(!c->departed);
	ck_assert_int_eq(c->login, VP_LOGIN_NONE);
	ck_assert_str_eq(c->roles, "");
	ck_assert_uint_eq(vp_clients__departed(cl), 1);
	/* ... or by another mechanism: the departed entry is dropped at its login. */
	vp_clients__forget_departed(cl, MOSQ(1), cache_free);
	ck_assert_ptr_null(vp_clients__get_publisher(cl, MOSQ(1), "dev2"));
	ck_assert_uint_eq(vp_clients__departed(cl), 0);
	vp_clients__forget_departed(cl, MOSQ(0), cache_free); /* online: untouched */
	ck_assert_ptr_nonnull(vp_clients__get(cl, MOSQ(0)));
	/* A revoked departed client is not answered. */
	vp_clients__depart(cl, MOSQ(0), 2000, cache_free);
	vp_clients__get_publisher(cl, MOSQ(0), "dev1")->kick_pending = true;
	ck_assert_ptr_null(vp_clients__get_publisher(cl, MOSQ(0), "dev1"));
	/* Ticks: kept until VP_DEPARTED_KEEP seconds have passed. */
	vp_clients__put(cl, MOSQ(5), "dev5", NULL, cache_free);
	vp_clients__depart(cl, MOSQ(5), 2001, cache_free);
	vp_clients__tick(cl, 2000 + VP_DEPARTED_KEEP - 1, cache_free);
	ck_assert_uint_eq(vp_clients__departed(cl), 2);
	vp_clients__tick(cl, 2000 + VP_DEPARTED_KEEP, cache_free);
	ck_assert_uint_eq(vp_clients__departed(cl), 1);
	ck_assert_ptr_nonnull(vp_clients__get_publisher(cl, MOSQ(5), "dev5"));
	vp_clients__tick(cl, 2001 + VP_DEPARTED_KEEP, cache_free);
	ck_assert_uint_eq(vp_clients__departed(cl), 0);
	ck_assert_uint_eq(vp_clients__count(cl), 0);
	vp_clients__free(&cl, cache_free);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("clients");
	TCase *tc = veil_tcase("registry", 3);
	tcase_add_test(tc, test_put_get_remove);
	tcase_add_test(tc, test_parked_sessions);
	tcase_add_test(tc, test_parked_bounded);
	tcase_add_test(tc, test_departed);
	suite_add_tcase(s, tc);
	return veil_check_run(s);
}
