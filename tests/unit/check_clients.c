/* Tests for plugin/clients.c: the per-client registry, parked offline
 * sessions, takeover and bounds. Client pointers are opaque keys here. */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* A login on a pointer whose previous owner is gone without an event (an
 * expired session, a sent Will): the stale entry is removed, whatever its
 * state, and reported; a connected client's own entry is not touched. */
START_TEST(test_forget_stale)
{
	struct vp_clients *cl = NULL;
	ck_assert_int_eq(vp_clients__new(&cl), 0);
	struct vp_client *c = vp_clients__put(cl, MOSQ(1), "dash-1", "dash-1", cache_free);
	c->login = VP_LOGIN_CREDENTIAL;
	c->has_identity = true;
	snprintf(c->roles, sizeof(c->roles), "dashboard");
	c->acl_cache = malloc(8);
	vp_clients__park(cl, MOSQ(1), cache_free);
	vp_clients__put(cl, MOSQ(2), "dev-2", NULL, cache_free);
	vp_clients__depart(cl, MOSQ(2), 1000, cache_free);
	vp_clients__put(cl, MOSQ(3), "dev-3", NULL, cache_free);
	ck_assert_uint_eq(vp_clients__parked(cl), 1);
	ck_assert_uint_eq(vp_clients__departed(cl), 1);

	char prev[16];
	freed = 0;
	ck_assert_str_eq(vp_clients__forget_stale(cl, MOSQ(1), prev, sizeof(prev), cache_free), "parked");
	ck_assert_str_eq(prev, "dash-1");
	ck_assert_int_eq(freed, 1);
	ck_assert_uint_eq(vp_clients__parked(cl), 0);
	ck_assert_ptr_null(vp_clients__get(cl, MOSQ(1)));
	ck_assert_str_eq(vp_clients__forget_stale(cl, MOSQ(2), NULL, 0, cache_free), "departed");
	ck_assert_uint_eq(vp_clients__departed(cl), 0);
	ck_assert_ptr_null(vp_clients__get_publisher(cl, MOSQ(2), "dev-2"));
	/* Online, absent, NULLs: nothing removed. */
	ck_assert_ptr_null(vp_clients__forget_stale(cl, MOSQ(3), prev, sizeof(prev), cache_free));
	ck_assert_ptr_nonnull(vp_clients__get(cl, MOSQ(3)));
	ck_assert_ptr_null(vp_clients__forget_stale(cl, MOSQ(9), prev, sizeof(prev), cache_free));
	ck_assert_ptr_null(vp_clients__forget_stale(NULL, MOSQ(3), prev, sizeof(prev), cache_free));
	ck_assert_ptr_null(vp_clients__forget_stale(cl, NULL, prev, sizeof(prev), cache_free));
	ck_assert_uint_eq(vp_clients__count(cl), 1);
	/* A long id is cut to the buffer. */
	vp_clients__put(cl, MOSQ(4), "a-rather-long-client-id", NULL, cache_free);
	vp_clients__park(cl, MOSQ(4), cache_free);
	ck_assert_str_eq(vp_clients__forget_stale(cl, MOSQ(4), prev, 6, cache_free), "parked");
	ck_assert_str_eq(prev, "a-rat");
	/* The forgotten parked entry is out of the id index too: a later
	 * session of the same id on another pointer parks and is taken over
	 * without touching freed memory (valgrind/ASan would see it). */
	vp_clients__put(cl, MOSQ(5), "dash-1", NULL, cache_free);
	vp_clients__park(cl, MOSQ(5), cache_free);
	vp_clients__put(cl, MOSQ(6), "dash-1", NULL, cache_free);
	ck_assert_ptr_null(vp_clients__get(cl, MOSQ(5)));
	ck_assert_uint_eq(vp_clients__parked(cl), 0);
	vp_clients__free(&cl, cache_free);
}
END_TEST

