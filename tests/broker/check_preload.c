/*
 * libveil_preload.so against a real Mosquitto and Debian's UNMODIFIED Paho
 * sample programs: paho_c_pub/paho_c_sub (MQTTAsync, libpaho-mqtt3as) and
 * paho_cs_pub/paho_cs_sub (MQTTClient, libpaho-mqtt3cs; the MQTTClient_*
 * examples hard-code a public broker, so they cannot be pointed at ours).
 *
 * Every exchange runs next to a plain `mosquitto_sub -t '#' -v` observer that
 * is NOT preloaded: it must see the messages, but only as envelopes (the
 * plaintext never occurs in what it printed). Misconfiguration (no
 * VEIL_CONFIG, unreadable/absent keyring, bad config line) and a topic
 * without policy must make the app fail loudly with nothing sent.
 *
 * Also: signed envelopes, the will sealed at CONNECT, "log none", replays
 * dropped across a restart, and a broker with the Veil plugin that must
 * accept the injected token logins. Material and helpers:
 * tests/support/preload_fixture.h (identities, credentials and keyring made
 * with the core API in a temp dir).
 */
#define _GNU_SOURCE /* memmem */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sodium.h>

#include "veil/veil.h"
#include "check_run.h"
#include "preload_fixture.h"
#include "proc.h"
#include "timing.h"

/* A preloaded subscriber (it logs in as dev-sub) on topic, subscribed when
 * this returns; version NULL: the app's default. Its output file in out. */
static pid_t start_sub(const char *bin, const char *topic, const char *conf, const char *version, char *out,
                       size_t cap)
{
	preload_out_path(out, cap, "sub");
	int before = preload_subacks("dev-sub");
	const char *with_v[] = { bin, "-t", topic, "-h", "127.0.0.1", "-p", preload_env.port_s, "-V", version, NULL };
	const char *without[] = { bin, "-t", topic, "-h", "127.0.0.1", "-p", preload_env.port_s, NULL };
	pid_t pid = preload_spawn(version ? with_v : without, true, conf, out);
	preload_wait_subscribed("dev-sub", before, bin, out);
	return pid;
}

/*
 * One end-to-end exchange: a preloaded subscriber, a plain observer, and a
 * preloaded publisher; the subscriber must print the plaintext.
 * flags: the envelope flags byte the observer must see (1 = signed).
 */
static void exchange_ex(const char *pub_bin, const char *pconf, const char *sub_bin, const char *version,
                        char flags)
{
	char obs_out[300], sub_out[300], secret[96];
	pid_t obs = preload_observer_start(obs_out, sizeof(obs_out));
	pid_t sub = start_sub(sub_bin, PRELOAD_TOPIC, preload_env.sub_conf, version, sub_out, sizeof(sub_out));
	bool got = preload_publish_seen(pub_bin, pconf, version, sub_out, "reactor", secret, sizeof(secret));
	if (!got) {
		test_file_dump("subscriber", sub_out);
		test_file_dump("observer", obs_out);
	}
	ck_assert_msg(got, "%s never printed what %s published", sub_bin, pub_bin);
	/* "-v" prints topic, space, payload: version byte 1, then the flags. */
	char seen[128];
	int n = snprintf(seen, sizeof(seen), "%s \x01%c", PRELOAD_TOPIC, flags);
	ck_assert_msg(test_file_wait_n(obs_out, seen, (size_t)n, 5000), "observer did not see an envelope (flags %d) on %s",
	              flags, PRELOAD_TOPIC);
	test_stop(sub);
	test_stop(obs);
	ck_assert_msg(!test_file_has(obs_out, "reactor-"), "plaintext visible to a plain subscriber");
	ck_assert_msg(!test_file_has(sub_out, "DROPPED"), "subscriber dropped a genuine message");
	/* The Veil login was injected: the credential's client id replaced the
	 * apps' defaults and is also the username. */
	const char *blog = preload_env.broker.log;
	if (!test_file_wait(blog, "as dev-pub", 2000))
		test_file_dump("broker", blog);
	ck_assert(test_file_has(blog, "as dev-pub"));
	ck_assert(test_file_has(blog, "as dev-sub"));
	ck_assert(test_file_has(blog, "u'dev-pub'"));
	ck_assert(test_file_has(blog, "u'dev-sub'"));
}

