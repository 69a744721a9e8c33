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
 * check_preload_fixture.h (identities, credentials and keyring made with the
 * core API in a temp dir).
 */
#define _GNU_SOURCE /* memmem */
#include "check_preload_fixture.h"
#include "check_run.h"

/*
 * One end-to-end exchange: a preloaded subscriber, a plain observer, and a
 * preloaded publisher retried until the subscriber printed the plaintext.
 * flags: the envelope flags byte the observer must see (1 = signed).
 */
static void exchange_ex(const char *pub_bin, const char *pconf, const char *sub_bin, const char *version,
                        char flags)
{
	char obs_out[300], sub_out[300], secret[96];
	pid_t obs = start_observer(obs_out, sizeof(obs_out));
	snprintf(sub_out, sizeof(sub_out), "%s/sub-%d-%u.out", dir, (int)getpid(), ++counter);
	const char *sargv[] = { sub_bin, "-t", TOPIC, "-h", "127.0.0.1", "-p", port_s, "-V", version, NULL };
	pid_t sub = spawn(sargv, true, sub_conf, sub_out);
	bool got = publish_until_seen(pub_bin, pconf, version, sub_out, "reactor", secret, sizeof(secret));
	if (!got) {
		dump("subscriber", sub_out);
		dump("observer", obs_out);
	}
	ck_assert_msg(got, "%s never printed what %s published", sub_bin, pub_bin);
	/* "-v" prints topic, space, payload: version byte 1, then the flags. */
	char seen[128];
	int n = snprintf(seen, sizeof(seen), "%s \x01%c", TOPIC, flags);
	for (int t = 0; t < 3000 && !file_has_n(obs_out, seen, (size_t)n); t += 50)
		sleep_ms(50);
	ck_assert_msg(file_has_n(obs_out, seen, (size_t)n), "observer did not see an envelope (flags %d) on %s",
	              flags, TOPIC);
	stop(sub);
	stop(obs);
	ck_assert_msg(!file_has(obs_out, "reactor-"), "plaintext visible to a plain subscriber");
	ck_assert_msg(!file_has(sub_out, "DROPPED"), "subscriber dropped a genuine message");
	/* The Veil login was injected: the credential's client id replaced the
	 * apps' defaults and is also the username. */
	const char *blog = broker.log;
	if (!wait_file_has(blog, "as dev-pub", 2000))
		dump("broker", blog);
	ck_assert(file_has(blog, "as dev-pub"));
	ck_assert(file_has(blog, "as dev-sub"));
	ck_assert(file_has(blog, "u'dev-pub'"));
	ck_assert(file_has(blog, "u'dev-sub'"));
}

static void exchange(const char *pub_bin, const char *sub_bin, const char *version)
{
	exchange_ex(pub_bin, pub_conf, sub_bin, version, '\0');
}

