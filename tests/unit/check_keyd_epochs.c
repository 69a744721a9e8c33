/*
 * Tests for keyd/epochs.c with an injected clock (times are arguments):
 * the first epochs of an instance, the grant window (lead, depth: depth K
 * grants while send_from <= now + lead + K * period), the outage it covers
 * (at least K periods, issue 13), the exact time the next epoch appears,
 * many rotations counted, periods
 * skipped after an outage, key ids from 0x80000000 never reused (also
 * across purge and restart), forced rotation (supersedes, grace), purge,
 * and reloading everything from the store.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "veil/error.h"
#include "epochs.h"

#include "check_run.h"
#include "files.h"
#include "timing.h"

static char dir[256], dbpath[300];
static uint8_t skey[KD_STORAGE_KEY_BYTES];
static struct kd_store *st;
static struct kd_epochs E;

#define T0 1700000000ULL
static struct kd_scope_conf SC = { .filter = "factory/%c/#", .per_device = true, .period = 3600, .lead = 300,
	                           .grace = 600, .depth = 2, .line = 1 };
static struct kd_scope_conf SHARED = { .filter = "status/#", .period = 600, .lead = 120, .grace = 120, .depth = 0 };

static void setup(void)
{
	ck_assert_int_eq(test_mkdtemp(dir, sizeof(dir)), 0);
	snprintf(dbpath, sizeof(dbpath), "%s/keyd.db", dir);
	randombytes_buf(skey, sizeof(skey));
	char err[256];
	ck_assert_int_eq(kd_store__open(dbpath, skey, true, &st, err, sizeof(err)), VEIL_OK);
	ck_assert_int_eq(kd_epochs__load(&E, st), VEIL_OK);
}

static void teardown(void)
{
	kd_epochs__free(&E);
	kd_store__close(&st);
	test_rmtree(dir);
}

static struct kd_inst *instance(const struct kd_scope_conf *sc, const char *owner, uint64_t now)
{
	struct kd_inst *in = NULL;
	ck_assert_int_eq(kd_store__begin(st), VEIL_OK);
	ck_assert_int_eq(kd_epochs__instance(&E, st, sc, owner, now, &in), VEIL_OK);
	ck_assert_int_eq(kd_store__commit(st), VEIL_OK);
	in->usable = true;
	return in;
}

static size_t advance(struct kd_inst *in, const struct kd_scope_conf *sc, uint64_t now)
{
	size_t added = 0;
	ck_assert_int_eq(kd_store__begin(st), VEIL_OK);
	ck_assert_int_eq(kd_epochs__advance(&E, st, in, sc, now, &added), VEIL_OK);
	ck_assert_int_eq(kd_store__commit(st), VEIL_OK);
	return added;
}

static size_t granted(const struct kd_inst *in, const struct kd_scope_conf *sc, uint64_t now)
{
	size_t n = 0;
	for (size_t i = 0; i < in->n; i++)
		n += kd_epochs__granted(&in->ep[i], sc, now);
	return n;
}

/* The epoch a sender uses at now: granted, send_from <= now < send_until. */
static const struct kd_epoch *sending(const struct kd_inst *in, const struct kd_scope_conf *sc, uint64_t now)
{
	const struct kd_epoch *e = NULL;
	for (size_t i = 0; i < in->n; i++)
		if (kd_epochs__granted(&in->ep[i], sc, now) && in->ep[i].send_from <= now && now < in->ep[i].send_until)
			e = &in->ep[i];
	return e;
}