/* An entry marked no longer authorised is hidden from get, and reported to
 * the ACL as refused (same pointer and client id only), whatever its state. */
START_TEST(test_refused)
{
	struct vp_clients *cl = NULL;
	ck_assert_int_eq(vp_clients__new(&cl), 0);
	for (int i = 0; i < 3; i++) {
		char id[16];
		snprintf(id, sizeof(id), "dev-%d", i);
		vp_clients__put(cl, MOSQ(i), id, id, cache_free)->login = VP_LOGIN_CREDENTIAL;
		ck_assert(!vp_clients__refused(cl, MOSQ(i), id));
	}
	vp_clients__park(cl, MOSQ(1), cache_free);
	vp_clients__depart(cl, MOSQ(2), 1000, cache_free);
	vp_clients__get(cl, MOSQ(0))->kick_pending = true;          /* online, kick due */
	vp_clients__get(cl, MOSQ(1))->kick_pending = true;          /* offline session */
	vp_clients__get_publisher(cl, MOSQ(2), "dev-2")->kick_pending = true; /* left */
	ck_assert(vp_clients__refused(cl, MOSQ(0), "dev-0"));
	ck_assert(vp_clients__refused(cl, MOSQ(1), "dev-1"));
	ck_assert(vp_clients__refused(cl, MOSQ(2), "dev-2"));
	ck_assert_ptr_null(vp_clients__get(cl, MOSQ(1)));
	/* Another client id on the pointer is not this entry's client. */
	ck_assert(!vp_clients__refused(cl, MOSQ(1), "dev-9"));
	ck_assert(!vp_clients__refused(cl, MOSQ(1), NULL));
	ck_assert(!vp_clients__refused(cl, MOSQ(7), "dev-1"));
	ck_assert(!vp_clients__refused(NULL, MOSQ(1), "dev-1"));
	/* The departed entry is dropped after VP_DEPARTED_KEEP: a Will delayed
	 * longer is still refused (outside attack review, round 2), for that
	 * pointer and client id only, until a login on the pointer. */
	vp_clients__tick(cl, 1000 + VP_DEPARTED_KEEP, cache_free);
	ck_assert_ptr_null(vp_clients__get_publisher(cl, MOSQ(2), "dev-2"));
	ck_assert_uint_eq(vp_clients__departed(cl), 0);
	ck_assert_uint_eq(vp_clients__gone(cl), 1);
	ck_assert(vp_clients__refused(cl, MOSQ(2), "dev-2"));
	ck_assert(!vp_clients__refused(cl, MOSQ(2), "dev-9"));
	ck_assert_ptr_null(vp_clients__forget_stale(cl, MOSQ(2), NULL, 0, cache_free));
	ck_assert(!vp_clients__refused(cl, MOSQ(2), "dev-2"));
	ck_assert_uint_eq(vp_clients__gone(cl), 0);
	/* A departed client that was never refused is not remembered. */
	vp_clients__put(cl, MOSQ(3), "dev-3", "dev-3", cache_free);
	vp_clients__depart(cl, MOSQ(3), 3000, cache_free);
	vp_clients__tick(cl, 3000 + VP_DEPARTED_KEEP, cache_free);
	ck_assert_uint_eq(vp_clients__gone(cl), 0);
	ck_assert(!vp_clients__refused(cl, MOSQ(3), "dev-3"));
	/* Freed with the registry (ASan/valgrind: no leak). */
	vp_clients__put(cl, MOSQ(4), "dev-4", "dev-4", cache_free)->kick_pending = true;
	vp_clients__depart(cl, MOSQ(4), 4000, cache_free);
	vp_clients__tick(cl, 4000 + VP_DEPARTED_KEEP, cache_free);
	ck_assert_uint_eq(vp_clients__gone(cl), 1);
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
	tcase_add_test(tc, test_forget_stale);
	tcase_add_test(tc, test_refused);
	suite_add_tcase(s, tc);
	return veil_check_run(s);
}
