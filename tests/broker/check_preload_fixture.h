/*
 * Shared by the preload test programs (check_preload.c: Debian's Paho sample
 * programs; check_preload_api.c: Paho API paths those samples do not use).
 * Test material made with the core API in a temp dir (authority, devices
 * dev-pub / dev-sub / dev-will, a 0600 keyring for veil/#, client configs),
 * brokers (plain, or with the Veil plugin), child processes with or without
 * the preload, and a plain `mosquitto_sub -t '#' -v` observer.
 *
 * Include once, from a test program's .c file, after defining _GNU_SOURCE.
 */
#ifndef VEIL_CHECK_PRELOAD_FIXTURE_H
#define VEIL_CHECK_PRELOAD_FIXTURE_H

#define VPT_UNUSED __attribute__((unused))

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

static VPT_UNUSED void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

static VPT_UNUSED void pathf(char *out, size_t cap, const char *name)
{
	ck_assert_int_lt(snprintf(out, cap, "%s/%s", dir, name), (int)cap);
}

/* ---- test material, made with the core API ---- */

static VPT_UNUSED void b64(char *out, size_t cap, const uint8_t *b, size_t n)
{
	sodium_bin2base64(out, cap, b, n, sodium_base64_VARIANT_ORIGINAL);
}

static VPT_UNUSED void make_device(struct veil_identity *authority, const char *client_id, const char *name)
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

static VPT_UNUSED void write_conf(const char *path, const char *body)
{
	ck_assert_int_eq(test_write_file(path, body, 0644), 0);
}

static char authority_pub[512], acl_path[512];

/* Material shared by every case, made once in the parent before forking. */
static VPT_UNUSED void material(void)
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


static VPT_UNUSED void plain_broker_start(void)
{
	material();
	ck_assert_int_eq(test_broker_start(&broker, "allow_anonymous true\n"), 0);
	snprintf(port_s, sizeof(port_s), "%d", broker.port);
}

/* Mosquitto with the Veil plugin: the injected login must be a valid token
 * signed under the authority (anonymous stays allowed for the observer). */
static VPT_UNUSED void plugin_broker_start(void)
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

static VPT_UNUSED void broker_stop(void)
{
	test_broker_stop(&broker);
	test_broker_cleanup(&broker);
}

static VPT_UNUSED void cleanup_material(void)
{
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
}

/* ---- processes ---- */

/* Start argv with stdout+stderr to outfile. preload: LD_PRELOAD the built
 * library (after the ASan runtime in sanitizer builds). config NULL: unset. */
static VPT_UNUSED pid_t spawn(const char *const argv[], bool preload, const char *config,
                               const char *outfile)
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
static VPT_UNUSED int wait_exit(pid_t pid, int timeout_ms)
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

static VPT_UNUSED void stop(pid_t pid)
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

static VPT_UNUSED bool file_has_n(const char *path, const void *needle, size_t n)
{
	size_t len;
	char *b = slurp(path, &len);
	bool found = b && memmem(b, len, needle, n) != NULL;
	free(b);
	return found;
}

static VPT_UNUSED bool file_has(const char *path, const char *needle)
{
	return file_has_n(path, needle, strlen(needle));
}

static VPT_UNUSED bool wait_file_has(const char *path, const char *needle, int timeout_ms)
{
	for (int t = 0; t <= timeout_ms; t += 50) {
		if (file_has(path, needle))
			return true;
		sleep_ms(50);
	}
	return false;
}

static VPT_UNUSED void dump(const char *what, const char *path)
{
	size_t len;
	char *b = slurp(path, &len);
	fprintf(stderr, "---- %s (%s) ----\n%s\n", what, path, b ? b : "(none)");
	free(b);
}

static VPT_UNUSED pid_t start_observer(char *out, size_t cap)
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
static VPT_UNUSED bool publish_until_seen(const char *pub_bin, const char *pconf, const char *version,
                                          const char *sub_out, const char *prefix, char *secret, size_t cap)
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

#endif