START_TEST(first_epochs_and_window)
{
	struct kd_inst *in = instance(&SC, "sensor-1", T0);
	ck_assert_str_eq(in->filter, "factory/sensor-1/#");
	ck_assert_str_eq(in->owner, "sensor-1");
	ck_assert_uint_eq(in->anchor, T0);
	/* depth 2: the current epoch and the next two (horizon = now + lead +
	 * 2 periods). */
	ck_assert_uint_eq(advance(in, &SC, T0), 3);
	ck_assert_uint_eq(in->n, 3);
	ck_assert_uint_eq(in->ep[0].epoch, 0);
	ck_assert_uint_eq(in->ep[0].send_from, T0);
	ck_assert_uint_eq(in->ep[0].send_until, T0 + 3600);
	ck_assert_uint_eq(in->ep[0].accept_until, T0 + 3600 + 600);
	ck_assert_uint_eq(in->ep[1].epoch, 1);
	ck_assert_uint_eq(in->ep[1].send_from, T0 + 3600);
	ck_assert_uint_eq(in->ep[2].epoch, 2);
	ck_assert_uint_eq(in->ep[2].send_from, T0 + 7200);
	ck_assert_uint_ge(in->ep[0].key_id, VEIL__GRANT_KEY_ID_MIN);
	ck_assert_uint_gt(in->ep[1].key_id, in->ep[0].key_id);
	ck_assert_uint_gt(in->ep[2].key_id, in->ep[1].key_id);
	ck_assert_uint_eq(granted(in, &SC, T0), 3);
	ck_assert_ptr_eq(sending(in, &SC, T0), &in->ep[0]);
	/* Nothing new until the fourth epoch comes within lead + 2 periods. */
	ck_assert_uint_eq(advance(in, &SC, T0 + 3600 - 300 - 1), 0);
	ck_assert_uint_eq(kd_epochs__next_change(in, &SC, T0), T0 + 3600 - 300);
	ck_assert_uint_eq(advance(in, &SC, T0 + 3600 - 300), 1);
	ck_assert_uint_eq(in->ep[3].send_from, T0 + 10800);
	ck_assert_uint_eq(granted(in, &SC, T0 + 3600 - 300), 4);
	/* depth 0: only lead ahead. */
	struct kd_inst *sh = instance(&SHARED, NULL, T0);
	ck_assert_str_eq(sh->filter, "status/#");
	ck_assert_uint_eq(advance(sh, &SHARED, T0), 1);
	ck_assert_uint_eq(granted(sh, &SHARED, T0), 1);
	ck_assert_uint_eq(kd_epochs__next_change(sh, &SHARED, T0), T0 + 600 - 120);
	ck_assert_uint_eq(advance(sh, &SHARED, T0 + 479), 0);
	ck_assert_uint_eq(advance(sh, &SHARED, T0 + 480), 1);
	ck_assert_uint_eq(sh->ep[1].send_from, T0 + 600);
	/* depth 1: lead and one period ahead. */
	struct kd_scope_conf one = { .filter = "alarms/#", .period = 600, .lead = 120, .grace = 120, .depth = 1 };
	struct kd_inst *a1 = instance(&one, NULL, T0);
	ck_assert_uint_eq(advance(a1, &one, T0), 2);
	ck_assert_uint_eq(a1->ep[1].send_from, T0 + 600);
	ck_assert_uint_eq(kd_epochs__next_change(a1, &one, T0), T0 + 1200 - 120 - 600);
	ck_assert_uint_eq(advance(a1, &one, T0 + 479), 0);
	ck_assert_uint_eq(advance(a1, &one, T0 + 480), 1);
	ck_assert_uint_eq(a1->ep[2].send_from, T0 + 1200);
	/* The same instance is found, not created twice. */
	ck_assert_ptr_eq(instance(&SC, "sensor-1", T0 + 5), in);
	ck_assert_ptr_eq(kd_epochs__find(&E, "factory/sensor-1/#"), in);
}
END_TEST

START_TEST(rotations_counted)
{
	/* 25 rotations, driven by next_change: at every moment a sender has
	 * an epoch, and each epoch was granted at least `lead` before it starts. */
	struct kd_inst *in = instance(&SHARED, NULL, T0);
	advance(in, &SHARED, T0);
	uint64_t t = T0;
	size_t rotations = 0;
	uint32_t last_id = in->ep[0].key_id;
	while (rotations < 25) {
		uint64_t next = kd_epochs__next_change(in, &SHARED, t);
		ck_assert_uint_gt(next, t);
		/* Every second up to the change still has a sending epoch. */
		for (uint64_t x = t; x < next; x += 37)
			ck_assert_ptr_nonnull(sending(in, &SHARED, x));
		t = next;
		size_t added = advance(in, &SHARED, t);
		ck_assert_uint_eq(added, 1);
		const struct kd_epoch *e = &in->ep[in->n - 1];
		ck_assert_uint_ge(e->send_from, t + SHARED.lead); /* granted lead ahead */
		ck_assert_uint_gt(e->key_id, last_id);
		last_id = e->key_id;
		rotations++;
		size_t purged;
		ck_assert_int_eq(kd_store__begin(st), VEIL_OK);
		ck_assert_int_eq(kd_epochs__purge(&E, st, t, 5, &purged), VEIL_OK);
		ck_assert_int_eq(kd_store__commit(st), VEIL_OK);
		ck_assert_uint_le(in->n, 3); /* old epochs go once accept_until passed */
	}
	ck_assert_uint_eq(in->ep[in->n - 1].epoch, 25);
}
END_TEST

