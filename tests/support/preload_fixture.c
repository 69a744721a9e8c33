/* The preload fixture (see preload_fixture.h). */
#include "preload_fixture.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "veil/veil.h"
#include "material.h"
#include "proc.h"
#include "timing.h"

struct preload_env preload_env;

void preload_path(char *out, size_t cap, const char *name)
{
	ck_assert_int_lt(snprintf(out, cap, "%s/%s", preload_env.dir, name), (int)cap);
}

void preload_write_conf(const char *path, const char *body)
{
	ck_assert_int_eq(test_write_file(path, body, 0644), 0);
}

void preload_out_path(char *out, size_t cap, const char *stem)
{
	ck_assert_int_lt(snprintf(out, cap, "%s/%s-%d-%u.out", preload_env.dir, stem, (int)getpid(),
	                          ++preload_env.counter),
	                 (int)cap);
}

/* Material shared by every case, made once in the runner before forking. */
static void material(void)
{
	struct preload_env *e = &preload_env;
	ck_assert_int_eq(veil_init(), VEIL_OK);
	ck_assert_int_eq(test_mkdtemp(e->dir, sizeof(e->dir)), 0);

	struct veil_identity *auth = NULL;
	ck_assert_int_eq(veil_identity_generate(&auth), VEIL_OK);
	test_device_save(auth, e->dir, "pub", "dev-pub");
	test_device_save(auth, e->dir, "sub", "dev-sub");
	test_device_save(auth, e->dir, "will", "dev-will");
	test_authority_save(auth, e->dir, e->authority_pub, sizeof(e->authority_pub));
	uint8_t apk[VEIL_PK_BYTES], key[VEIL_KEY_BYTES];
	veil_identity_public(auth, apk);
	veil_identity_free(&auth);
	/* Anonymous (the plain observer) may read everything and ping; devices
	 * logged in with a token may use veil/#. */
	preload_path(e->acl_path, sizeof(e->acl_path), "acl");
	ck_assert_int_eq(test_write_file(e->acl_path, "topic read #\ntopic readwrite ping\n"
	                                               "pattern readwrite veil/#\n", 0644),
	                 0);
	veil_topic_key_generate(key);
	char apk64[64], key64[64], text[1024];
	test_b64(apk64, sizeof(apk64), apk, sizeof(apk));
	test_b64(key64, sizeof(key64), key, sizeof(key));
	sodium_memzero(key, sizeof(key));
	snprintf(text, sizeof(text), "authority %s\nkey veil/# 7 %s send\npolicy veil/#\n", apk64, key64);
	preload_path(e->kr_path, sizeof(e->kr_path), "keyring");
	ck_assert_int_eq(test_write_file(e->kr_path, text, 0600), 0);
	sodium_memzero(key64, sizeof(key64));
	sodium_memzero(text, sizeof(text));

	/* Relative paths resolve against the config's directory. */
	preload_path(e->pub_conf, sizeof(e->pub_conf), "pub.conf");
	preload_write_conf(e->pub_conf, "# publisher\nidentity pub.key\ncredential pub.cred\nkeyring keyring\n"
	                                "state_dir state-pub\n");
	preload_path(e->sub_conf, sizeof(e->sub_conf), "sub.conf");
	preload_write_conf(e->sub_conf, "identity sub.key\ncredential sub.cred\nkeyring keyring\nstate_dir state-sub\n");
	preload_path(e->signed_conf, sizeof(e->signed_conf), "pub-signed.conf");
	preload_write_conf(e->signed_conf, "identity pub.key\ncredential pub.cred\nkeyring keyring\nsign always\n");
	preload_path(e->quiet_conf, sizeof(e->quiet_conf), "sub-quiet.conf");
	preload_write_conf(e->quiet_conf, "identity sub.key\ncredential sub.cred\nkeyring keyring\nlog none\n");
	preload_path(e->will_conf, sizeof(e->will_conf), "will.conf");
	preload_write_conf(e->will_conf, "identity will.key\ncredential will.cred\nkeyring keyring\n");
}

static void broker_started(void)
{
	snprintf(preload_env.port_s, sizeof(preload_env.port_s), "%d", preload_env.broker.port);
}

void preload_plain_broker_start(void)
{
	material();
	ck_assert_int_eq(test_broker_start(&preload_env.broker, "allow_anonymous true\n"), 0);
	broker_started();
}

void preload_plugin_broker_start(void)
{
	struct preload_env *e = &preload_env;
	const char *plugin = test_plugin_path();
	ck_assert_msg(plugin != NULL, "VEIL_PLUGIN not set (run through ctest)");
	char conf[2048];
	snprintf(conf, sizeof(conf),
	         "allow_anonymous false\nplugin %s\nplugin_opt_authority_file %s\n"
	         "plugin_opt_allow_anonymous true\nplugin_opt_acl_file %s\n",
	         plugin, e->authority_pub, e->acl_path);
	ck_assert_int_eq(test_broker_start(&e->broker, conf), 0);
	broker_started();
}

