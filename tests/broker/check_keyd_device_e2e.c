/*
 * One device and the key service, through real components only
 * (tests/support/keys_fixture.h: Mosquitto with the Veil plugin, veil-keyd,
 * devices without keyring files; docs/KEYS.md):
 *   - a device restarted with its state_dir while keyd is stopped seals at
 *     once from its keys file (libveil, and the preload under an MQTTClient
 *     program without callbacks);
 *   - a receiver that gets a message under a key it does not hold yet holds
 *     it and delivers it once its bundle arrives; with keyd stopped, it drops
 *     it as unknown-key after the scope's grace;
 *   - a fresh device while keyd is down: connect returns after its timeout
 *     with the warning (veil_client_* and veil_async_*), publishes are
 *     refused no-key; keyd starts and the device gets its keys by itself and
 *     publishes; veil_async_free, and MQTTAsync_destroy under the preload,
 *     end a wait for keys at once;
 *   - a Will under a key service scope needs keys kept from an earlier
 *     connection: refused no-key before, sealed after.
 */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "veil/veil.h"

#include "files.h"
#include "keys_fixture.h"
#include "timing.h"

#define TOPIC "factory/fe-sync/data"

/* A dashboard (reads factory/#) on veil_client, connected and subscribed. */
static struct kfx_lv *dashboard(const char *id, bool persistent, char *conf, size_t cap)
{
	kfx_device(id, "dashboard", conf, cap);
	struct kfx_lv_opts o = { .persistent = persistent };
	struct kfx_lv *d = kfx_lv_new(KFX_SYNC, conf, &o);
	ck_assert_int_eq(kfx_lv_connect(d, NULL), VEIL_OK);
	ck_assert_int_eq(kfx_lv_subscribe(d, "factory/#"), VEIL_OK);
	return d;
}

static uint32_t got(struct kfx_lv *l, const char *payload)
{
	struct kfx_msg m;
	if (!kfx_lv_wait_msg(l, payload, &m, 15000)) {
		kfx_lv_dump(l, "receiver");
		ck_abort_msg("%s never arrived", payload);
	}
	ck_assert_uint_ge(m.key_id, VEIL_GRANTED_KEY_ID_MIN);
	return m.key_id;
}

START_TEST(restart_seals_from_kept_keys_with_keyd_stopped)
{
	kfx_keyd_start();
	char dconf[400], sconf[400], pconf[400];
	struct kfx_lv *dash = dashboard("dash-s", false, dconf, sizeof(dconf));
	kfx_device("fe-sync", NULL, sconf, sizeof(sconf));
	kfx_device("fe-pnocb", NULL, pconf, sizeof(pconf));
	struct kfx_lv *s = kfx_lv_new(KFX_SYNC, sconf, NULL);
	ck_assert_int_eq(kfx_lv_connect(s, NULL), VEIL_OK);
	ck_assert_int_eq(kfx_lv_publish(s, TOPIC, "before"), VEIL_OK);
	uint32_t key = got(dash, "before");
	kfx_lv_free(s);
	struct kfx_app app;
	kfx_app_start(&app, KFX_PNOCB, pconf, "factory/fe-pnocb/data", 10);
	ck_assert_int_eq(kfx_app_pub(&app, "p-before"), 0);
	uint32_t pkey = got(dash, "p-before");
	kfx_app_stop(&app);

	kfx_keyd_stop();
	/* Restarted with its state_dir: its keys file serves at once. */
	struct kfx_lv_opts o = { .connect_timeout_s = 30 };
	s = kfx_lv_new(KFX_SYNC, sconf, &o);
	ck_assert_int_eq(kfx_lv_connect(s, NULL), VEIL_OK);
	ck_assert_msg(!kfx_lv_logged(s, "no bundle came"), "a restarted device waited for the key service");
	ck_assert_int_eq(kfx_lv_publish(s, TOPIC, "after"), VEIL_OK);
	ck_assert_uint_eq(got(dash, "after"), key);
	kfx_app_start(&app, KFX_PNOCB, pconf, "factory/fe-pnocb/data", 30);
	ck_assert_msg(!test_file_has(app.out, "no bundle came"), "a restarted program waited for the key service");
	ck_assert_int_eq(kfx_app_pub(&app, "p-after"), 0);
	ck_assert_uint_eq(got(dash, "p-after"), pkey);
	kfx_app_stop(&app);
	ck_assert_uint_eq(kfx_lv_refused(dash), 0);
	kfx_lv_free(s);
	kfx_lv_free(dash);
}
END_TEST

/* A sender's message under a key the dashboard (persistent session, away
 * meanwhile) has not received: the rotation's bundle for the dashboard was
 * sealed to a receive key it lost when it stopped. */