START_TEST(outage_skips_periods)
{
	struct kd_inst *in = instance(&SHARED, NULL, T0);
	advance(in, &SHARED, T0);
	/* keyd was away 10 periods and a bit: the next epoch is the current
	 * one on the grid, numbered as the periods went by. */
	uint64_t t = T0 + 10 * 600 + 50;
	ck_assert_uint_eq(advance(in, &SHARED, t), 1);
	const struct kd_epoch *e = &in->ep[in->n - 1];
	ck_assert_uint_eq(e->send_from, T0 + 6000);
	ck_assert_uint_eq(e->epoch, 10);
	ck_assert_ptr_eq(sending(in, &SHARED, t), e);
}
END_TEST

START_TEST(forced_rotation)
{
	struct kd_inst *in = instance(&SC, "s1", T0);
	advance(in, &SC, T0);
	uint32_t before = in->ep[2].key_id;
	uint64_t t = T0 + 100;
	ck_assert_int_eq(kd_store__begin(st), VEIL_OK);
	ck_assert_int_eq(kd_epochs__rotate(&E, st, in, &SC, t, 0, 7), VEIL_OK);
	ck_assert_int_eq(kd_store__commit(st), VEIL_OK);
	ck_assert_uint_eq(in->n, 4);
	const struct kd_epoch *r = &in->ep[3];
	ck_assert_uint_gt(r->key_id, before); /* supersedes every smaller key id */
	ck_assert_uint_eq(r->flags, VEIL__GRANT_SUPERSEDES);
	ck_assert_uint_eq(r->grace_s, 7);
	ck_assert_uint_eq(r->send_from, t);
	ck_assert_uint_eq(r->epoch, 3);
	/* Every older epoch, those granted ahead included, is superseded. */
	ck_assert_uint_eq(in->ep[0].superseded_at, t);
	ck_assert_uint_eq(in->ep[1].superseded_at, t);
	ck_assert_uint_eq(in->ep[2].superseded_at, t);
	ck_assert_uint_eq(granted(in, &SC, t), 1);
	ck_assert_ptr_eq(sending(in, &SC, t), r);
	/* The chain goes on from the new epoch: with depth 2 its two
	 * successors are due at once, the one after lead + 2 periods before it
	 * starts. */
	ck_assert_uint_le(kd_epochs__next_change(in, &SC, t), t + 1);
	ck_assert_uint_eq(advance(in, &SC, t), 2);
	ck_assert_uint_eq(in->ep[4].send_from, t + 3600);
	ck_assert_uint_eq(in->ep[4].flags, 0);
	ck_assert_uint_eq(in->ep[5].send_from, t + 7200);
	ck_assert_uint_eq(kd_epochs__next_change(in, &SC, t), t + 10800 - 300 - 7200);
	/* Superseded epochs are deleted rekey_grace seconds later. */
	size_t purged;
	ck_assert_int_eq(kd_epochs__purge(&E, st, t + 6, 7, &purged), VEIL_OK);
	ck_assert_uint_eq(purged, 0);
	ck_assert_int_eq(kd_epochs__purge(&E, st, t + 7, 7, &purged), VEIL_OK);
	ck_assert_uint_eq(purged, 3);
	ck_assert_uint_eq(in->n, 3);
	/* With the fleet's clock skew: the new epoch sends from now - skew, so
	 * a device whose clock is behind keyd's has a key to send with as soon
	 * as the bundle stops the old ones; it still ends a period later. */
	uint64_t t2 = t + 50;
	ck_assert_int_eq(kd_store__begin(st), VEIL_OK);
	ck_assert_int_eq(kd_epochs__rotate(&E, st, in, &SC, t2, 60, 7), VEIL_OK);
	ck_assert_int_eq(kd_store__commit(st), VEIL_OK);
	r = &in->ep[in->n - 1];
	ck_assert_uint_eq(r->send_from, t2 - 60);
	ck_assert_uint_eq(r->send_until, t2 - 60 + 3600);
	ck_assert_ptr_eq(sending(in, &SC, t2 - 59), r);
}
END_TEST