void preload_broker_stop(void)
{
	test_broker_stop(&preload_env.broker);
	test_broker_cleanup(&preload_env.broker);
}

void preload_cleanup(void)
{
	test_rmtree(preload_env.dir);
}

pid_t preload_spawn(const char *const argv[], bool preload, const char *config, const char *outfile)
{
	const char *lib = getenv("VEIL_PRELOAD");
	ck_assert_msg(!preload || (lib && *lib), "VEIL_PRELOAD not set (run through ctest)");
	char config_env[600], preload_env_var[1100];
	const char *env[5] = { "VEIL_CONFIG", "LD_PRELOAD", NULL, NULL, NULL };
	if (config) {
		ck_assert_int_lt(snprintf(config_env, sizeof(config_env), "VEIL_CONFIG=%s", config),
		                 (int)sizeof(config_env));
		env[0] = config_env;
	}
	if (preload) {
		const char *asan = getenv("VEIL_ASAN_RUNTIME");
		if (asan && *asan)
			snprintf(preload_env_var, sizeof(preload_env_var), "LD_PRELOAD=%s:%s", asan, lib);
		else
			snprintf(preload_env_var, sizeof(preload_env_var), "LD_PRELOAD=%s", lib);
		env[1] = preload_env_var;
		/* Paho's sample programs leak at exit; not ours to report. */
		env[2] = "ASAN_OPTIONS=detect_leaks=0";
	}
	struct test_spawn o = { .out = outfile, .env = env };
	return test_spawn(argv, &o);
}

int preload_subacks(const char *client_id)
{
	char needle[200];
	snprintf(needle, sizeof(needle), "Sending SUBACK to %s\n", client_id);
	return test_file_count(preload_env.broker.log, needle);
}

void preload_wait_subscribed(const char *client_id, int before, const char *what, const char *out)
{
	char needle[200];
	snprintf(needle, sizeof(needle), "Sending SUBACK to %s\n", client_id);
	/* A preloaded app starts slowly in a sanitizer build: the factor covers it. */
	bool ok = test_file_wait_count(preload_env.broker.log, needle, before + 1, 15000);
	if (!ok) {
		test_file_dump(what, out);
		test_file_dump("broker", preload_env.broker.log);
	}
	ck_assert_msg(ok, "%s (%s) never subscribed", what, client_id);
}

void preload_plain_publish(const char *topic, const char *flag, const char *arg)
{
	char out[300], id[64];
	preload_path(out, sizeof(out), "plain-pub.out");
	snprintf(id, sizeof(id), "auto-pub-%d", (int)getpid());
	const char *argv[] = { "mosquitto_pub", "-h", "127.0.0.1", "-p", preload_env.port_s, "-i", id, "-t", topic,
		               flag, arg, NULL };
	int rc = test_wait_exit(preload_spawn(argv, false, NULL, out), 5000);
	if (rc != 0)
		test_file_dump("mosquitto_pub", out);
	ck_assert_int_eq(rc, 0);
}

pid_t preload_observer_start(char *out, size_t cap)
{
	preload_out_path(out, cap, "observer");
	char id[64];
	/* Anonymous: an "auto-" id, the only kind the plugin lets it use. */
	snprintf(id, sizeof(id), "auto-observer-%d-%u", (int)getpid(), preload_env.counter);
	int before = preload_subacks(id);
	const char *argv[] = { "mosquitto_sub", "-h", "127.0.0.1", "-p", preload_env.port_s, "-i", id,
		               "-t", "#", "-v", NULL };
	pid_t pid = preload_spawn(argv, false, NULL, out);
	preload_wait_subscribed(id, before, "observer", out);
	return pid;
}

void preload_observer_sync(const char *obs_out)
{
	char marker[64];
	snprintf(marker, sizeof(marker), "marker-%d-%08x", (int)getpid(), randombytes_random());
	preload_plain_publish("ping", "-m", marker);
	bool seen = test_file_wait(obs_out, marker, 5000);
	if (!seen)
		test_file_dump("observer", obs_out);
	ck_assert_msg(seen, "the observer never printed the marker");
}

bool preload_publish_seen(const char *pub_bin, const char *pconf, const char *version, const char *sub_out,
                          const char *prefix, char *secret, size_t cap)
{
	char pub_out[300];
	preload_out_path(pub_out, sizeof(pub_out), "pub");
	snprintf(secret, cap, "%s-%08x", prefix, randombytes_random());
	const char *argv[] = { pub_bin, "-t", PRELOAD_TOPIC, "-m", secret, "-h", "127.0.0.1",
		               "-p", preload_env.port_s, "-V", version, NULL };
	int rc = test_wait_exit(preload_spawn(argv, true, pconf, pub_out), 15000);
	if (rc != 0)
		test_file_dump("publisher", pub_out);
	ck_assert_int_eq(rc, 0);
	return test_file_wait(sub_out, secret, 10000);
}