/* Through the Veil plugin: tokens verified, nonces cached, no refusal. */
START_TEST(plugin_accepts_injected_login)
{
	exchange("paho_c_pub", "paho_cs_sub", "311");
	exchange("paho_cs_pub", "paho_c_sub", "5");
	const char *blog = broker.log;
	if (!file_has(blog, "veil: auth | accept | client=dev-pub"))
		dump("broker", blog);
	ck_assert(file_has(blog, "veil: auth | accept | client=dev-pub"));
	ck_assert(file_has(blog, "veil: auth | accept | client=dev-sub"));
	ck_assert(!file_has(blog, "veil: auth | refuse |"));
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

/*
 * The app must fail, say why on stderr, and put nothing on the wire: the
 * observer (subscribed to '#') never sees the secret nor the topic.
 */
static void expect_refused_args(const char *bin, const char *config, const char *topic, const char *why,
                                bool app_decides, const char *x1, const char *x2)
{
	char obs_out[300], out[300], secret[64];
	pid_t obs = start_observer(obs_out, sizeof(obs_out));
	snprintf(out, sizeof(out), "%s/refused-%d-%u.out", dir, (int)getpid(), ++counter);
	snprintf(secret, sizeof(secret), "must-not-leak-%08x", randombytes_random());
	const char *argv[] = { bin, "-t", topic, "-m", secret, "-h", "127.0.0.1", "-p", port_s, x1, x2, NULL };
	int rc = wait_exit(spawn(argv, true, config, out), app_decides ? 3000 : 15000);
	if ((!app_decides && (rc == 0 || rc == -1)) || !file_has(out, why))
		dump(bin, out);
	if (!app_decides)
		ck_assert_msg(rc != 0 && rc != -1, "%s exited %d", bin, rc);
	ck_assert_msg(file_has(out, why), "no '%s' on stderr", why);
	ck_assert_msg(file_has(out, "veil-preload"), "not attributed to veil-preload");
	sleep_ms(300); /* a leak would have reached the observer by now */
	stop(obs);
	ck_assert_msg(!file_has(obs_out, secret), "secret reached the broker");
	char t[128];
	snprintf(t, sizeof(t), "%s ", topic);
	ck_assert_msg(!file_has(obs_out, t), "something was published on %s", topic);
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
	expect_refused("paho_c_pub", NULL, TOPIC, "VEIL_CONFIG is not set");
	expect_refused("paho_cs_pub", NULL, TOPIC, "VEIL_CONFIG is not set");
}
END_TEST

START_TEST(unreadable_keyring_fails_loudly)
{
	char conf[512], body[1024], kr[512];
	/* absent */
	pathf(conf, sizeof(conf), "nokr.conf");
	write_conf(conf, "identity pub.id\ncredential pub.cred\nkeyring missing-keyring\n");
	expect_refused("paho_c_pub", conf, TOPIC, "missing-keyring");
	/* group readable: a secret file others can read is refused */
	pathf(kr, sizeof(kr), "keyring-0640");
	size_t len;
	char *text = slurp(kr_path, &len);
	ck_assert_ptr_nonnull(text);
	ck_assert_int_eq(test_write_file(kr, text, 0640), 0);
	sodium_memzero(text, len);
	free(text);
	pathf(conf, sizeof(conf), "permkr.conf");
	snprintf(body, sizeof(body), "identity pub.id\ncredential pub.cred\nkeyring %s\n", kr);
	write_conf(conf, body);
	expect_refused("paho_cs_pub", conf, TOPIC, "keyring");
	expect_refused("paho_c_pub", conf, TOPIC, "NOT ACTIVE");
}
END_TEST

START_TEST(bad_config_line_fails_loudly)
{
	char conf[512], want[600];
	pathf(conf, sizeof(conf), "bad.conf");
	write_conf(conf, "identity pub.id\ncredential pub.cred\nkeyring keyring\npassword hunter2\n");
	snprintf(want, sizeof(want), "%s:4:", conf);
	expect_refused("paho_c_pub", conf, TOPIC, want);
	char out[300];
	snprintf(out, sizeof(out), "%s/refused-%d-%u.out", dir, (int)getpid(), counter);
	ck_assert_msg(!file_has(out, "hunter2"), "a secret from the config was echoed");
}
END_TEST

START_TEST(topic_without_policy_not_published)
{
	/* The publish call fails, but what the app does next is its own choice:
	 * paho_c_pub waits forever for the delivery, paho_cs_pub exits 0. What
	 * matters is the loud line and an empty wire. */
	expect_refused_ex("paho_c_pub", pub_conf, "other/topic", "REFUSED", true);
	expect_refused_ex("paho_cs_pub", pub_conf, "other/topic", "REFUSED", true);
}
END_TEST

static int count_in_file(const char *path, const char *needle)
{
	size_t len;
	char *b = slurp(path, &len);
	int n = 0;
	for (char *p = b; p && (p = memmem(p, len - (size_t)(p - b), needle, strlen(needle))) != NULL; p++)
		n++;
	free(b);
	return n;
}

/* A plaintext or forged message on a protected topic never reaches the app. */
START_TEST(injected_plaintext_dropped)
{
	char sub_out[300], out[300], forged_file[300];
	snprintf(sub_out, sizeof(sub_out), "%s/sub-%d-%u.out", dir, (int)getpid(), ++counter);
	const char *sargv[] = { "paho_c_sub", "-t", TOPIC, "-h", "127.0.0.1", "-p", port_s, NULL };
	pid_t sub = spawn(sargv, true, sub_conf, sub_out);
	snprintf(out, sizeof(out), "%s/inject-%d.out", dir, (int)getpid());
	bool dropped = false;
	for (int i = 0; i < 20 && !dropped; i++) {
		const char *pargv[] = { "mosquitto_pub", "-h", "127.0.0.1", "-p", port_s, "-t", TOPIC, "-m",
			                "injected-plaintext", NULL };
		ck_assert_int_eq(wait_exit(spawn(pargv, false, NULL, out), 5000), 0);
		dropped = wait_file_has(sub_out, "DROPPED", 500);
	}
	if (!dropped)
		dump("subscriber", sub_out);
	ck_assert_msg(dropped, "no DROPPED line from the subscriber");
	int before = count_in_file(sub_out, "DROPPED");

	/* Forged: a well-formed v1 header naming the real key id 7, random
	 * check value, sender, sequence and nonce, then random "ciphertext". */
	uint8_t env[VEIL_HEADER_BYTES + 40];
	randombytes_buf(env, sizeof(env));
	env[0] = 1;
	env[1] = 0;
	env[2] = env[3] = env[4] = 0;
	env[5] = 7;
	snprintf(forged_file, sizeof(forged_file), "%s/forged-%d.bin", dir, (int)getpid());
	FILE *f = fopen(forged_file, "wb");
	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(env, 1, sizeof(env), f), sizeof(env));
	fclose(f);
	const char *fargv[] = { "mosquitto_pub", "-h", "127.0.0.1", "-p", port_s, "-t", TOPIC, "-f", forged_file,
		                NULL };
	ck_assert_int_eq(wait_exit(spawn(fargv, false, NULL, out), 5000), 0);
	for (int t = 0; t < 5000 && count_in_file(sub_out, "DROPPED") == before; t += 50)
		sleep_ms(50);
	stop(sub);
	if (count_in_file(sub_out, "DROPPED") != before + 1)
		dump("subscriber", sub_out);
	ck_assert_int_eq(count_in_file(sub_out, "DROPPED"), before + 1);
	ck_assert_msg(!file_has(sub_out, "injected-plaintext"), "plaintext delivered to the app");
	ck_assert_msg(!file_has_n(sub_out, env + VEIL_HEADER_BYTES, 8), "forgery delivered to the app");
}
END_TEST

