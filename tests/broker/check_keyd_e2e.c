/*
 * The key service end to end, through real components only (docs/KEYS.md,
 * issue 12): Mosquitto with the Veil plugin, veil-keyd, and devices with no
 * keyring file on every front end of the client session core
 * (tests/support/keys_fixture.h): libveil's veil_client_* and veil_async_*,
 * the preload under an MQTTClient program with callbacks, under an
 * MQTTAsync program, and under an MQTTClient program without callbacks
 * (Paho's synchronous mode, a publish-only program).
 *
 * A fresh fleet: each sender publishes sealed on its own scope right after
 * its connect returned (connected means ready to publish), at QoS 1, and
 * two dashboards on the other libveil flavours open every message, under a
 * key service key id, none lost, none refused (a dashboard that meets a new
 * device's message before its own bundle names that device holds it). Then
 * `veil keys rotate` on the scope: every sender moves to a new key id (seen
 * in struct veil_message.key_id at the dashboards), still none lost and
 * none refused; the program without callbacks gets there because the
 * preload reads for it before its publishes.
 */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "veil/veil.h"

#include "files.h"
#include "keys_fixture.h"
#include "timing.h"

static void setup(void)
{
	kfx_setup();
	kfx_keyd_start();
}

struct sender {
	enum kfx_fe fe;
	struct kfx_lv *lv;    /* libveil */
	struct kfx_app app;   /* the preload */
	char topic[128];
	int sent;             /* messages <id>-0 .. <id>-(sent-1) */
	uint32_t first_key;
};

static void sender_start(struct sender *s, enum kfx_fe fe)
{
	char conf[400];
	s->fe = fe;
	kfx_device(kfx_id[fe], NULL, conf, sizeof(conf));
	snprintf(s->topic, sizeof(s->topic), "factory/%s/data", kfx_id[fe]);
	if (fe == KFX_SYNC || fe == KFX_ASYNC) {
		s->lv = kfx_lv_new(fe, conf, NULL);
		ck_assert_int_eq(kfx_lv_connect(s->lv, NULL), VEIL_OK);
		if (kfx_lv_logged(s->lv, "no bundle came")) {
			kfx_lv_dump(s->lv, kfx_name[fe]);
			test_file_dump("keyd", kfx_env.keyd_log);
		}
		ck_assert_msg(!kfx_lv_logged(s->lv, "no bundle came"), "%s connected without its keys", kfx_name[fe]);
	} else {
		kfx_app_start(&s->app, fe, conf, s->topic, veil_test_ms(10000) / 1000);
		ck_assert_msg(!test_file_has(s->app.out, "no bundle came"), "%s connected without its keys", kfx_name[fe]);
	}
}

/* Publish <id>-<n> at QoS 1: sent and acknowledged. */
static void sender_pub(struct sender *s)
{
	char pt[64];
	snprintf(pt, sizeof(pt), "%s-%d", kfx_id[s->fe], s->sent++);
	if (s->lv) {
		int rc = kfx_lv_publish(s->lv, s->topic, pt);
		if (rc != VEIL_OK)
			kfx_lv_dump(s->lv, kfx_name[s->fe]);
		ck_assert_msg(rc == VEIL_OK, "%s: publish %s refused (%s)", kfx_name[s->fe], pt, veil_errname(rc));
	}
	else
		ck_assert_msg(kfx_app_pub(&s->app, pt) == 0, "%s: publish %s refused (see its output)", kfx_name[s->fe],
		              pt);
}

static void sender_stop(struct sender *s)
{
	if (s->lv)
		kfx_lv_free(s->lv);
	else
		kfx_app_stop(&s->app);
}

/* The sender's latest message at a dashboard, opened under a key service key. */
static uint32_t seen(struct kfx_lv *dash, const char *dname, const struct sender *s)
{
	char pt[64];
	struct kfx_msg m;
	snprintf(pt, sizeof(pt), "%s-%d", kfx_id[s->fe], s->sent - 1);
	if (!kfx_lv_wait_msg(dash, pt, &m, 15000)) {
		kfx_lv_dump(dash, dname);
		if (!s->lv)
			test_file_dump(kfx_name[s->fe], s->app.out);
		ck_abort_msg("%s never opened %s from %s", dname, pt, kfx_name[s->fe]);
	}
	ck_assert_str_eq(m.topic, s->topic);
	ck_assert_uint_ge(m.key_id, VEIL_GRANTED_KEY_ID_MIN);
	return m.key_id;
}

/* Every message of every sender at the dashboard exactly once; nothing refused. */
static void none_lost(struct kfx_lv *dash, const char *dname, const struct sender *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		for (int k = 0; k < s[i].sent; k++) {
			char pt[64];
			snprintf(pt, sizeof(pt), "%s-%d", kfx_id[s[i].fe], k);
			ck_assert_msg(kfx_lv_wait_msg(dash, pt, NULL, 10000), "%s lost %s", dname, pt);
			ck_assert_msg(kfx_lv_count(dash, pt) == 1, "%s got %s %zu times", dname, pt, kfx_lv_count(dash, pt));
		}
	}
	ck_assert_msg(kfx_lv_refused(dash) == 0, "%s refused %zu message(s)", dname, kfx_lv_refused(dash));
}

