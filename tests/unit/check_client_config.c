/*
 * Unit tests (no broker) for libveil's option handling: veil_client_new /
 * veil_async_new validation and file errors, state dir creation, publish
 * refusals that happen before any network I/O, and veil_client_config_load
 * (client-shim/client_config.c) mapping a client config file onto options.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "veil/veil.h"
#include "veil/client.h"
#include "broker.h"
#include "check_run.h"
#include "timing.h"

static char dir[256], keyring[300], key[300], cred[300], state[300], conf[300];

static void setup(void)
{
	ck_assert_int_eq(veil_init(), VEIL_OK);
	ck_assert_int_eq(test_mkdtemp(dir, sizeof(dir)), 0);
	snprintf(keyring, sizeof(keyring), "%s/keyring", dir);
	snprintf(key, sizeof(key), "%s/dev.key", dir);
	snprintf(cred, sizeof(cred), "%s/dev.cred", dir);
	snprintf(state, sizeof(state), "%s/state", dir);
	snprintf(conf, sizeof(conf), "%s/client.conf", dir);
	struct veil_identity *auth = NULL, *dev = NULL;
	ck_assert_int_eq(veil_identity_generate(&auth), VEIL_OK);
	ck_assert_int_eq(veil_identity_generate(&dev), VEIL_OK);
	ck_assert_int_eq(veil_identity_save(dev, key), VEIL_OK);
	struct veil_credential c;
	memset(&c, 0, sizeof(c));
	veil_identity_public(dev, c.device_pk);
	snprintf(c.client_id, sizeof(c.client_id), "dev-1");
	c.issued_at = (uint64_t)time(NULL) - 10;
	c.expires_at = (uint64_t)time(NULL) + 3600;
	uint8_t buf[VEIL_CREDENTIAL_MAX];
	size_t n = 0;
	ck_assert_int_eq(veil_credential_issue(auth, &c, buf, sizeof(buf), &n), VEIL_OK);
	ck_assert_int_eq(veil_credential_save(buf, n, cred), VEIL_OK);
	uint8_t k[VEIL_KEY_BYTES];
	veil_topic_key_generate(k);
	char k64[64], text[256];
	sodium_bin2base64(k64, sizeof(k64), k, sizeof(k), sodium_base64_VARIANT_ORIGINAL);
	snprintf(text, sizeof(text), "key sensors/# 1 %s send\npolicy public/# plaintext\n", k64);
	ck_assert_int_eq(test_write_file(keyring, text, 0600), 0);
	veil_identity_free(&auth);
	veil_identity_free(&dev);
}

static void teardown(void)
{
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
}

static struct veil_client_options options(void)
{
	struct veil_client_options o;
	memset(&o, 0, sizeof(o));
	o.version = VEIL_CLIENT_OPTIONS_VERSION;
	o.server_uri = "tcp://127.0.0.1:1"; /* nothing listens: these tests never connect */
	o.client_id = "dev-1";
	o.identity_path = key;
	o.credential_path = cred;
	o.keyring_path = keyring;
	o.state_dir = state;
	return o;
}

START_TEST(test_option_validation)
{
	struct veil_client *c = NULL;
	struct veil_async *a = NULL;
	ck_assert_int_eq(veil_client_new(NULL, &c), VEIL_ERR_INVAL);
	struct veil_client_options o = options();
	ck_assert_int_eq(veil_client_new(&o, NULL), VEIL_ERR_INVAL);
	o.version = 0;
	ck_assert_int_eq(veil_client_new(&o, &c), VEIL_ERR_INVAL);
	o = options();
	o.keyring_path = NULL;
	ck_assert_int_eq(veil_async_new(&o, &a), VEIL_ERR_INVAL);
	o = options();
	o.mqtt_version = 3;
	ck_assert_int_eq(veil_client_new(&o, &c), VEIL_ERR_INVAL);
	o = options();
	o.auth = VEIL_AUTH_PASSWORD; /* without a username */
	ck_assert_int_eq(veil_client_new(&o, &c), VEIL_ERR_INVAL);
	o = options();
	o.identity_path = NULL; /* token login needs the device key */
	ck_assert_int_eq(veil_client_new(&o, &c), VEIL_ERR_INVAL);
	o = options();
	o.auth = VEIL_AUTH_NONE;
	o.credential_path = NULL;
	o.sign_all = true; /* nothing to sign with */
	ck_assert_int_eq(veil_client_new(&o, &c), VEIL_ERR_INVAL);
	o = options();
	o.auth = 7;
	ck_assert_int_eq(veil_client_new(&o, &c), VEIL_ERR_INVAL);
	ck_assert_ptr_null(c);
	ck_assert_ptr_null(a);
}
END_TEST