static void exchange(const char *pub_bin, const char *sub_bin, const char *version)
{
	exchange_ex(pub_bin, preload_env.pub_conf, sub_bin, version, '\0');
}

/* Through the Veil plugin: tokens verified, nonces cached, no refusal. */
START_TEST(plugin_accepts_injected_login)
{
	exchange("paho_c_pub", "paho_cs_sub", "311");
	exchange("paho_cs_pub", "paho_c_sub", "5");
	const char *blog = preload_env.broker.log;
	if (!test_file_has(blog, "veil: auth | accept | client=dev-pub"))
		test_file_dump("broker", blog);
	ck_assert(test_file_has(blog, "veil: auth | accept | client=dev-pub"));
	ck_assert(test_file_has(blog, "veil: auth | accept | client=dev-sub"));
	ck_assert(!test_file_has(blog, "veil: auth | refuse |"));
}
END_TEST

START_TEST(async_pub_async_sub_v311)
{
	exchange("paho_c_pub", "paho_c_sub", "311");
}
END_TEST

START_TEST(async_pub_async_sub_v5)
{
	exchange("paho_c_pub", "paho_c_sub", "5");
}
END_TEST

START_TEST(sync_pub_sync_sub_v5)
{
	exchange("paho_cs_pub", "paho_cs_sub", "5");
}
END_TEST

START_TEST(sync_pub_async_sub_v311)
{
	exchange("paho_cs_pub", "paho_c_sub", "311");
}
END_TEST

START_TEST(async_pub_sync_sub_v311)
{
	exchange("paho_c_pub", "paho_cs_sub", "311");
}
END_TEST

/* Output of the last refused app (a test may look at it again). */
static char refused_out[300];

/*
 * The app must fail, say why on stderr, and put nothing on the wire: the
 * observer (subscribed to '#') never sees the secret nor the topic.
 * app_decides: the app need not exit on its own (it may wait forever for a
 * delivery that never comes): the refusal line is the event, then it is
 * stopped.
 */
static void expect_refused_args(const char *bin, const char *config, const char *topic, const char *why,
                                bool app_decides, const char *x1, const char *x2)
{
	char obs_out[300], secret[64];
	pid_t obs = preload_observer_start(obs_out, sizeof(obs_out));
	preload_out_path(refused_out, sizeof(refused_out), "refused");
	const char *out = refused_out;
	snprintf(secret, sizeof(secret), "must-not-leak-%08x", randombytes_random());
	const char *argv[] = { bin, "-t", topic, "-m", secret, "-h", "127.0.0.1", "-p", preload_env.port_s, x1, x2, NULL };
	pid_t app = preload_spawn(argv, true, config, out);
	int rc = 0;
	if (app_decides) {
		if (!test_file_wait(out, why, 15000))
			test_file_dump(bin, out);
		test_stop(app);
	} else {
		rc = test_wait_exit(app, 15000);
		if (rc == 0 || rc == -1 || !test_file_has(out, why))
			test_file_dump(bin, out);
		ck_assert_msg(rc != 0 && rc != -1, "%s exited %d", bin, rc);
	}
	ck_assert_msg(test_file_has(out, why), "no '%s' on stderr", why);
	ck_assert_msg(test_file_has(out, "veil-preload"), "not attributed to veil-preload");
	/* The app is gone and everything it sent was already in the broker's
	 * socket: the broker routes that before the marker, which needs a
	 * CONNECT round trip of its own first. */
	preload_observer_sync(obs_out);
	test_stop(obs);
	ck_assert_msg(!test_file_has(obs_out, secret), "secret reached the broker");
	char t[128];
	snprintf(t, sizeof(t), "%s ", topic);
	ck_assert_msg(!test_file_has(obs_out, t), "something was published on %s", topic);
}

static void expect_refused_ex(const char *bin, const char *config, const char *topic, const char *why,
                              bool app_decides)
{
	expect_refused_args(bin, config, topic, why, app_decides, NULL, NULL);
}

static void expect_refused(const char *bin, const char *config, const char *topic, const char *why)
{
	expect_refused_ex(bin, config, topic, why, false);
}