START_TEST(fleet_ready_at_connect_and_rotation)
{
	char conf[400];
	struct kfx_lv *dash[2];
	const char *dname[2] = { "dashboard (veil_client)", "dashboard (veil_async)" };
	const char *did[2] = { "dash-s", "dash-a" };
	for (int i = 0; i < 2; i++) {
		kfx_device(did[i], "dashboard", conf, sizeof(conf));
		dash[i] = kfx_lv_new(i == 0 ? KFX_SYNC : KFX_ASYNC, conf, NULL);
		ck_assert_int_eq(kfx_lv_connect(dash[i], NULL), VEIL_OK);
		ck_assert_int_eq(kfx_lv_subscribe(dash[i], "factory/#"), VEIL_OK);
	}
	/* Fresh devices, no keyring: the first publish right after connect. */
	static struct sender s[KFX_N];
	memset(s, 0, sizeof(s));
	for (int fe = 0; fe < KFX_N; fe++) {
		sender_start(&s[fe], (enum kfx_fe)fe);
		sender_pub(&s[fe]);
	}
	/* The other front ends open them, under one key per sender. */
	for (int fe = 0; fe < KFX_N; fe++) {
		s[fe].first_key = seen(dash[0], dname[0], &s[fe]);
		ck_assert_uint_eq(seen(dash[1], dname[1], &s[fe]), s[fe].first_key);
	}
	/* A forced rotation of the scope: every instance gets a new epoch. */
	int rotated[KFX_N];
	char needle[KFX_N][128];
	for (int fe = 0; fe < KFX_N; fe++) {
		snprintf(needle[fe], sizeof(needle[fe]), "epoch | rotate | instance=factory/%s/# ", kfx_id[fe]);
		rotated[fe] = kfx_keyd_count(needle[fe]);
	}
	kfx_rotate(KFX_SCOPE, NULL);
	for (int fe = 0; fe < KFX_N; fe++)
		kfx_keyd_wait(needle[fe], rotated[fe] + 1, 10000);
	/* Each sender keeps publishing until its messages carry the new key;
	 * the dashboards open every one (held when it comes before their own
	 * rotation bundle). */
	for (int fe = 0; fe < KFX_N; fe++) {
		struct veil_deadline d = veil_deadline_in(20000);
		uint32_t key = s[fe].first_key;
		while (key == s[fe].first_key) {
			ck_assert_msg(!veil_deadline_passed(&d), "%s still seals with key 0x%08x after the rotation",
			              kfx_name[fe], key);
			sender_pub(&s[fe]);
			key = seen(dash[0], dname[0], &s[fe]);
		}
		ck_assert_uint_eq(seen(dash[1], dname[1], &s[fe]), key);
		fprintf(stderr, "%s: key 0x%08x -> 0x%08x after %d message(s)\n", kfx_name[fe], s[fe].first_key, key,
		        s[fe].sent);
	}
	for (int i = 0; i < 2; i++)
		none_lost(dash[i], dname[i], s, KFX_N);
	for (int fe = 0; fe < KFX_N; fe++)
		sender_stop(&s[fe]);
	for (int i = 0; i < 2; i++)
		kfx_lv_free(dash[i]);
}
END_TEST

static void setup_named(void)
{
	kfx_setup_audience("plant-a");
	kfx_keyd_start(); /* it subscribed: its version 2 login was taken */
}

/* A deployment that refuses version 1 tokens (plugin_opt_token_v1 refuse):
 * keyd logs in with its audience (keyd.conf), and devices named for it get
 * their keys and exchange messages. Without the audience in keyd.conf,
 * keyd's login is refused (token-v1-refused) and it never subscribes. */
START_TEST(named_deployment)
{
	char conf[400];
	kfx_device("dash-n", "dashboard", conf, sizeof(conf));
	struct kfx_lv *dash = kfx_lv_new(KFX_ASYNC, conf, NULL);
	ck_assert_int_eq(kfx_lv_connect(dash, NULL), VEIL_OK);
	ck_assert_int_eq(kfx_lv_subscribe(dash, "factory/#"), VEIL_OK);
	static struct sender s;
	memset(&s, 0, sizeof(s));
	sender_start(&s, KFX_SYNC);
	sender_pub(&s);
	ck_assert_uint_ge(seen(dash, "dashboard", &s), VEIL_GRANTED_KEY_ID_MIN);
	ck_assert(!test_file_has(kfx_env.broker.log, "token-v1-refused"));
	sender_stop(&s);
	kfx_lv_free(dash);
}
END_TEST

static Suite *suite(void)
{
	Suite *su = suite_create("keyd_e2e");
	TCase *tc = veil_tcase("fleet", 120);
	tcase_add_checked_fixture(tc, setup, kfx_teardown);
	tcase_add_test(tc, fleet_ready_at_connect_and_rotation);
	suite_add_tcase(su, tc);
	tc = veil_tcase("named", 60);
	tcase_add_checked_fixture(tc, setup_named, kfx_teardown);
	tcase_add_test(tc, named_deployment);
	suite_add_tcase(su, tc);
	return su;
}

int main(int argc, char **argv)
{
	return kfx_run(argc, argv, suite);
}