static int log_lines;
static void count_log(void *ctx, int level, const char *msg)
{
	(void)ctx;
	(void)level;
	ck_assert_ptr_nonnull(msg);
	log_lines++;
}

START_TEST(test_file_errors)
{
	struct veil_client *c = NULL;
	struct veil_client_options o = options();
	o.log = count_log;
	char missing[320];
	snprintf(missing, sizeof(missing), "%s/missing", dir);
	o.keyring_path = missing;
	ck_assert_int_eq(veil_client_new(&o, &c), VEIL_ERR_IO);
	ck_assert_int_gt(log_lines, 0);
	o = options();
	ck_assert_int_eq(chmod(key, 0644), 0);
	ck_assert_int_eq(veil_client_new(&o, &c), VEIL_ERR_PERM);
	ck_assert_int_eq(chmod(key, 0600), 0);
	o.credential_path = keyring; /* not a credential file */
	ck_assert_int_ne(veil_client_new(&o, &c), VEIL_OK);
	ck_assert_ptr_null(c);
}
END_TEST

START_TEST(test_offline_publish_and_state)
{
	struct veil_client *c = NULL;
	struct veil_client_options o = options();
	ck_assert_int_eq(veil_client_new(&o, &c), VEIL_OK);
	/* The state dir is created private, and the sequence mark persisted. */
	struct stat st;
	ck_assert_int_eq(stat(state, &st), 0);
	ck_assert_uint_eq(st.st_mode & 0777, 0700);
	char seq[400];
	snprintf(seq, sizeof(seq), "%s/seq", state);
	ck_assert_int_eq(access(seq, F_OK), 0);
	/* Refused before any network I/O. */
	ck_assert_int_eq(veil_client_publish(c, "other/x", "x", 1, 0, false, NULL), VEIL_ERR_NO_POLICY);
	ck_assert_int_eq(veil_client_publish(c, "sensors/a", NULL, 3, 0, false, NULL), VEIL_ERR_INVAL);
	ck_assert_int_eq(veil_client_publish(c, "sensors/+", "x", 1, 0, false, NULL), VEIL_ERR_INVAL);
	/* Over 16 MiB of plaintext is too-large, not a caller bug (what `veil pub`
	 * reports; issue 17, item 7: it said invalid-argument). */
	uint8_t *big = calloc(1, VEIL_MAX_PLAINTEXT + 1);
	ck_assert_ptr_nonnull(big);
	ck_assert_int_eq(veil_client_publish(c, "sensors/a", big, VEIL_MAX_PLAINTEXT + 1, 0, false, NULL),
	                 VEIL_ERR_TOO_LARGE);
	free(big);
	/* Sealed, but Paho is not connected. */
	ck_assert_int_eq(veil_client_publish(c, "sensors/a", "x", 1, 0, false, NULL), VEIL_ERR_MQTT);
	ck_assert(!veil_client_is_connected(c));
	ck_assert_int_eq(veil_client_connect(c), VEIL_ERR_MQTT);
	struct veil_client_stats s;
	veil_client_stats(c, &s);
	ck_assert_uint_eq(s.publish_refused, 3); /* NULL payload is a caller bug, not a refusal */
	ck_assert_uint_eq(s.published_sealed, 1);
	ck_assert_int_ne(s.last_mqtt_rc, 0);
	veil_client_free(&c);
	ck_assert_ptr_null(c);
	veil_client_free(&c); /* idempotent */
	/* The receive windows were saved on free (one file per client id). */
	char replay[400];
	snprintf(replay, sizeof(replay), "%s/replay-dev-1", state);
	ck_assert_int_eq(access(replay, F_OK), 0);

	struct veil_async *a = NULL;
	ck_assert_int_eq(veil_async_new(&o, &a), VEIL_OK);
	ck_assert_int_eq(veil_async_publish(a, "other/x", "x", 1, 1, false, NULL, NULL), VEIL_ERR_NO_POLICY);
	ck_assert_int_eq(veil_async_publish(a, "sensors/a", "x", 1, 3, false, NULL, NULL), VEIL_ERR_INVAL);
	veil_async_free(&a);
	ck_assert_ptr_null(a);
}
END_TEST

START_TEST(test_receive_only_client)
{
	/* No identity: may receive and use plaintext-policy topics, never seal. */
	struct veil_client_options o = options();
	o.identity_path = NULL;
	o.credential_path = NULL;
	o.auth = VEIL_AUTH_NONE;
	struct veil_client *c = NULL;
	ck_assert_int_eq(veil_client_new(&o, &c), VEIL_OK);
	ck_assert_int_eq(veil_client_publish(c, "sensors/a", "x", 1, 0, false, NULL), VEIL_ERR_INVAL);
	ck_assert_int_eq(veil_client_publish(c, "public/a", "x", 1, 0, false, NULL), VEIL_ERR_MQTT);
	veil_client_free(&c);
}
END_TEST

