/*
 * "An epoch is a key id" (issue 12): a device on today's static keyring
 * works beside key service devices, through real components only
 * (tests/support/keys_fixture.h: Mosquitto with the Veil plugin, veil-keyd,
 * libveil devices).
 *
 * "legacy" has a keyring file and the key service off: plant/# under key 7,
 * and factory/# under key 9 (a site not yet moved to keyd there). "mixed"
 * takes its factory/mixed/# keys from keyd and also has the keyring's
 * plant/# line, the same key 7. They exchange sealed messages both ways on
 * plant/, each opening the other's under key 7. mixed's messages on its keyd
 * scope reach legacy too (it may read factory/#): well-formed envelopes
 * (an eavesdropper parses them) under a key id of keyd's range, which
 * legacy refuses as unknown-key, never as malformed, and never delivers.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "veil/veil.h"

#include "check_run.h"
#include "files.h"
#include "keys_fixture.h"
#include "material.h"
#include "raw_mqtt.h"
#include "timing.h"

#define STATIC_ID 7U
#define LEGACY_FACTORY_ID 9U

static void setup(void)
{
	kfx_setup_rules("pattern readwrite,encrypted plant/#\n");
	kfx_keyd_start();
}

/* The config kfx_device wrote, with a keyring file of text and the key
 * service set as said. */
static void with_keyring(const char *id, const char *conf, const char *keyring_text, const char *key_service)
{
	char path[400], text[4096];
	ck_assert_int_lt(snprintf(path, sizeof(path), "%s/%s.keyring", kfx_env.dir, id), (int)sizeof(path));
	ck_assert_int_eq(test_write_file(path, keyring_text, 0600), 0);
	size_t len = 0;
	char *was = test_file_read(conf, &len);
	ck_assert_ptr_nonnull(was);
	ck_assert_int_lt(snprintf(text, sizeof(text), "%skeyring %s\nkey_service %s\n", was, path, key_service),
	                 (int)sizeof(text));
	free(was);
	ck_assert_int_eq(test_write_file(conf, text, 0600), 0);
}

static void key_line(char *out, size_t cap, const char *filter, uint32_t id)
{
	uint8_t k[VEIL_KEY_BYTES];
	char b64[64];
	randombytes_buf(k, sizeof(k));
	test_b64(b64, sizeof(b64), k, sizeof(k));
	sodium_memzero(k, sizeof(k));
	ck_assert_int_lt(snprintf(out, cap, "key %s %u %s send\n", filter, id, b64), (int)cap);
}

static void got(struct kfx_lv *l, const char *who, const char *payload, uint32_t key_id)
{
	struct kfx_msg m;
	if (!kfx_lv_wait_msg(l, payload, &m, 10000)) {
		kfx_lv_dump(l, who);
		ck_abort_msg("%s never got %s", who, payload);
	}
	ck_assert_uint_eq(m.key_id, key_id);
	ck_assert_uint_eq(kfx_lv_count(l, payload), 1);
}