START_TEST(config_unset_fails_loudly)
{
	expect_refused("paho_c_pub", NULL, PRELOAD_TOPIC, "VEIL_CONFIG is not set");
	expect_refused("paho_cs_pub", NULL, PRELOAD_TOPIC, "VEIL_CONFIG is not set");
}
END_TEST

START_TEST(unreadable_keyring_fails_loudly)
{
	char conf[512], body[1024], kr[512];
	/* absent */
	preload_path(conf, sizeof(conf), "nokr.conf");
	preload_write_conf(conf, "identity pub.key\ncredential pub.cred\nkeyring missing-keyring\n");
	expect_refused("paho_c_pub", conf, PRELOAD_TOPIC, "missing-keyring");
	/* group readable: a secret file others can read is refused */
	preload_path(kr, sizeof(kr), "keyring-0640");
	size_t len;
	char *text = test_file_read(preload_env.kr_path, &len);
	ck_assert_ptr_nonnull(text);
	ck_assert_int_eq(test_write_file(kr, text, 0640), 0);
	sodium_memzero(text, len);
	free(text);
	preload_path(conf, sizeof(conf), "permkr.conf");
	snprintf(body, sizeof(body), "identity pub.key\ncredential pub.cred\nkeyring %s\n", kr);
	preload_write_conf(conf, body);
	expect_refused("paho_cs_pub", conf, PRELOAD_TOPIC, "keyring");
	expect_refused("paho_c_pub", conf, PRELOAD_TOPIC, "NOT ACTIVE");
}
END_TEST

START_TEST(bad_config_line_fails_loudly)
{
	char conf[512], want[600];
	preload_path(conf, sizeof(conf), "bad.conf");
	preload_write_conf(conf, "identity pub.key\ncredential pub.cred\nkeyring keyring\npassword hunter2\n");
	snprintf(want, sizeof(want), "%s:4:", conf);
	expect_refused("paho_c_pub", conf, PRELOAD_TOPIC, want);
	ck_assert_msg(!test_file_has(refused_out, "hunter2"), "a secret from the config was echoed");
}
END_TEST

START_TEST(topic_without_policy_not_published)
{
	/* The publish call fails, but what the app does next is its own choice:
	 * paho_c_pub waits forever for the delivery, paho_cs_pub exits 0. What
	 * matters is the loud line and an empty wire. */
	expect_refused_ex("paho_c_pub", preload_env.pub_conf, "other/topic", "REFUSED", true);
	expect_refused_ex("paho_cs_pub", preload_env.pub_conf, "other/topic", "REFUSED", true);
}
END_TEST

/* A plaintext or forged message on a protected topic never reaches the app. */
START_TEST(injected_plaintext_dropped)
{
	char sub_out[300], forged_file[300];
	pid_t sub = start_sub("paho_c_sub", PRELOAD_TOPIC, preload_env.sub_conf, NULL, sub_out, sizeof(sub_out));
	preload_plain_publish(PRELOAD_TOPIC, "-m", "injected-plaintext");
	bool dropped = test_file_wait(sub_out, "DROPPED", 5000);
	if (!dropped)
		test_file_dump("subscriber", sub_out);
	ck_assert_msg(dropped, "no DROPPED line from the subscriber");
	int before = test_file_count(sub_out, "DROPPED");

	/* Forged: a well-formed v1 header naming the real key id 7, random
	 * check value, sender, sequence and nonce, then random "ciphertext". */
	uint8_t env[VEIL_HEADER_BYTES + 40];
	randombytes_buf(env, sizeof(env));
	env[0] = 1;
	env[1] = 0;
	env[2] = env[3] = env[4] = 0;
	env[5] = 7;
	snprintf(forged_file, sizeof(forged_file), "%s/forged-%d.bin", preload_env.dir, (int)getpid());
	FILE *f = fopen(forged_file, "wb");
	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(env, 1, sizeof(env), f), sizeof(env));
	fclose(f);
	preload_plain_publish(PRELOAD_TOPIC, "-f", forged_file);
	bool counted = test_file_wait_count(sub_out, "DROPPED", before + 1, 5000);
	test_stop(sub);
	if (!counted || test_file_count(sub_out, "DROPPED") != before + 1)
		test_file_dump("subscriber", sub_out);
	ck_assert_int_eq(test_file_count(sub_out, "DROPPED"), before + 1);
	ck_assert_msg(!test_file_has(sub_out, "injected-plaintext"), "plaintext delivered to the app");
	ck_assert_msg(!test_file_has_n(sub_out, env + VEIL_HEADER_BYTES, 8), "forgery delivered to the app");
}
END_TEST