START_TEST(sign_always_signs)
{
	exchange_ex("paho_c_pub", signed_conf, "paho_cs_sub", "311", '\x01');
}
END_TEST

/* The will is in CONNECT, so it is sealed at connect time; the broker
 * publishes it when the client dies, and receivers open it like any message. */
START_TEST(will_is_sealed)
{
	char obs_out[300], sub_out[300], will_out[300], probe[96], gone[64];
	pid_t obs = start_observer(obs_out, sizeof(obs_out));
	snprintf(sub_out, sizeof(sub_out), "%s/sub-%d-%u.out", dir, (int)getpid(), ++counter);
	const char *sargv[] = { "paho_c_sub", "-t", "veil/#", "-h", "127.0.0.1", "-p", port_s, NULL };
	pid_t sub = spawn(sargv, true, sub_conf, sub_out);
	ck_assert(publish_until_seen("paho_c_pub", pub_conf, "311", sub_out, "probe", probe, sizeof(probe)));

	snprintf(gone, sizeof(gone), "device-gone-%08x", randombytes_random());
	snprintf(will_out, sizeof(will_out), "%s/will-%d-%u.out", dir, (int)getpid(), ++counter);
	const char *wargv[] = { "paho_c_sub", "-t", "veil/unused", "-h", "127.0.0.1", "-p", port_s,
		                "--will-topic", "veil/plant/status", "--will-payload", gone, NULL };
	pid_t w = spawn(wargv, true, will_conf, will_out);
	const char *blog = broker.log;
	ck_assert_msg(wait_file_has(blog, "as dev-will", 10000), "will client never connected");
	sleep_ms(200);
	kill(w, SIGKILL); /* no DISCONNECT: the broker must publish the will */
	waitpid(w, NULL, 0);
	bool got = wait_file_has(sub_out, gone, 10000);
	if (!got)
		dump("subscriber", sub_out);
	ck_assert_msg(got, "the will never reached the subscriber in plaintext");
	stop(sub);
	sleep_ms(200);
	stop(obs);
	ck_assert(file_has_n(obs_out, "veil/plant/status \x01", strlen("veil/plant/status \x01")));
	ck_assert_msg(!file_has(obs_out, gone), "will visible in clear");
	ck_assert_msg(!file_has(obs_out, probe), "probe visible in clear");
}
END_TEST

START_TEST(will_without_policy_refused)
{
	expect_refused_args("paho_c_pub", pub_conf, TOPIC, "will message cannot be sealed", true, "--will-topic",
	                    "other/status");
}
END_TEST