static struct kfx_lv *held_setup(bool stop_keyd, uint32_t *k1, int n_new)
{
	kfx_keyd_start();
	char dconf[400], sconf[400];
	struct kfx_lv *dash = dashboard("dash-p", true, dconf, sizeof(dconf));
	kfx_device("fe-sync", NULL, sconf, sizeof(sconf));
	struct kfx_lv *s = kfx_lv_new(KFX_SYNC, sconf, NULL);
	ck_assert_int_eq(kfx_lv_connect(s, NULL), VEIL_OK);
	ck_assert_int_eq(kfx_lv_publish(s, TOPIC, "h-1"), VEIL_OK);
	*k1 = got(dash, "h-1");
	kfx_lv_free(dash);
	size_t applied = kfx_lv_log_count(s, "key service bundle version");
	kfx_rotate(KFX_SCOPE, "factory/fe-sync/#");
	/* The sender holds the new epoch (and seals with it at once: it supersedes). */
	ck_assert(kfx_lv_wait_log(s, "key service bundle version", applied + 1, 15000));
	for (int i = 0; i < n_new; i++) { /* h-2, h-3, ...: queued for the dashboard's session */
		char pt[16];
		snprintf(pt, sizeof(pt), "h-%d", i + 2);
		ck_assert_int_eq(kfx_lv_publish(s, TOPIC, pt), VEIL_OK);
	}
	kfx_lv_free(s);
	if (stop_keyd)
		kfx_keyd_stop();
	struct kfx_lv_opts o = { .persistent = true };
	dash = kfx_lv_new(KFX_SYNC, dconf, &o);
	ck_assert_int_eq(kfx_lv_connect(dash, NULL), VEIL_OK);
	return dash;
}

START_TEST(held_until_the_bundle_comes)
{
	uint32_t k1;
	struct kfx_lv *dash = held_setup(false, &k1, 1);
	uint32_t k2 = got(dash, "h-2");
	ck_assert_uint_ne(k2, k1);
	ck_assert_msg(kfx_lv_logged(dash, "message on '" TOPIC "' held"), "h-2 was not held");
	ck_assert_uint_eq(kfx_lv_refused(dash), 0);
	kfx_lv_free(dash);
}
END_TEST

START_TEST(held_then_dropped_after_the_grace)
{
	uint32_t k1;
	struct kfx_lv *dash = held_setup(true, &k1, 1);
	ck_assert_msg(VEIL_WAIT_UNTIL(kfx_lv_logged(dash, "message on '" TOPIC "' held"), 10000), "h-2 was not held");
	uint64_t t0 = veil_test_now_ms();
	/* The grace is the scope's (KFX_GRACE_S), not scaled: wait past it. */
	ck_assert(kfx_lv_wait_refused(dash, VEIL_ERR_UNKNOWN_KEY, 1, (KFX_GRACE_S + 10) * 1000));
	ck_assert_uint_ge(veil_test_now_ms() - t0 + 1000U, (KFX_GRACE_S - 1) * 1000U);
	ck_assert(kfx_lv_logged(dash, "message on '" TOPIC "' DROPPED: key id not in the keyring (unknown-key)"));
	ck_assert_uint_eq(kfx_lv_count(dash, "h-2"), 0);
	ck_assert_uint_eq(kfx_lv_refused(dash), 1);
	kfx_lv_free(dash);
}
END_TEST

/* At most VEIL__HELD_MAX (256) messages wait for a key: the 257th is
 * refused unknown-key at once, the 256 when the grace ends (keyd is down,
 * so no bundle comes). */
START_TEST(held_at_most_256)
{
	uint32_t k1;
	struct kfx_lv *dash = held_setup(true, &k1, 257);
	ck_assert(kfx_lv_wait_refused(dash, VEIL_ERR_UNKNOWN_KEY, 1, 15000));
	ck_assert(VEIL_WAIT_UNTIL(kfx_lv_log_count(dash, "message on '" TOPIC "' held: its key is not here yet") == 256,
	                          10000));
	ck_assert_uint_eq(kfx_lv_log_count(dash, "cannot be held (256 already wait)"), 1);
	ck_assert(kfx_lv_wait_refused(dash, VEIL_ERR_UNKNOWN_KEY, 257, (KFX_GRACE_S + 10) * 1000));
	ck_assert_uint_eq(kfx_lv_log_count(dash, "message on '" TOPIC "' held: its key is not here yet"), 256);
	ck_assert_uint_eq(kfx_lv_count(dash, "h-2"), 0);
	ck_assert_uint_eq(kfx_lv_count(dash, "h-258"), 0);
	kfx_lv_free(dash);
}
END_TEST