/* Options of this version for an unreachable broker, nothing else set. */
static void blank_options(struct veil_client_options *o, int version)
{
	memset(o, 0, sizeof(*o));
	o->version = version;
	o->server_uri = "tcp://127.0.0.1:1";
}

START_TEST(test_config_file)
{
	char text[1024];
	snprintf(text, sizeof(text),
	         "# device config\nidentity dev.key\ncredential %s\nkeyring keyring\nstate_dir state\n"
	         "client_id dev-1\nauth none\nsign always\n",
	         cred);
	ck_assert_int_eq(test_write_file(conf, text, 0600), 0);
	struct veil_client_options o;
	blank_options(&o, VEIL_CLIENT_OPTIONS_VERSION);
	struct veil_client_config *cfg = NULL;
	char err[512] = "";
	ck_assert_int_eq(veil_client_config_load(conf, &o, &cfg, err, sizeof(err)), VEIL_OK);
	ck_assert_ptr_nonnull(cfg);
	ck_assert_str_eq(o.client_id, "dev-1");
	ck_assert_str_eq(o.credential_path, cred);
	ck_assert_str_eq(o.keyring_path, keyring); /* relative to the config file */
	ck_assert_str_eq(o.identity_path, key);
	ck_assert_int_eq(o.auth, VEIL_AUTH_NONE);
	ck_assert(o.sign_all);
	struct veil_client *c = NULL;
	ck_assert_int_eq(veil_client_new(&o, &c), VEIL_OK);
	veil_client_free(&c);
	veil_client_config_free(&cfg);
	ck_assert_ptr_null(cfg);

	/* Errors name the file and line; nothing is handed out. */
	ck_assert_int_eq(test_write_file(conf, "keyring k\nbogus value\n", 0600), 0);
	ck_assert_int_eq(veil_client_config_load(conf, &o, &cfg, err, sizeof(err)), VEIL_ERR_PARSE);
	ck_assert_ptr_null(cfg);
	char want[400];
	snprintf(want, sizeof(want), "%s:2:", conf);
	ck_assert_msg(strstr(err, want) != NULL, "err: %s", err);
	ck_assert_int_eq(veil_client_config_load(NULL, &o, &cfg, err, sizeof(err)), VEIL_ERR_INVAL);
}
END_TEST

/* The audience (VEIL_CLIENT_OPTIONS_VERSION 3): from the file into the
 * options; a caller of version 2 has no room for it and is told so, and
 * its options (without an audience) are still taken. */
START_TEST(test_audience)
{
	char text[1024];
	snprintf(text, sizeof(text), "identity dev.key\ncredential %s\nkeyring keyring\nclient_id dev-1\naudience plant-a\n",
	         cred);
	ck_assert_int_eq(test_write_file(conf, text, 0600), 0);
	struct veil_client_options o;
	blank_options(&o, VEIL_CLIENT_OPTIONS_VERSION);
	struct veil_client_config *cfg = NULL;
	char err[512] = "";
	ck_assert_int_eq(veil_client_config_load(conf, &o, &cfg, err, sizeof(err)), VEIL_OK);
	ck_assert_str_eq(o.audience, "plant-a");
	struct veil_client *c = NULL;
	ck_assert_int_eq(veil_client_new(&o, &c), VEIL_OK);
	veil_client_free(&c);
	o.audience = "plant/a"; /* not a deployment name */
	ck_assert_int_eq(veil_client_new(&o, &c), VEIL_ERR_INVAL);
	ck_assert_ptr_null(c);
	veil_client_config_free(&cfg);

	blank_options(&o, 2);
	ck_assert_int_eq(veil_client_config_load(conf, &o, &cfg, err, sizeof(err)), VEIL_ERR_INVAL);
	ck_assert_ptr_null(cfg);
	ck_assert_msg(strstr(err, "VEIL_CLIENT_OPTIONS_VERSION 3") != NULL, "err: %s", err);
	o.identity_path = key;
	o.credential_path = cred;
	o.keyring_path = keyring;
	o.client_id = "dev-1";
	o.audience = "plant/a"; /* past the end of a version 2 struct: never read */
	ck_assert_int_eq(veil_client_new(&o, &c), VEIL_OK);
	veil_client_free(&c);
	o.version = 4;
	ck_assert_int_eq(veil_client_new(&o, &c), VEIL_ERR_INVAL);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("client_config");
	TCase *tc = veil_tcase("options", 3);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_option_validation);
	tcase_add_test(tc, test_file_errors);
	tcase_add_test(tc, test_offline_publish_and_state);
	tcase_add_test(tc, test_receive_only_client);
	tcase_add_test(tc, test_config_file);
	tcase_add_test(tc, test_audience);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return veil_check_run(suite());
}
