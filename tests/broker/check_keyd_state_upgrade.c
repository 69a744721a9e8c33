/*
 * "Today's state_dir keeps its sequence mark after upgrade" (issue 12),
 * through real components only (tests/support/keys_fixture.h: Mosquitto
 * with the Veil plugin, veil-keyd, libveil devices).
 *
 * "dev" runs as today: a keyring file (plant/# under key 7), the key
 * service off, a state_dir whose sequence mark is an hour ahead of the
 * clock (a sender that once ran with its clock ahead: the mark, not the
 * clock, keeps its sequences new). It publishes; the receiver "recv"
 * (keyring and key service, running throughout) opens its messages, the
 * highest sequence N. dev stops, and starts again with the same identity,
 * keyring and state_dir, now with the key service on: its next envelopes,
 * on the static topic and on its keyd scope, carry sequences above N and
 * recv accepts them (from the clock alone they would be an hour below N:
 * refused as replays). Its first run's envelope, published again with its
 * own login, is still refused as a replay.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
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
#define AHEAD_US (3600ULL * 1000000ULL)

static void setup(void)
{
	kfx_setup_rules("pattern readwrite,encrypted plant/#\n");
	kfx_keyd_start();
}

/* conf (kfx_device's) with a keyring file and the key service set. */
static void conf_write(const char *conf, const char *base, const char *keyring, const char *key_service)
{
	char text[4096];
	ck_assert_int_lt(snprintf(text, sizeof(text), "%skeyring %s\nkey_service %s\n", base, keyring, key_service),
	                 (int)sizeof(text));
	ck_assert_int_eq(test_write_file(conf, text, 0600), 0);
}

static uint64_t now_us(void)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	return (uint64_t)tv.tv_sec * 1000000ULL + (uint64_t)tv.tv_usec;
}

static struct kfx_msg got(struct kfx_lv *l, const char *payload)
{
	struct kfx_msg m;
	if (!kfx_lv_wait_msg(l, payload, &m, 10000)) {
		kfx_lv_dump(l, "recv");
		ck_abort_msg("recv never got %s", payload);
	}
	ck_assert_uint_eq(kfx_lv_count(l, payload), 1);
	return m;
}

