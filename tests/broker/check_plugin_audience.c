/*
 * Tokens bound to a deployment (docs/PROTOCOL.md section 4, docs/AUTH.md
 * "Deployments"), through the real `veil` binary against a real Mosquitto
 * with mosquitto_veil.so: devices without an audience send today's version 1
 * tokens, devices given one (--audience, or the config file's audience line)
 * send version 2. One broker per mode:
 *   plugin_opt_audience plant-a, plugin_opt_token_v1 allow (the default):
 *     both log in, each version 1 login with a warning line and its count;
 *     a token for another deployment is refused (wrong-audience);
 *   the same with plugin_opt_token_v1 refuse: version 1 is refused
 *     (token-v1-refused), version 2 logs in;
 *   no plugin_opt_audience: version 1 logs in, no version 2 token does.
 * Each login is MQTT 5 enhanced auth and, for some, the MQTT 3.1.1 password
 * form; every verdict is the CLI's exit status and the broker's audit line.
 */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "check_run.h"
#include "cli_fixture.h"
#include "files.h"
#include "timing.h"

static struct clifx F;

#define ERR(tag) clifx_text(&F, tag, "err")

static void teardown(void)
{
	clifx_teardown(&F);
}

/* veil pub as sensor-1 on its own topic at QoS 1 (exit 0 = CONNACK and
 * PUBACK accepted); args after the message, NULL-terminated via the macro. */
#define PUB(tag, ...)                                                                                              \
	clifx_run(&F, tag, NULL, "pub", "sensor-1", "-t", "sensors/sensor-1/t", "-q", "1", "-m", "21.5", ##__VA_ARGS__, \
	          NULL)