START_TEST(sign_always_signs)
{
	exchange_ex("paho_c_pub", preload_env.signed_conf, "paho_cs_sub", "311", '\x01');
}
END_TEST

/* The will is in CONNECT, so it is sealed at connect time; the broker
 * publishes it when the client dies, and receivers open it like any message. */
START_TEST(will_is_sealed)
{
	char obs_out[300], sub_out[300], will_out[300], probe[96], gone[64];
	pid_t obs = preload_observer_start(obs_out, sizeof(obs_out));
	pid_t sub = start_sub("paho_c_sub", "veil/#", preload_env.sub_conf, NULL, sub_out, sizeof(sub_out));
	ck_assert(preload_publish_seen("paho_c_pub", preload_env.pub_conf, "311", sub_out, "probe", probe, sizeof(probe)));

	snprintf(gone, sizeof(gone), "device-gone-%08x", randombytes_random());
	preload_out_path(will_out, sizeof(will_out), "will");
	const char *wargv[] = { "paho_c_sub", "-t", "veil/unused", "-h", "127.0.0.1", "-p", preload_env.port_s,
		                "--will-topic", "veil/plant/status", "--will-payload", gone, NULL };
	int before = preload_subacks("dev-will");
	pid_t w = preload_spawn(wargv, true, preload_env.will_conf, will_out);
	/* Connected (the will is stored with CONNECT) and fully up. */
	preload_wait_subscribed("dev-will", before, "will client", will_out);
	kill(w, SIGKILL); /* no DISCONNECT: the broker must publish the will */
	waitpid(w, NULL, 0);
	bool got = test_file_wait(sub_out, gone, 10000);
	if (!got)
		test_file_dump("subscriber", sub_out);
	ck_assert_msg(got, "the will never reached the subscriber in plaintext");
	test_stop(sub);
	static const char will_env[] = "veil/plant/status \x01";
	bool enveloped = test_file_wait_n(obs_out, will_env, sizeof(will_env) - 1, 5000);
	test_stop(obs);
	if (!enveloped)
		test_file_dump("observer", obs_out);
	ck_assert_msg(enveloped, "the observer never saw the will's envelope");
	ck_assert_msg(!test_file_has(obs_out, gone), "will visible in clear");
	ck_assert_msg(!test_file_has(obs_out, probe), "probe visible in clear");
}
END_TEST

START_TEST(will_without_policy_refused)
{
	expect_refused_args("paho_c_pub", preload_env.pub_conf, PRELOAD_TOPIC, "will message cannot be sealed", true,
	                    "--will-topic", "other/status");
}
END_TEST

/* "log none": a dropped message is silent, and still never delivered. */
START_TEST(log_none_drops_silently)
{
	char sub_out[300], secret[96];
	pid_t sub = start_sub("paho_c_sub", PRELOAD_TOPIC, preload_env.quiet_conf, NULL, sub_out, sizeof(sub_out));
	ck_assert(preload_publish_seen("paho_c_pub", preload_env.pub_conf, "311", sub_out, "first", secret, sizeof(secret)));
	preload_plain_publish(PRELOAD_TOPIC, "-m", "quiet-injected");
	/* The marker: published after the injection's publisher is gone, so the
	 * broker routed the injection first. Once the marker shows, the
	 * injected message has been handled. */
	ck_assert(preload_publish_seen("paho_c_pub", preload_env.pub_conf, "311", sub_out, "after", secret, sizeof(secret)));
	test_stop(sub);
	ck_assert_msg(!test_file_has(sub_out, "quiet-injected"), "plaintext delivered to the app");
	ck_assert_msg(!test_file_has(sub_out, "veil-preload"), "log none printed something");
}
END_TEST

/* A captured envelope published again is a replay: dropped, also by a
 * subscriber restarted on the same state_dir (windows persisted at exit). */
