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
 * Identities, credentials and the keyring are made with the core API in a
 * temp dir. The broker allows anonymous clients: the Veil login (username =
 * client id, password = "veil1:" token) is accepted without the plugin.
 */
#define _GNU_SOURCE /* memmem */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <MQTTAsync.h>
#include <MQTTClient.h>
#include <sodium.h>

#include "veil/veil.h"
#include "broker.h"

#define TOPIC "veil/plant/temp"

/* The broker of the running test case (plain, or with the Veil plugin). */
static struct test_broker broker;
static char dir[256];
static char port_s[16];
static char pub_conf[512], sub_conf[512], kr_path[512];
static char signed_conf[512], quiet_conf[512], will_conf[512];
static unsigned counter;

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

static void pathf(char *out, size_t cap, const char *name)
{
	ck_assert_int_lt(snprintf(out, cap, "%s/%s", dir, name), (int)cap);
}

/* ---- test material, made with the core API ---- */

static void b64(char *out, size_t cap, const uint8_t *b, size_t n)
{
	sodium_bin2base64(out, cap, b, n, sodium_base64_VARIANT_ORIGINAL);
}

static void make_device(struct veil_identity *authority, const char *client_id, const char *name)
{
	struct veil_identity *dev = NULL;
	ck_assert_int_eq(veil_identity_generate(&dev), VEIL_OK);
	char p[512];
	snprintf(p, sizeof(p), "%s/%s.id", dir, name);
	ck_assert_int_eq(veil_identity_save(dev, p), VEIL_OK);
	struct stat st;
	ck_assert_int_eq(stat(p, &st), 0);
	ck_assert_int_eq(st.st_mode & 077, 0);
	struct veil_credential c;
	memset(&c, 0, sizeof(c));
	veil_identity_public(dev, c.device_pk);
	snprintf(c.client_id, sizeof(c.client_id), "%s", client_id);
	c.issued_at = (uint64_t)time(NULL) - 60U;
	c.expires_at = (uint64_t)time(NULL) + 86400U;
	uint8_t cred[VEIL_CREDENTIAL_MAX];
	size_t n = 0;
	ck_assert_int_eq(veil_credential_issue(authority, &c, cred, sizeof(cred), &n), VEIL_OK);
	snprintf(p, sizeof(p), "%s/%s.cred", dir, name);
	ck_assert_int_eq(veil_credential_save(cred, n, p), VEIL_OK);
	veil_identity_free(&dev);
}

static void write_conf(const char *path, const char *body)
{
	ck_assert_int_eq(test_write_file(path, body, 0644), 0);
}

static char authority_pub[512], acl_path[512];