/* ... and its exit status is want (0: accepted, 1: refused). */
#define EXPECT_PUB(want, tag, ...)                                                                                 \
	do {                                                                                                       \
		int st_ = PUB(tag, ##__VA_ARGS__);                                                                 \
		ck_assert_msg(st_ == (want), "%s: exit %d: %s", tag, st_, ERR(tag));                               \
	} while (0)

static void expect_log(const char *needle)
{
	ck_assert_msg(test_broker_log_wait(&F.c.broker, needle, 5000), "broker log lacks: %s", needle);
}

static int count_log(const char *needle)
{
	return test_file_count(F.c.broker.log, needle);
}

/* A config file for sensor-1 naming a deployment. */
static void write_config(const char *name, const char *audience, char *path, size_t cap)
{
	char key[400], cred[400], text[2048];
	clifx_path(&F, name, path, cap);
	clifx_path(&F, "sensor-1.key", key, sizeof(key));
	clifx_path(&F, "sensor-1.cred", cred, sizeof(cred));
	snprintf(text, sizeof(text), "identity %s\ncredential %s\nkeyring %s\naudience %s\n", key, cred, F.c.keyring,
	         audience);
	ck_assert_int_eq(test_write_file(path, text, 0600), 0);
}

/* A broker with these plugin options must refuse to start, saying why. */
static void expect_refused_start(const char *opts, const char *needle)
{
	char conf[1024];
	snprintf(conf, sizeof(conf), "plugin %s\n%s", test_plugin_path(), opts);
	ck_assert_msg(test_broker_start_refused(conf, needle) == 0, "expected a refused start saying '%s' with %s",
	              needle, opts);
}

START_TEST(audience_allow_v1)
{
	clifx_setup(&F, NULL, "plugin_opt_audience plant-a\n");
	expect_log("veil: auth | init | ");
	ck_assert(test_broker_log_contains(&F.c.broker, "audience=plant-a token_v1=allow"));
	/* Today's device: no audience, version 1, accepted and named. */
	EXPECT_PUB(0, "v1");
	expect_log("veil: auth | accept | client=sensor-1 addr=127.0.0.1 method=credential roles=- ");
	expect_log("token=v1");
	expect_log("veil: auth | token-v1 | client=sensor-1 addr=127.0.0.1 logins=1 ");
	EXPECT_PUB(0, "v1-311", "-V", "311");
	expect_log("veil: auth | token-v1 | client=sensor-1 addr=127.0.0.1 logins=2 ");
	/* The moved device: version 2 for this deployment, no warning. */
	EXPECT_PUB(0, "v2", "--audience", "plant-a");
	expect_log("token=v2");
	EXPECT_PUB(0, "v2-311", "--audience", "plant-a", "-V", "311");
	char conf[400];
	write_config("plant-a.conf", "plant-a", conf, sizeof(conf));
	int st = clifx_run(&F, "v2-conf", NULL, "pub", NULL, "-h", "127.0.0.1", "-p", F.port, "--config", conf, "-t",
	               "sensors/sensor-1/t", "-q", "1", "-m", "21.5", NULL);
	ck_assert_msg(st == 0, "exit %d: %s", st, ERR("v2-conf"));
	ck_assert_int_eq(count_log("token=v2"), 3);
	/* A token for another deployment, by option or by config file. */
	EXPECT_PUB(1, "v2-other", "--audience", "plant-b");
	expect_log("veil: auth | refuse | client=sensor-1 addr=127.0.0.1 method=credential reason=wrong-audience "
	           "token=v2 audience=plant-b");
	write_config("plant-b.conf", "plant-b", conf, sizeof(conf));
	st = clifx_run(&F, "v2-other-conf", NULL, "pub", NULL, "-h", "127.0.0.1", "-p", F.port, "--config", conf, "-t",
	               "sensors/sensor-1/t", "-q", "1", "-V", "311", "-m", "21.5", NULL);
	ck_assert_msg(st == 1, "exit %d: %s", st, ERR("v2-other-conf"));
	expect_log("method=credential reason=wrong-audience token=v2 audience=plant-b");
	/* (A refused MQTT 5 CONNECT may be tried twice by Paho: counted as
	 * "at least once per command".) */
	ck_assert_int_ge(count_log("reason=wrong-audience"), 2);
	/* Nothing else warned: two version 1 logins, two lines. */
	ck_assert_int_eq(count_log("veil: auth | token-v1 |"), 2);
}
END_TEST

START_TEST(audience_refuse_v1)
{
	clifx_setup(&F, NULL, "plugin_opt_audience plant-a\nplugin_opt_token_v1 refuse\n");
	expect_log("audience=plant-a token_v1=refuse");
	EXPECT_PUB(1, "v1");
	expect_log("veil: auth | refuse | client=sensor-1 addr=127.0.0.1 method=credential reason=token-v1-refused "
	           "token=v1 audience=-");
	EXPECT_PUB(1, "v1-311", "-V", "311");
	ck_assert(test_file_wait_count(F.c.broker.log, "reason=token-v1-refused", 2, 5000));
	EXPECT_PUB(0, "v2", "--audience", "plant-a");
	EXPECT_PUB(0, "v2-311", "--audience", "plant-a", "-V", "311");
	ck_assert_int_eq(count_log("token=v2"), 2);
	EXPECT_PUB(1, "v2-other", "--audience", "plant-b");
	expect_log("reason=wrong-audience token=v2 audience=plant-b");
	ck_assert_int_eq(count_log("veil: auth | token-v1 |"), 0);
	ck_assert_int_eq(count_log("veil: auth | accept |"), 2);
}
END_TEST

/* A broker that has no name takes version 1 as always and no version 2
 * token: it is not known to be the deployment the token names. refuse
 * without a name would refuse every device: the plugin does not start. */
START_TEST(no_audience)
{
	clifx_setup(&F, NULL, NULL);
	expect_log("warning=no-audience");
	EXPECT_PUB(0, "v1");
	expect_log("veil: auth | token-v1 | client=sensor-1 addr=127.0.0.1 logins=1 ");
	EXPECT_PUB(1, "v2", "--audience", "plant-a");
	expect_log("reason=wrong-audience token=v2 audience=plant-a");
	/* The CLI says what it refuses before anything is sent. */
	int st = PUB("bad", "--audience", "plant/a");
	ck_assert_msg(st == 2 && strstr(ERR("bad"), "--audience plant/a: not a deployment name"), "exit %d: %s", st,
	              ERR("bad"));
	clifx_teardown(&F);

	expect_refused_start("plugin_opt_token_v1 refuse\n",
	                     "option=plugin_opt_token_v1 value=refuse reason=refuse-needs-plugin_opt_audience");
	expect_refused_start("plugin_opt_audience plant/a\n",
	                     "option=plugin_opt_audience value=plant/a reason=not-a-valid-audience");
	expect_refused_start("plugin_opt_audience plant-a\nplugin_opt_token_v1 never\n",
	                     "option=plugin_opt_token_v1 value=never reason=expected-allow-or-refuse");
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("plugin_audience");
	TCase *tc = veil_tcase("modes", 30);
	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_add_test(tc, audience_allow_v1);
	tcase_add_test(tc, audience_refuse_v1);
	tcase_add_test(tc, no_audience);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return veil_check_run(suite());
}