/* "log none": a dropped message is silent, and still never delivered. */
START_TEST(log_none_drops_silently)
{
	char sub_out[300], out[300], secret[96];
	snprintf(sub_out, sizeof(sub_out), "%s/sub-%d-%u.out", dir, (int)getpid(), ++counter);
	const char *sargv[] = { "paho_c_sub", "-t", TOPIC, "-h", "127.0.0.1", "-p", port_s, NULL };
	pid_t sub = spawn(sargv, true, quiet_conf, sub_out);
	ck_assert(publish_until_seen("paho_c_pub", pub_conf, "311", sub_out, "first", secret, sizeof(secret)));
	snprintf(out, sizeof(out), "%s/inject-%d.out", dir, (int)getpid());
	const char *pargv[] = { "mosquitto_pub", "-h", "127.0.0.1", "-p", port_s, "-t", TOPIC, "-m",
		                "quiet-injected", NULL };
	ck_assert_int_eq(wait_exit(spawn(pargv, false, NULL, out), 5000), 0);
	/* Sent after the injection on the same broker: once it shows, the
	 * injected message has been handled. */
	ck_assert(publish_until_seen("paho_c_pub", pub_conf, "311", sub_out, "after", secret, sizeof(secret)));
	stop(sub);
	ck_assert_msg(!file_has(sub_out, "quiet-injected"), "plaintext delivered to the app");
	ck_assert_msg(!file_has(sub_out, "veil-preload"), "log none printed something");
}
END_TEST

/* A captured envelope published again is a replay: dropped, also by a
 * subscriber restarted on the same state_dir (windows persisted at exit). */
START_TEST(replay_dropped_across_restart)
{
	char cap_out[300], env_file[300], sub_out[300], out[300], secret[96];
	snprintf(env_file, sizeof(env_file), "%s/captured-%d.bin", dir, (int)getpid());
	snprintf(cap_out, sizeof(cap_out), "%s/capture-%d.out", dir, (int)getpid());
	/* The exact payload bytes: one message, no topic, no delimiter. */
	const char *cargv[] = { "sh", "-c", "exec mosquitto_sub -h 127.0.0.1 -p \"$0\" -t \"$1\" -C 1 -N > \"$2\"",
		                port_s, TOPIC, env_file, NULL };
	pid_t cap = spawn(cargv, false, NULL, cap_out);
	snprintf(sub_out, sizeof(sub_out), "%s/sub-%d-%u.out", dir, (int)getpid(), ++counter);
	const char *sargv[] = { "paho_c_sub", "-t", TOPIC, "-h", "127.0.0.1", "-p", port_s, NULL };
	pid_t sub = spawn(sargv, true, sub_conf, sub_out);
	sleep_ms(500); /* the capture must be subscribed before the first attempt lands */
	ck_assert(publish_until_seen("paho_c_pub", pub_conf, "311", sub_out, "once", secret, sizeof(secret)));
	ck_assert_int_eq(wait_exit(cap, 5000), 0);
	struct stat st;
	ck_assert_int_eq(stat(env_file, &st), 0);
	ck_assert_int_gt(st.st_size, 64);
	snprintf(out, sizeof(out), "%s/replay-%d.out", dir, (int)getpid());
	const char *rargv[] = { "mosquitto_pub", "-h", "127.0.0.1", "-p", port_s, "-t", TOPIC, "-f", env_file, NULL };
	ck_assert_int_eq(wait_exit(spawn(rargv, false, NULL, out), 5000), 0);
	bool dropped = wait_file_has(sub_out, "(replay)", 5000);
	if (!dropped)
		dump("subscriber", sub_out);
	ck_assert_msg(dropped, "a replayed envelope was not dropped as a replay");
	stop(sub);

	/* Restart: same client id, same state_dir. */
	snprintf(sub_out, sizeof(sub_out), "%s/sub-%d-%u.out", dir, (int)getpid(), ++counter);
	sub = spawn(sargv, true, sub_conf, sub_out);
	char fresh[96];
	ck_assert(publish_until_seen("paho_c_pub", pub_conf, "311", sub_out, "fresh", fresh, sizeof(fresh)));
	ck_assert_int_eq(wait_exit(spawn(rargv, false, NULL, out), 5000), 0);
	dropped = wait_file_has(sub_out, "(replay)", 5000);
	if (!dropped)
		dump("restarted subscriber", sub_out);
	ck_assert_msg(dropped, "after a restart the replay was accepted");
	stop(sub);
	size_t n;
	char *text = slurp(sub_out, &n);
	ck_assert_ptr_nonnull(text);
	/* The first plaintext must not show up a second time in the new process. */
	ck_assert_ptr_null(memmem(text, n, secret, strlen(secret)));
	free(text);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("preload");
	TCase *tc = tcase_create("paho-samples");
	tcase_add_unchecked_fixture(tc, plain_broker_start, broker_stop);
	tcase_set_timeout(tc, 60);
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
	TCase *tp = tcase_create("veil-plugin");
	tcase_add_unchecked_fixture(tp, plugin_broker_start, broker_stop);
	tcase_set_timeout(tp, 60);
	tcase_add_test(tp, plugin_accepts_injected_login);
	suite_add_tcase(s, tp);
	return s;
}

int main(void)
{
	int rc = veil_check_run(suite());
	cleanup_material();
	return rc;
}
