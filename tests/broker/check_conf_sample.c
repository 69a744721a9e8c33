/*
 * mosquitto.conf.sample stays true: a real broker starts from it with every
 * commented-out Veil option switched on (paths pointed at a temp dir), the
 * plugin accepts all of them, and clients can log in. An option the plugin
 * does not know makes init fail, so a stale sample fails this test.
 * As shipped (optional files commented out), the broker does not start
 * while a file the sample requires is missing, and the log names the file
 * and says the plugin cannot start without it (issue 16).
 */
#include <check.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <MQTTClient.h>

#include "broker.h"
#include "veil/veil.h"
#include "check_run.h"
#include "timing.h"

static char *read_all(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return NULL;
	static char buf[65536];
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	return buf;
}

/* Rewrite the sample: drop what the harness sets itself, uncomment every
 * plugin_opt_ line (all_options) or keep them as shipped, point
 * /etc/mosquitto/veil/ at dir and the plugin at the build. Counts the
 * options turned on. */
static char *rewrite(const char *sample, const char *dir, bool all_options, int *nopts)
{
	size_t cap = strlen(sample) * 2 + 4096;
	char *out = calloc(1, cap);
	const char *p = sample;
	*nopts = 0;
	while (*p) {
		const char *e = strchr(p, '\n');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		char line[1024];
		snprintf(line, sizeof(line), "%.*s", (int)(n < sizeof(line) - 1 ? n : sizeof(line) - 1), p);
		p += n + (e ? 1 : 0);
		const char *l = line;
		if (all_options && !strncmp(l, "#plugin_opt_", 12))
			l++;
		if (!strncmp(l, "listener", 8) || !strncmp(l, "per_listener_settings", 21) ||
		    !strncmp(l, "persistence", 11) || l[0] == '#' || !l[0])
			continue;
		char buf[1200];
		if (!strncmp(l, "plugin ", 7)) {
			snprintf(buf, sizeof(buf), "plugin %s", test_plugin_path());
		} else {
			const char *etc = strstr(l, "/etc/mosquitto/veil/");
			if (etc)
				snprintf(buf, sizeof(buf), "%.*s%s/%s", (int)(etc - l), l, dir, etc + 20);
			else
				snprintf(buf, sizeof(buf), "%s", l);
			if (!strncmp(l, "plugin_opt_", 11))
				(*nopts)++;
		}
		strcat(out, buf);
		strcat(out, "\n");
	}
	return out;
}

START_TEST(test_sample_starts_with_every_option)
{
	ck_assert_ptr_nonnull(test_plugin_path());
	ck_assert_int_eq(veil_init(), VEIL_OK);
	char dir[256], path[400];
	ck_assert_int_eq(test_mkdtemp(dir, sizeof(dir)), 0);
	/* The files the sample names. */
	struct veil_identity *auth = NULL;
	ck_assert_int_eq(veil_identity_generate(&auth), VEIL_OK);
	uint8_t pk[32];
	veil_identity_public(auth, pk);
	snprintf(path, sizeof(path), "%s/authorities.pub", dir);
	ck_assert_int_eq(veil_public_key_save(pk, path), VEIL_OK);
	veil_identity_free(&auth);
	snprintf(path, sizeof(path), "%s/passwd", dir);
	ck_assert_int_eq(test_write_file(path, "", 0600), 0);
	snprintf(path, sizeof(path), "%s/revoked", dir);
	ck_assert_int_eq(test_write_file(path, "# nobody\n", 0644), 0);
	snprintf(path, sizeof(path), "%s/acl", dir);
	ck_assert_int_eq(test_write_file(path, "pattern read clients/%c/#\n", 0644), 0);

	const char *sample = read_all(VEIL_SOURCE_DIR "/mosquitto.conf.sample");
	ck_assert_ptr_nonnull(sample);
	int nopts = 0;
	char *conf = rewrite(sample, dir, true, &nopts);
	ck_assert_int_ge(nopts, 15); /* every documented option is switched on */

	struct test_broker b;
	ck_assert_msg(test_broker_start(&b, conf) == 0, "broker did not start from the sample:\n%s", conf);
	if (!test_broker_log_wait(&b, "veil: plugin | init", 5000))
		test_broker_stop(&b); /* never leave a broker behind a failed assertion */
	ck_assert(test_broker_log_wait(&b, "veil: plugin | init", 5000));
	ck_assert(!test_broker_log_contains(&b, "init-failed"));
	/* It serves: an anonymous client is refused by the plugin (not by a crash). */
	MQTTClient c;
	char uri[64];
	snprintf(uri, sizeof(uri), "tcp://127.0.0.1:%d", b.port);
	ck_assert_int_eq(MQTTClient_create(&c, uri, "anon", MQTTCLIENT_PERSISTENCE_NONE, NULL), MQTTCLIENT_SUCCESS);
	MQTTClient_connectOptions o = MQTTClient_connectOptions_initializer;
	int rc = MQTTClient_connect(c, &o);
	ck_assert_int_eq(rc, 5); /* CONNACK 5: not authorized */
	MQTTClient_destroy(&c);
	ck_assert_int_eq(test_broker_stop(&b), 0);
	test_broker_cleanup(&b);
	free(conf);
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
}
END_TEST

/* The sample as shipped, with one of the files it requires missing: the
 * broker exits, and its log names the file and the consequence. */
static void expect_refused(const char *dir, const char *needle)
{
	const char *sample = read_all(VEIL_SOURCE_DIR "/mosquitto.conf.sample");
	ck_assert_ptr_nonnull(sample);
	int nopts = 0;
	char *conf = rewrite(sample, dir, false, &nopts);
	ck_assert_int_eq(nopts, 3); /* authority_file, state_dir, acl_file */
	ck_assert_msg(test_broker_start_refused(conf, needle) == 0, "expected a refused start saying '%s':\n%s",
	              needle, conf);
	free(conf);
}

START_TEST(test_sample_names_a_missing_required_file)
{
	ck_assert_ptr_nonnull(test_plugin_path());
	ck_assert_int_eq(veil_init(), VEIL_OK);
	char dir[256], path[400], needle[600];
	ck_assert_int_eq(test_mkdtemp(dir, sizeof(dir)), 0);
	/* No authority keys (and no rules yet): the authority file is named. */
	snprintf(needle, sizeof(needle),
	         "veil: auth | init-failed | file=authority error=\"%s/authorities.pub: No such file or directory\" "
	         "action=refuse-start (the plugin cannot start without a valid authority file)", dir);
	expect_refused(dir, needle);
	/* The keys but no rules: the rules file is named. */
	struct veil_identity *auth = NULL;
	ck_assert_int_eq(veil_identity_generate(&auth), VEIL_OK);
	uint8_t pk[32];
	veil_identity_public(auth, pk);
	veil_identity_free(&auth);
	snprintf(path, sizeof(path), "%s/authorities.pub", dir);
	ck_assert_int_eq(veil_public_key_save(pk, path), VEIL_OK);
	snprintf(needle, sizeof(needle),
	         "veil: acl | init-failed | file=rules error=\"%s/acl: No such file or directory\" "
	         "action=refuse-start (the plugin cannot start without a valid rules file)", dir);
	expect_refused(dir, needle);
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("conf_sample");
	TCase *tc = veil_tcase("broker", 3);
	tcase_add_test(tc, test_sample_starts_with_every_option);
	tcase_add_test(tc, test_sample_names_a_missing_required_file);
	suite_add_tcase(s, tc);
	return veil_check_run(s);
}