START_TEST(sequence_mark_survives_the_upgrade)
{
	/* One static key, in both devices' keyrings. */
	uint8_t key[VEIL_KEY_BYTES];
	char b64[64], line[200], keyring[400];
	randombytes_buf(key, sizeof(key));
	test_b64(b64, sizeof(b64), key, sizeof(key));
	sodium_memzero(key, sizeof(key));
	snprintf(line, sizeof(line), "key plant/# %u %s send\n", STATIC_ID, b64);
	snprintf(keyring, sizeof(keyring), "%s/plant.keyring", kfx_env.dir);
	ck_assert_int_eq(test_write_file(keyring, line, 0600), 0);

	char rconf[400], dconf[400];
	kfx_device("recv", "dashboard", rconf, sizeof(rconf));
	size_t len = 0;
	char *base = test_file_read(rconf, &len);
	ck_assert_ptr_nonnull(base);
	conf_write(rconf, base, keyring, "on");
	free(base);
	kfx_device("dev", NULL, dconf, sizeof(dconf));
	char *dbase = test_file_read(dconf, &len);
	ck_assert_ptr_nonnull(dbase);
	conf_write(dconf, dbase, keyring, "off");

	/* dev's state_dir as an earlier run left it: its mark an hour ahead. */
	char state[400], seqf[420];
	snprintf(state, sizeof(state), "%s/dev.state", kfx_env.dir);
	snprintf(seqf, sizeof(seqf), "%s/seq", state);
	ck_assert_int_eq(mkdir(state, 0700), 0);
	struct veil_seq *sq = NULL;
	ck_assert_int_eq(veil_seq_open(seqf, now_us() + AHEAD_US, &sq), VEIL_OK);
	veil_seq_close(&sq);

	struct kfx_lv_opts o = { .keyring = true };
	struct kfx_lv *recv = kfx_lv_new(KFX_SYNC, rconf, &o);
	ck_assert_int_eq(kfx_lv_connect(recv, NULL), VEIL_OK);
	ck_assert_int_eq(kfx_lv_subscribe(recv, "plant/#"), VEIL_OK);
	ck_assert_int_eq(kfx_lv_subscribe(recv, "factory/#"), VEIL_OK);
	/* What dev's first run sends, recorded (a raw reader of plant/#). */
	char cconf[400];
	kfx_device("capture", "dashboard", cconf, sizeof(cconf));
	int cap = kfx_raw_connect("capture");
	ck_assert_int_eq(raw_subscribe(cap, 4, 1, "plant/#", 0, 10000, NULL), 0);

	/* Run 1: today's device, static keyring only. */
	struct kfx_lv *dev = kfx_lv_new(KFX_SYNC, dconf, &o);
	ck_assert_int_eq(kfx_lv_connect(dev, NULL), VEIL_OK);
	ck_assert_msg(!kfx_lv_logged(dev, "key service request"), "the static device asked the key service");
	uint64_t n = 0;
	char pt[32];
	for (int i = 0; i < 3; i++) {
		snprintf(pt, sizeof(pt), "run1-%d", i);
		ck_assert_int_eq(kfx_lv_publish(dev, "plant/dev/t", pt), VEIL_OK);
		struct kfx_msg m = got(recv, pt);
		ck_assert_uint_eq(m.key_id, STATIC_ID);
		ck_assert_uint_gt(m.seq, n);
		n = m.seq;
	}
	kfx_lv_free(dev);
	ck_assert_uint_gt(n, now_us() + AHEAD_US / 2); /* the mark, not the clock, set them */
	/* The first run's first envelope, as the broker carried it. */
	size_t old_len = 0;
	uint8_t *old = kfx_raw_wait_publish(cap, "plant/dev/t", &old_len);
	raw_disconnect(cap);
	close(cap);

	/* Run 2: the same identity, keyring and state_dir, key service on. */
	conf_write(dconf, dbase, keyring, "on");
	free(dbase);
	dev = kfx_lv_new(KFX_ASYNC, dconf, &o);
	ck_assert_int_eq(kfx_lv_connect(dev, NULL), VEIL_OK);
	ck_assert_msg(!kfx_lv_logged(dev, "no bundle came"), "the upgraded device connected without its keyd keys");
	ck_assert_int_eq(kfx_lv_publish(dev, "plant/dev/t", "run2-static"), VEIL_OK);
	ck_assert_int_eq(kfx_lv_publish(dev, "factory/dev/t", "run2-keyd"), VEIL_OK);
	struct kfx_msg s2 = got(recv, "run2-static"), k2 = got(recv, "run2-keyd");
	ck_assert_uint_eq(s2.key_id, STATIC_ID);
	ck_assert_uint_ge(k2.key_id, VEIL_GRANTED_KEY_ID_MIN);
	ck_assert_msg(s2.seq > n && k2.seq > n, "sequences %llu and %llu after the upgrade, not above %llu",
	              (unsigned long long)s2.seq, (unsigned long long)k2.seq, (unsigned long long)n);
	ck_assert_uint_eq(kfx_lv_refused(recv), 0);
	kfx_lv_free(dev);

	/* The first run's envelope again, with dev's own login: a replay. */
	int fd = kfx_raw_connect("dev");
	ck_assert(raw_publish(fd, 4, "plant/dev/t", old, old_len, 1, 1, 10000));
	if (!kfx_lv_wait_refused(recv, VEIL_ERR_REPLAY, 1, 10000))
		kfx_lv_dump(recv, "recv");
	ck_assert_uint_eq(kfx_lv_refused(recv), 1);
	ck_assert_uint_eq(kfx_lv_count(recv, "run1-0"), 1);
	raw_disconnect(fd);
	close(fd);
	free(old);
	kfx_lv_free(recv);
}
END_TEST

static Suite *suite(void)
{
	Suite *su = suite_create("keyd_state_upgrade");
	TCase *tc = veil_tcase("upgrade", 60);
	tcase_add_checked_fixture(tc, setup, kfx_teardown);
	tcase_add_test(tc, sequence_mark_survives_the_upgrade);
	suite_add_tcase(su, tc);
	return su;
}

int main(int argc, char **argv)
{
	return kfx_run(argc, argv, suite);
}