/* Material shared by every case, made once in the parent before forking. */
static void material(void)
{
	ck_assert_int_eq(veil_init(), VEIL_OK);
	ck_assert_int_eq(test_mkdtemp(dir, sizeof(dir)), 0);

	struct veil_identity *auth = NULL;
	ck_assert_int_eq(veil_identity_generate(&auth), VEIL_OK);
	make_device(auth, "dev-pub", "pub");
	make_device(auth, "dev-sub", "sub");
	make_device(auth, "dev-will", "will");
	uint8_t apk[VEIL_PK_BYTES], key[VEIL_KEY_BYTES];
	veil_identity_public(auth, apk);
	veil_identity_free(&auth);
	pathf(authority_pub, sizeof(authority_pub), "authority.pub");
	ck_assert_int_eq(veil_public_key_save(apk, authority_pub), VEIL_OK);
	/* Anonymous (the plain observer) may read everything and ping; devices
	 * logged in with a token may use veil/#. */
	pathf(acl_path, sizeof(acl_path), "acl");
	ck_assert_int_eq(test_write_file(acl_path, "topic read #\ntopic readwrite ping\n"
	                                           "pattern readwrite veil/#\n", 0644), 0);
	veil_topic_key_generate(key);
	char apk64[64], key64[64], text[1024];
	b64(apk64, sizeof(apk64), apk, sizeof(apk));
	b64(key64, sizeof(key64), key, sizeof(key));
	sodium_memzero(key, sizeof(key));
	snprintf(text, sizeof(text), "authority %s\nkey veil/# 7 %s send\npolicy veil/#\n", apk64, key64);
	pathf(kr_path, sizeof(kr_path), "keyring");
	ck_assert_int_eq(test_write_file(kr_path, text, 0600), 0);
	sodium_memzero(key64, sizeof(key64));

	/* Relative paths resolve against the config's directory. */
	pathf(pub_conf, sizeof(pub_conf), "pub.conf");
	write_conf(pub_conf, "# publisher\nidentity pub.id\ncredential pub.cred\nkeyring keyring\n"
	                     "state_dir state-pub\n");
	pathf(sub_conf, sizeof(sub_conf), "sub.conf");
	write_conf(sub_conf, "identity sub.id\ncredential sub.cred\nkeyring keyring\nstate_dir state-sub\n");
	pathf(signed_conf, sizeof(signed_conf), "pub-signed.conf");
	write_conf(signed_conf, "identity pub.id\ncredential pub.cred\nkeyring keyring\nsign always\n");
	pathf(quiet_conf, sizeof(quiet_conf), "sub-quiet.conf");
	write_conf(quiet_conf, "identity sub.id\ncredential sub.cred\nkeyring keyring\nlog none\n");
	pathf(will_conf, sizeof(will_conf), "will.conf");
	write_conf(will_conf, "identity will.id\ncredential will.cred\nkeyring keyring\n");
}


static void plain_broker_start(void)
{
	material();
	ck_assert_int_eq(test_broker_start(&broker, "allow_anonymous true\n"), 0);
	snprintf(port_s, sizeof(port_s), "%d", broker.port);
}

/* Mosquitto with the Veil plugin: the injected login must be a valid token
 * signed under the authority (anonymous stays allowed for the observer). */
static void plugin_broker_start(void)
{
	const char *plugin = test_plugin_path();
	ck_assert_msg(plugin != NULL, "VEIL_PLUGIN not set (run through ctest)");
	char conf[2048];
	snprintf(conf, sizeof(conf),
	         "allow_anonymous false\nplugin %s\nplugin_opt_authority_file %s\n"
	         "plugin_opt_allow_anonymous true\nplugin_opt_acl_file %s\n",
	         plugin, authority_pub, acl_path);
	ck_assert_int_eq(test_broker_start(&broker, conf), 0);
	snprintf(port_s, sizeof(port_s), "%d", broker.port);
}

static void broker_stop(void)
{
	test_broker_stop(&broker);
	test_broker_cleanup(&broker);
}

static void cleanup_material(void)
{
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
}

/* ---- processes ---- */

/* Start argv with stdout+stderr to outfile. preload: LD_PRELOAD the built
 * library (after the ASan runtime in sanitizer builds). config NULL: unset. */
static pid_t spawn(const char *const argv[], bool preload, const char *config, const char *outfile)
{
	const char *lib = getenv("VEIL_PRELOAD");
	ck_assert_msg(!preload || (lib && *lib), "VEIL_PRELOAD not set (run through ctest)");
	/* Truncate here, not only in the child: a reader must never see what a
	 * previous process left in the file. */
	int pfd = open(outfile, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(pfd, 0);
	close(pfd);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int fd = open(outfile, O_WRONLY | O_APPEND);
		if (fd < 0)
			_exit(126);
		dup2(fd, 1);
		dup2(fd, 2);
		close(fd);
		unsetenv("VEIL_CONFIG");
		unsetenv("LD_PRELOAD");
		if (config)
			setenv("VEIL_CONFIG", config, 1);
		if (preload) {
			const char *asan = getenv("VEIL_ASAN_RUNTIME");
			char pre[1024];
			if (asan && *asan)
				snprintf(pre, sizeof(pre), "%s:%s", asan, lib);
			else
				snprintf(pre, sizeof(pre), "%s", lib);
			setenv("LD_PRELOAD", pre, 1);
			/* Paho's sample programs leak at exit; not ours to report. */
			setenv("ASAN_OPTIONS", "detect_leaks=0", 1);
		}
		execvp(argv[0], (char *const *)argv);
		_exit(127);
	}
	return pid;
}