START_TEST(restart_and_never_reused)
{
	struct kd_inst *a = instance(&SC, "s1", T0);
	struct kd_inst *b = instance(&SHARED, NULL, T0);
	advance(a, &SC, T0);
	advance(b, &SHARED, T0);
	uint8_t key0[VEIL_KEY_BYTES];
	memcpy(key0, a->ep[0].key, sizeof(key0));
	uint32_t max_id = 0;
	for (struct kd_inst *in = E.by_filter; in; in = in->hh.next)
		for (size_t i = 0; i < in->n; i++)
			if (in->ep[i].key_id > max_id)
				max_id = in->ep[i].key_id;
	/* Purge everything (an hour past every accept_until), restart. */
	size_t purged;
	ck_assert_int_eq(kd_epochs__purge(&E, st, T0 + 100000, 5, &purged), VEIL_OK);
	ck_assert_uint_eq(purged, 4);
	kd_epochs__free(&E);
	kd_store__close(&st);
	char err[256];
	ck_assert_int_eq(kd_store__open(dbpath, skey, false, &st, err, sizeof(err)), VEIL_OK);
	ck_assert_int_eq(kd_epochs__load(&E, st), VEIL_OK);
	a = kd_epochs__find(&E, "factory/s1/#");
	ck_assert_ptr_nonnull(a);
	ck_assert_uint_eq(a->n, 0);
	ck_assert_uint_eq(a->anchor, T0);
	ck_assert_uint_eq(advance(a, &SC, T0 + 100000), 3);
	ck_assert_uint_gt(a->ep[0].key_id, max_id); /* never reused */
	ck_assert_uint_eq(a->ep[0].send_from, T0 + 97200); /* still on the scope's grid */
	/* A second restart keeps the keys byte for byte. */
	uint8_t k[VEIL_KEY_BYTES];
	memcpy(k, a->ep[1].key, sizeof(k));
	uint32_t id = a->ep[1].key_id;
	kd_epochs__free(&E);
	ck_assert_int_eq(kd_epochs__load(&E, st), VEIL_OK);
	a = kd_epochs__find(&E, "factory/s1/#");
	ck_assert_uint_eq(a->n, 3);
	ck_assert_uint_eq(a->ep[1].key_id, id);
	ck_assert_mem_eq(a->ep[1].key, k, sizeof(k));
	ck_assert(memcmp(a->ep[0].key, key0, sizeof(key0)) != 0);
}
END_TEST

/* Issue 13: with depth K, a keyd outage shorter than K periods loses
 * nothing. keyd stops at the worst moment, one second before it would
 * grant the next epoch; the epochs granted then give a sending epoch at
 * every second up to K * period + lead later (>= K periods) and none
 * after: the rule is exact, for depths 0 to 3 and lead 0 or a full period. */
START_TEST(outage_covered_by_depth)
{
	for (uint32_t k = 0; k <= 3; k++) {
		for (uint32_t lead = 0; lead <= 600; lead += 600) {
			char filt[32];
			snprintf(filt, sizeof(filt), "o%u-%u/#", k, lead);
			struct kd_scope_conf sc = { .filter = filt, .period = 600, .lead = lead, .grace = 120, .depth = k };
			struct kd_inst *in = instance(&sc, NULL, T0);
			advance(in, &sc, T0);
			uint64_t t = kd_epochs__next_change(in, &sc, T0);
			advance(in, &sc, t);
			t = kd_epochs__next_change(in, &sc, t) - 1; /* keyd stops here */
			ck_assert_uint_eq(advance(in, &sc, t), 0);
			uint64_t covered = (uint64_t)k * sc.period + lead;
			uint64_t last = 0;
			for (size_t i = 0; i < in->n; i++)
				if (kd_epochs__granted(&in->ep[i], &sc, t) && in->ep[i].send_until > last)
					last = in->ep[i].send_until;
			ck_assert_uint_eq(last, t + 1 + covered);
			for (uint64_t x = t; x < t + covered; x += 7)
				ck_assert_ptr_nonnull(sending(in, &sc, x));
			ck_assert_ptr_nonnull(sending(in, &sc, t + covered));
			ck_assert_ptr_null(sending(in, &sc, t + covered + 1));
			ck_assert_uint_ge(covered, (uint64_t)k * sc.period);
		}
	}
}
END_TEST

START_TEST(instance_filter_too_long)
{
	char owner[VEIL_CLIENT_ID_MAX + 1];
	memset(owner, 'x', VEIL_CLIENT_ID_MAX);
	owner[VEIL_CLIENT_ID_MAX] = '\0';
	char filt[200];
	memset(filt, 'f', 150);
	memcpy(filt + 150, "/%c/#", 6);
	struct kd_scope_conf sc = SC;
	sc.filter = filt;
	struct kd_inst *in = NULL;
	ck_assert_int_eq(kd_epochs__instance(&E, st, &sc, owner, T0, &in), VEIL_ERR_TOO_LARGE);
	ck_assert_ptr_null(in);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("keyd_epochs");
	TCase *tc = veil_tcase("keyd_epochs", 10);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, first_epochs_and_window);
	tcase_add_test(tc, rotations_counted);
	tcase_add_test(tc, outage_skips_periods);
	tcase_add_test(tc, forced_rotation);
	tcase_add_test(tc, restart_and_never_reused);
	tcase_add_test(tc, outage_covered_by_depth);
	tcase_add_test(tc, instance_filter_too_long);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return veil_check_run(suite());
}