START_TEST(static_and_keyd_devices_interoperate)
{
	char plant[200], factory[200], lconf[400], mconf[400], text[600];
	key_line(plant, sizeof(plant), "plant/#", STATIC_ID);
	key_line(factory, sizeof(factory), "factory/#", LEGACY_FACTORY_ID);
	/* legacy reads factory/# (role dashboard), but never asks keyd. */
	kfx_device("legacy", "dashboard", lconf, sizeof(lconf));
	snprintf(text, sizeof(text), "%s%s", plant, factory);
	with_keyring("legacy", lconf, text, "off");
	kfx_device("mixed", NULL, mconf, sizeof(mconf));
	with_keyring("mixed", mconf, plant, "on");
	/* An eavesdropper on factory/# (a raw client with the dashboard role). */
	char cconf[400];
	kfx_device("capture", "dashboard", cconf, sizeof(cconf));
	int cap = kfx_raw_connect("capture");
	ck_assert_int_eq(raw_subscribe(cap, 4, 1, "factory/#", 0, 10000, NULL), 0);

	struct kfx_lv_opts o = { .keyring = true };
	struct kfx_lv *legacy = kfx_lv_new(KFX_SYNC, lconf, &o), *mixed = kfx_lv_new(KFX_ASYNC, mconf, &o);
	ck_assert_int_eq(kfx_lv_connect(legacy, NULL), VEIL_OK);
	ck_assert_int_eq(kfx_lv_connect(mixed, NULL), VEIL_OK);
	ck_assert_msg(!kfx_lv_logged(mixed, "no bundle came"), "mixed connected without its keyd keys");
	ck_assert_msg(!kfx_lv_logged(legacy, "key service request"), "legacy asked the key service");
	ck_assert_int_eq(kfx_lv_subscribe(legacy, "plant/#"), VEIL_OK);
	ck_assert_int_eq(kfx_lv_subscribe(legacy, "factory/#"), VEIL_OK);
	ck_assert_int_eq(kfx_lv_subscribe(mixed, "plant/#"), VEIL_OK);

	/* Both ways on the static topic, under the one static key. */
	ck_assert_int_eq(kfx_lv_publish(legacy, "plant/legacy/t", "from-legacy"), VEIL_OK);
	ck_assert_int_eq(kfx_lv_publish(mixed, "plant/mixed/t", "from-mixed"), VEIL_OK);
	got(mixed, "mixed", "from-legacy", STATIC_ID);
	got(legacy, "legacy", "from-mixed", STATIC_ID);
	/* Each also gets its own (it subscribed to plant/#). */
	got(legacy, "legacy", "from-legacy", STATIC_ID);
	got(mixed, "mixed", "from-mixed", STATIC_ID);

	/* mixed on its keyd scope: legacy refuses it as unknown-key. */
	ck_assert_int_eq(kfx_lv_publish(mixed, "factory/mixed/t", "keyd-scope"), VEIL_OK);
	if (!kfx_lv_wait_refused(legacy, VEIL_ERR_UNKNOWN_KEY, 1, 10000))
		kfx_lv_dump(legacy, "legacy");
	ck_assert_uint_eq(kfx_lv_refused(legacy), 1);
	ck_assert_uint_eq(kfx_lv_count(legacy, "keyd-scope"), 0);
	/* What legacy got: a well-formed envelope under keyd's range. */
	size_t elen = 0;
	uint8_t *env = kfx_raw_wait_publish(cap, "factory/mixed/t", &elen);
	struct veil_envelope_view v;
	ck_assert_int_eq(veil_envelope_parse(env, elen, &v), VEIL_OK);
	ck_assert_uint_ge(v.h.key_id, VEIL_GRANTED_KEY_ID_MIN);
	/* From mixed: its sender id. */
	char key[400];
	snprintf(key, sizeof(key), "%s/mixed.key", kfx_env.dir);
	struct veil_identity *mid = NULL;
	ck_assert_int_eq(veil_identity_load(key, &mid, NULL, 0), VEIL_OK);
	uint8_t pk[VEIL_PK_BYTES], sid[VEIL_SENDER_ID_BYTES];
	veil_identity_public(mid, pk);
	veil_identity_free(&mid);
	veil_sender_id(pk, sid);
	ck_assert_mem_eq(v.h.sender, sid, sizeof(sid));
	free(env);
	raw_disconnect(cap);
	close(cap);

	/* And legacy still opens mixed's static messages afterwards. */
	ck_assert_int_eq(kfx_lv_publish(mixed, "plant/mixed/t", "from-mixed-2"), VEIL_OK);
	got(legacy, "legacy", "from-mixed-2", STATIC_ID);
	ck_assert_uint_eq(kfx_lv_refused(legacy), 1);
	ck_assert_uint_eq(kfx_lv_refused(mixed), 0);
	kfx_lv_free(mixed);
	kfx_lv_free(legacy);
}
END_TEST

static Suite *suite(void)
{
	Suite *su = suite_create("keyd_static_interop");
	TCase *tc = veil_tcase("interop", 60);
	tcase_add_checked_fixture(tc, setup, kfx_teardown);
	tcase_add_test(tc, static_and_keyd_devices_interoperate);
	suite_add_tcase(su, tc);
	return su;
}

int main(int argc, char **argv)
{
	return kfx_run(argc, argv, suite);
}