/* Exit status, or -1 after killing it at the timeout. */
static int wait_exit(pid_t pid, int timeout_ms)
{
	for (int t = 0; t < timeout_ms; t += 20) {
		int st;
		pid_t r = waitpid(pid, &st, WNOHANG);
		if (r == pid)
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		sleep_ms(20);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	return -1;
}

static void stop(pid_t pid)
{
	kill(pid, SIGTERM);
	if (wait_exit(pid, 3000) == -1)
		fprintf(stderr, "pid %d needed SIGKILL\n", (int)pid);
}

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		*len = 0;
		return NULL;
	}
	char *buf = malloc(1U << 20);
	ck_assert_ptr_nonnull(buf);
	*len = fread(buf, 1, (1U << 20) - 1U, f);
	buf[*len] = '\0';
	fclose(f);
	return buf;
}

static bool file_has_n(const char *path, const void *needle, size_t n)
{
	size_t len;
	char *b = slurp(path, &len);
	bool found = b && memmem(b, len, needle, n) != NULL;
	free(b);
	return found;
}

static bool file_has(const char *path, const char *needle)
{
	return file_has_n(path, needle, strlen(needle));
}

static bool wait_file_has(const char *path, const char *needle, int timeout_ms)
{
	for (int t = 0; t <= timeout_ms; t += 50) {
		if (file_has(path, needle))
			return true;
		sleep_ms(50);
	}
	return false;
}

static void dump(const char *what, const char *path)
{
	size_t len;
	char *b = slurp(path, &len);
	fprintf(stderr, "---- %s (%s) ----\n%s\n", what, path, b ? b : "(none)");
	free(b);
}

static pid_t start_observer(char *out, size_t cap)
{
	snprintf(out, cap, "%s/observer-%d-%u.out", dir, (int)getpid(), ++counter);
	const char *argv[] = { "mosquitto_sub", "-h", "127.0.0.1", "-p", port_s, "-t", "#", "-v", NULL };
	pid_t pid = spawn(argv, false, NULL, out);
	/* Prove it is subscribed before anything it must witness is sent. */
	char ping[64];
	snprintf(ping, sizeof(ping), "observer-ready-%d-%u", (int)getpid(), counter);
	const char *pub[] = { "mosquitto_pub", "-h", "127.0.0.1", "-p", port_s, "-t", "ping", "-m", ping, NULL };
	char pout[300];
	snprintf(pout, sizeof(pout), "%s/ping.out", dir);
	for (int i = 0; i < 60 && !file_has(out, ping); i++) {
		ck_assert_int_eq(wait_exit(spawn(pub, false, NULL, pout), 5000), 0);
		wait_file_has(out, ping, 250);
	}
	if (!file_has(out, ping)) {
		dump("observer", out);
		dump("ping", pout);
	}
	ck_assert_msg(file_has(out, ping), "observer never subscribed");
	return pid;
}

/* Publish "<prefix>-<n>" with a preloaded publisher until the subscriber's
 * output shows it (its subscription may not be active yet). */
static bool publish_until_seen(const char *pub_bin, const char *pconf, const char *version, const char *sub_out,
                               const char *prefix, char *secret, size_t cap)
{
	char pub_out[300];
	snprintf(pub_out, sizeof(pub_out), "%s/pub-%d-%u.out", dir, (int)getpid(), ++counter);
	for (int attempt = 0; attempt < 20; attempt++) {
		snprintf(secret, cap, "%s-%08x-%d", prefix, randombytes_random(), attempt);
		const char *pargv[] = { pub_bin, "-t", TOPIC, "-m", secret, "-h", "127.0.0.1", "-p", port_s,
		                        "-V", version, NULL };
		int rc = wait_exit(spawn(pargv, true, pconf, pub_out), 15000);
		if (rc != 0)
			dump("publisher", pub_out);
		ck_assert_int_eq(rc, 0);
		if (wait_file_has(sub_out, secret, 1000))
			return true;
	}
	return false;
}

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