START_TEST(replay_dropped_across_restart)
{
	char cap_out[300], env_file[300], sub_out[300], secret[96], cap_id[64];
	snprintf(env_file, sizeof(env_file), "%s/captured-%d.bin", preload_env.dir, (int)getpid());
	preload_out_path(cap_out, sizeof(cap_out), "capture");
	snprintf(cap_id, sizeof(cap_id), "capture-%d-%u", (int)getpid(), preload_env.counter);
	/* The exact payload bytes: one message, no topic, no delimiter. */
	const char *cargv[] = { "sh", "-c", "exec mosquitto_sub -h 127.0.0.1 -p \"$0\" -i \"$1\" -t \"$2\" -C 1 -N > \"$3\"",
		                preload_env.port_s, cap_id, PRELOAD_TOPIC, env_file, NULL };
	int before = preload_subacks(cap_id);
	pid_t cap = preload_spawn(cargv, false, NULL, cap_out);
	/* The capture must be subscribed before the first message lands. */
	preload_wait_subscribed(cap_id, before, "capture", cap_out);
	pid_t sub = start_sub("paho_c_sub", PRELOAD_TOPIC, preload_env.sub_conf, NULL, sub_out, sizeof(sub_out));
	ck_assert(preload_publish_seen("paho_c_pub", preload_env.pub_conf, "311", sub_out, "once", secret, sizeof(secret)));
	ck_assert_int_eq(test_wait_exit(cap, 5000), 0);
	struct stat st;
	ck_assert_int_eq(stat(env_file, &st), 0);
	ck_assert_int_gt(st.st_size, 64);
	preload_plain_publish(PRELOAD_TOPIC, "-f", env_file);
	bool dropped = test_file_wait(sub_out, "(replay)", 5000);
	if (!dropped)
		test_file_dump("subscriber", sub_out);
	ck_assert_msg(dropped, "a replayed envelope was not dropped as a replay");
	test_stop(sub);

	/* Restart: same client id, same state_dir. */
	sub = start_sub("paho_c_sub", PRELOAD_TOPIC, preload_env.sub_conf, NULL, sub_out, sizeof(sub_out));
	char fresh[96];
	ck_assert(preload_publish_seen("paho_c_pub", preload_env.pub_conf, "311", sub_out, "fresh", fresh, sizeof(fresh)));
	preload_plain_publish(PRELOAD_TOPIC, "-f", env_file);
	dropped = test_file_wait(sub_out, "(replay)", 5000);
	if (!dropped)
		test_file_dump("restarted subscriber", sub_out);
	ck_assert_msg(dropped, "after a restart the replay was accepted");
	test_stop(sub);
	size_t n;
	char *text = test_file_read(sub_out, &n);
	ck_assert_ptr_nonnull(text);
	/* The first plaintext must not show up a second time in the new process. */
	ck_assert_ptr_null(memmem(text, n, secret, strlen(secret)));
	free(text);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("preload");
	TCase *tc = veil_tcase("paho-samples", 10);
	tcase_add_unchecked_fixture(tc, preload_plain_broker_start, preload_broker_stop);
	tcase_add_test(tc, async_pub_async_sub_v311);
	tcase_add_test(tc, async_pub_async_sub_v5);
	tcase_add_test(tc, sync_pub_sync_sub_v5);
	tcase_add_test(tc, sync_pub_async_sub_v311);
	tcase_add_test(tc, async_pub_sync_sub_v311);
	tcase_add_test(tc, config_unset_fails_loudly);
	tcase_add_test(tc, unreadable_keyring_fails_loudly);
	tcase_add_test(tc, bad_config_line_fails_loudly);
	tcase_add_test(tc, topic_without_policy_not_published);
	tcase_add_test(tc, injected_plaintext_dropped);
	tcase_add_test(tc, sign_always_signs);
	tcase_add_test(tc, will_is_sealed);
	tcase_add_test(tc, will_without_policy_refused);
	tcase_add_test(tc, log_none_drops_silently);
	tcase_add_test(tc, replay_dropped_across_restart);
	suite_add_tcase(s, tc);
	TCase *tp = veil_tcase("veil-plugin", 10);
	tcase_add_unchecked_fixture(tp, preload_plugin_broker_start, preload_broker_stop);
	tcase_add_test(tp, plugin_accepts_injected_login);
	suite_add_tcase(s, tp);
	return s;
}

int main(void)
{
	int rc = veil_check_run(suite());
	preload_cleanup();
	return rc;
}