START_TEST(keyd_down_at_first_connect)
{
	char sconf[400], aconf[400], dconf[400];
	kfx_device("fe-sync", NULL, sconf, sizeof(sconf));
	kfx_device("fe-async", NULL, aconf, sizeof(aconf));
	struct kfx_lv_opts o = { .connect_timeout_s = 2 };
	struct kfx_lv *s = kfx_lv_new(KFX_SYNC, sconf, &o), *a = kfx_lv_new(KFX_ASYNC, aconf, &o);
	const char *warning = "connected, but no bundle came from the key service within 2 s: publishes under its "
	                      "scopes are refused (no-key) until one does";
	uint64_t ms = 0;
	ck_assert_int_eq(kfx_lv_connect(s, &ms), VEIL_OK);
	ck_assert_uint_ge(ms, 2000);
	ck_assert_msg(kfx_lv_logged(s, warning), "veil_client_connect said nothing");
	ck_assert_int_eq(kfx_lv_connect(a, &ms), VEIL_OK);
	ck_assert_uint_ge(ms, 2000);
	if (!kfx_lv_logged(a, warning))
		kfx_lv_dump(a, "veil_async");
	ck_assert_msg(kfx_lv_logged(a, warning), "veil_async_connect said nothing");
	ck_assert_int_eq(kfx_lv_publish(s, TOPIC, "too-early"), VEIL_ERR_NO_KEY);
	ck_assert(kfx_lv_logged(s, "publish on '" TOPIC "' REFUSED: no key from the key service yet"));
	ck_assert_int_eq(kfx_lv_publish(a, "factory/fe-async/data", "too-early"), VEIL_ERR_NO_KEY);
	/* veil_async_free ends a wait for keys at once (that connect is never
	 * reported): a third device, its connect waiting up to 300 s. */
	char fconf[400];
	kfx_device("fe-free", NULL, fconf, sizeof(fconf));
	struct kfx_lv_opts slow = { .connect_timeout_s = 300 };
	struct kfx_lv *f = kfx_lv_new(KFX_ASYNC, fconf, &slow);
	kfx_lv_start_connect(f);
	ck_assert(VEIL_WAIT_UNTIL(kfx_lv_logged(f, "connected to "), 10000));
	uint64_t t0 = veil_test_now_ms();
	kfx_lv_free(f);
	ck_assert_uint_lt(veil_test_now_ms() - t0, 300000U);

	/* Under the preload, MQTTAsync_destroy drops a connect success still
	 * waiting for keys, at once: the program never hears of it. */
	char pconf[400];
	kfx_device("fe-pasync", NULL, pconf, sizeof(pconf));
	struct kfx_app app;
	kfx_app_start_async_nowait(&app, pconf, "factory/fe-pasync/data", 300);
	ck_assert(test_file_wait(app.out, "key service request sent", 20000));
	t0 = veil_test_now_ms();
	kfx_app_stop(&app);
	ck_assert_uint_lt(veil_test_now_ms() - t0, 300000U);
	ck_assert_msg(!test_file_has(app.out, "onSuccess"), "the program heard of a connect without keys");

	/* keyd comes: the devices ask again by themselves. */
	kfx_keyd_start();
	ck_assert_int_eq(kfx_lv_wait_keys(s, 60000), VEIL_OK);
	ck_assert_int_eq(kfx_lv_wait_keys(a, 60000), VEIL_OK);
	struct kfx_lv *dash = dashboard("dash-s", false, dconf, sizeof(dconf));
	ck_assert_int_eq(kfx_lv_publish(s, TOPIC, "late-s"), VEIL_OK);
	ck_assert_int_eq(kfx_lv_publish(a, "factory/fe-async/data", "late-a"), VEIL_OK);
	(void)got(dash, "late-s");
	(void)got(dash, "late-a");
	ck_assert_uint_eq(kfx_lv_refused(dash), 0);
	kfx_lv_free(dash);
	kfx_lv_free(a);
	kfx_lv_free(s);
}
END_TEST

START_TEST(will_needs_kept_keys)
{
	kfx_keyd_start();
	char conf[400];
	kfx_device("fe-will", NULL, conf, sizeof(conf));
	struct kfx_lv_opts will = { .will_topic = "factory/fe-will/status", .will_payload = "gone" };
	struct kfx_lv *c = kfx_lv_new(KFX_SYNC, conf, &will);
	ck_assert_int_eq(kfx_lv_connect(c, NULL), VEIL_ERR_NO_KEY);
	ck_assert(kfx_lv_logged(c, "Will on 'factory/fe-will/status' REFUSED: no key from the key service yet"));
	ck_assert(kfx_lv_logged(c, "connect once without the Will"));
	kfx_lv_free(c);
	/* Once without the Will: its keys are kept in state_dir. */
	c = kfx_lv_new(KFX_SYNC, conf, NULL);
	ck_assert_int_eq(kfx_lv_connect(c, NULL), VEIL_OK);
	kfx_lv_free(c);
	c = kfx_lv_new(KFX_SYNC, conf, &will);
	ck_assert_int_eq(kfx_lv_connect(c, NULL), VEIL_OK);
	ck_assert(!kfx_lv_logged(c, "REFUSED"));
	kfx_lv_free(c);
}
END_TEST

static Suite *suite(void)
{
	Suite *su = suite_create("keyd_device_e2e");
	TCase *tc = veil_tcase("device", 90);
	tcase_add_checked_fixture(tc, kfx_setup, kfx_teardown);
	tcase_add_test(tc, restart_seals_from_kept_keys_with_keyd_stopped);
	tcase_add_test(tc, held_until_the_bundle_comes);
	tcase_add_test(tc, held_then_dropped_after_the_grace);
	tcase_add_test(tc, held_at_most_256);
	tcase_add_test(tc, keyd_down_at_first_connect);
	tcase_add_test(tc, will_needs_kept_keys);
	suite_add_tcase(su, tc);
	return su;
}

int main(int argc, char **argv)
{
	return kfx_run(argc, argv, suite);
}