/* A plaintext or forged message on a protected topic never reaches the app. */
START_TEST(injected_plaintext_dropped)
{
	char sub_out[300], out[300];
	snprintf(sub_out, sizeof(sub_out), "%s/sub-%d-%u.out", dir, (int)getpid(), ++counter);
	const char *sargv[] = { "paho_c_sub", "-t", TOPIC, "-h", "127.0.0.1", "-p", port_s, NULL };
	pid_t sub = spawn(sargv, true, sub_conf, sub_out);
	snprintf(out, sizeof(out), "%s/inject.out", dir);
	/* Forged: an envelope-looking header with garbage after it. */
	const char *forged = "\x01" "\x00" "forged-envelope-with-enough-bytes-to-parse-as-a-header-and-tag-0123456789";
	bool dropped = false;
	for (int i = 0; i < 20 && !dropped; i++) {
		const char *pargv[] = { "mosquitto_pub", "-h", "127.0.0.1", "-p", port_s, "-t", TOPIC, "-m",
			                "injected-plaintext", NULL };
		ck_assert_int_eq(wait_exit(spawn(pargv, false, NULL, out), 5000), 0);
		dropped = wait_file_has(sub_out, "DROPPED", 500);
	}
	const char *fargv[] = { "mosquitto_pub", "-h", "127.0.0.1", "-p", port_s, "-t", TOPIC, "-m", forged, NULL };
	ck_assert_int_eq(wait_exit(spawn(fargv, false, NULL, out), 5000), 0);
	sleep_ms(500);
	stop(sub);
	if (!dropped)
		dump("subscriber", sub_out);
	ck_assert_msg(dropped, "no DROPPED line from the subscriber");
	ck_assert_msg(!file_has(sub_out, "injected-plaintext"), "plaintext delivered to the app");
	ck_assert_msg(!file_has(sub_out, "forged-envelope"), "forgery delivered to the app");
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

/* ---- a small MQTTClient app with callbacks: this binary, re-executed ----
 * Debian's sync samples use MQTTClient_receive; this covers setCallbacks,
 * publishMessage, and an app that refuses a delivery once (returns 0), so
 * Paho redelivers the same, already opened message object. */

static char self_exe[512];
static void *app_last;
static volatile int app_done;

static int app_ma(void *ctx, char *topic, int tlen, MQTTClient_message *m)
{
	(void)ctx;
	(void)tlen;
	if (m != app_last) {
		app_last = m;
		printf("deferred\n");
		fflush(stdout);
		return 0;
	}
	printf("got %s %.*s\n", topic, m->payloadlen, (const char *)m->payload);
	fflush(stdout);
	MQTTClient_freeMessage(&m);
	MQTTClient_free(topic);
	app_done++;
	return 1;
}

/* argv: --app sub|pub PORT TOPIC [MESSAGE] */
static int app_main(int argc, char **argv)
{
	if (argc < 5 || (strcmp(argv[2], "pub") == 0 && argc < 6))
		return 64;
	bool sub = strcmp(argv[2], "sub") == 0;
	char uri[64];
	snprintf(uri, sizeof(uri), "tcp://127.0.0.1:%s", argv[3]);
	MQTTClient c;
	int rc = MQTTClient_create(&c, uri, "app", MQTTCLIENT_PERSISTENCE_NONE, NULL);
	if (rc != MQTTCLIENT_SUCCESS) {
		printf("create failed %d\n", rc);
		return 2;
	}
	if (sub && MQTTClient_setCallbacks(c, NULL, NULL, app_ma, NULL) != MQTTCLIENT_SUCCESS)
		return 3;
	MQTTClient_connectOptions o = MQTTClient_connectOptions_initializer;
	/* Paho retries a refused delivery only when the socket is active again:
	 * a short keepalive makes a PINGRESP arrive soon. */
	o.keepAliveInterval = 1;
	if ((rc = MQTTClient_connect(c, &o)) != MQTTCLIENT_SUCCESS) {
		printf("connect failed %d\n", rc);
		return 4;
	}
	if (sub) {
		if (MQTTClient_subscribe(c, argv[4], 1) != MQTTCLIENT_SUCCESS)
			return 5;
		printf("subscribed\n");
		fflush(stdout);
		for (int t = 0; t < 15000 && !app_done; t += 20)
			sleep_ms(20);
	} else {
		MQTTClient_message m = MQTTClient_message_initializer;
		m.payload = argv[5];
		m.payloadlen = (int)strlen(argv[5]);
		m.qos = 1;
		MQTTClient_deliveryToken dt = 0;
		if ((rc = MQTTClient_publishMessage(c, argv[4], &m, &dt)) != MQTTCLIENT_SUCCESS) {
			printf("publish failed %d\n", rc);
			return 6;
		}
		if (MQTTClient_waitForCompletion(c, dt, 5000) != MQTTCLIENT_SUCCESS)
			return 7;
	}
	MQTTClient_disconnect(c, 1000);
	MQTTClient_destroy(&c);
	return sub && !app_done ? 8 : 0;
}

/* Async flavour: setMessageArrivedCallback to receive, sendMessage to publish. */
static volatile int aflag;

static void a_ok(void *ctx, MQTTAsync_successData *d)
{
	(void)ctx;
	(void)d;
	aflag = 1;
}

static void a_fail(void *ctx, MQTTAsync_failureData *d)
{
	(void)ctx;
	(void)d;
	aflag = -1;
}

static int a_ma(void *ctx, char *topic, int tlen, MQTTAsync_message *m)
{
	(void)ctx;
	(void)tlen;
	printf("got %s %.*s\n", topic, m->payloadlen, (const char *)m->payload);
	fflush(stdout);
	MQTTAsync_freeMessage(&m);
	MQTTAsync_free(topic);
	app_done++;
	return 1;
}

static bool a_wait(void)
{
	for (int t = 0; t < 10000 && aflag == 0; t += 10)
		sleep_ms(10);
	bool ok = aflag == 1;
	aflag = 0;
	return ok;
}

/* argv: --async-app sub|pub PORT TOPIC [MESSAGE] */
static int async_app_main(int argc, char **argv)
{
	if (argc < 5 || (strcmp(argv[2], "pub") == 0 && argc < 6))
		return 64;
	bool sub = strcmp(argv[2], "sub") == 0;
	char uri[64];
	snprintf(uri, sizeof(uri), "tcp://127.0.0.1:%s", argv[3]);
	MQTTAsync c;
	if (MQTTAsync_create(&c, uri, "async-app", MQTTCLIENT_PERSISTENCE_NONE, NULL) != MQTTASYNC_SUCCESS)
		return 2;
	if (sub && MQTTAsync_setMessageArrivedCallback(c, NULL, a_ma) != MQTTASYNC_SUCCESS)
		return 3;
	MQTTAsync_connectOptions o = MQTTAsync_connectOptions_initializer;
	o.onSuccess = a_ok;
	o.onFailure = a_fail;
	if (MQTTAsync_connect(c, &o) != MQTTASYNC_SUCCESS || !a_wait())
		return 4;
	MQTTAsync_responseOptions r = MQTTAsync_responseOptions_initializer;
	r.onSuccess = a_ok;
	r.onFailure = a_fail;
	if (sub) {
		if (MQTTAsync_subscribe(c, argv[4], 1, &r) != MQTTASYNC_SUCCESS || !a_wait())
			return 5;
		printf("subscribed\n");
		fflush(stdout);
		for (int t = 0; t < 15000 && !app_done; t += 20)
			sleep_ms(20);
	} else {
		MQTTAsync_message m = MQTTAsync_message_initializer;
		m.payload = argv[5];
		m.payloadlen = (int)strlen(argv[5]);
		m.qos = 1;
		if (MQTTAsync_sendMessage(c, argv[4], &m, &r) != MQTTASYNC_SUCCESS || !a_wait())
			return 6;
	}
	MQTTAsync_disconnectOptions d = MQTTAsync_disconnectOptions_initializer;
	MQTTAsync_disconnect(c, &d);
	sleep_ms(100);
	MQTTAsync_destroy(&c);
	return sub && !app_done ? 8 : 0;
}

/* Sync subscriber with callbacks <- sync publishMessage, then async
 * subscriber (setMessageArrivedCallback) <- async sendMessage. */
static void app_exchange(const char *mode, bool refuses_once)
{
	char obs_out[300], sub_out[300], pub_out[300], secret[64], want[160];
	pid_t obs = start_observer(obs_out, sizeof(obs_out));
	snprintf(sub_out, sizeof(sub_out), "%s/app-sub-%d-%u.out", dir, (int)getpid(), ++counter);
	const char *sargv[] = { self_exe, mode, "sub", port_s, TOPIC, NULL };
	pid_t sub = spawn(sargv, true, sub_conf, sub_out);
	if (!wait_file_has(sub_out, "subscribed", 10000))
		dump("app sub", sub_out);
	ck_assert(file_has(sub_out, "subscribed"));
	snprintf(secret, sizeof(secret), "valve-%08x", randombytes_random());
	snprintf(pub_out, sizeof(pub_out), "%s/app-pub-%d-%u.out", dir, (int)getpid(), ++counter);
	const char *pargv[] = { self_exe, mode, "pub", port_s, TOPIC, secret, NULL };
	int rc = wait_exit(spawn(pargv, true, pub_conf, pub_out), 15000);
	if (rc != 0)
		dump("app pub", pub_out);
	ck_assert_int_eq(rc, 0);
	rc = wait_exit(sub, 15000);
	if (rc != 0)
		dump("app sub", sub_out);
	ck_assert_int_eq(rc, 0);
	snprintf(want, sizeof(want), "got %s %s\n", TOPIC, secret);
	ck_assert_msg(file_has(sub_out, want), "app did not get the plaintext");
	ck_assert(!refuses_once || file_has(sub_out, "deferred"));
	ck_assert(!file_has(sub_out, "DROPPED"));
	sleep_ms(200);
	stop(obs);
	ck_assert_msg(!file_has(obs_out, secret), "plaintext visible to a plain subscriber");
	ck_assert(file_has_n(obs_out, TOPIC " \x01", strlen(TOPIC) + 2));
}

START_TEST(sync_callbacks_and_publish_message)
{
	app_exchange("--app", true);
}
END_TEST

START_TEST(async_arrived_callback_and_send_message)
{
	app_exchange("--async-app", false);
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
	tcase_add_test(tc, sync_callbacks_and_publish_message);
	tcase_add_test(tc, async_arrived_callback_and_send_message);
	suite_add_tcase(s, tc);
	TCase *tp = tcase_create("veil-plugin");
	tcase_add_unchecked_fixture(tp, plugin_broker_start, broker_stop);
	tcase_set_timeout(tp, 60);
	tcase_add_test(tp, plugin_accepts_injected_login);
	suite_add_tcase(s, tp);
	return s;
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "--app") == 0)
		return app_main(argc, argv);
	if (argc > 1 && strcmp(argv[1], "--async-app") == 0)
		return async_app_main(argc, argv);
	ssize_t n = readlink("/proc/self/exe", self_exe, sizeof(self_exe) - 1U);
	if (n <= 0)
		return EXIT_FAILURE;
	self_exe[n] = '\0';
	SRunner *sr = srunner_create(suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	cleanup_material();
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
