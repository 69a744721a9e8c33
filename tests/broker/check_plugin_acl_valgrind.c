/*
 * Mosquitto with mosquitto_veil.so under valgrind memcheck through an ACL
 * scenario: role, user and pattern rules, an allowed envelope, refused
 * plaintext, a Will judged after the client left (a departed registry
 * entry), SIGHUP reloads (cache rebuild by generation) including a broken
 * file kept old, then a clean shutdown with clients still connected and a
 * departed entry still kept (the registry frees the caches after the ACL
 * module is gone). Passes only if
 * memcheck reports no errors and nothing definitely lost. Built only
 * without sanitizers (valgrind cannot host the ASan runtime); there a
 * missing valgrind fails it.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "veil/veil.h"
#include "veil/envelope.h"
#include "acl_client.h"
#include "check_run.h"
#include "material.h"
#include "timing.h"

static const char *const users[] = { "zgod", NULL };

static size_t seal(const char *topic, const uint8_t sender[8], uint8_t *out, size_t cap)
{
	static uint8_t key[VEIL_KEY_BYTES] = { 1, 2, 3 };
	struct veil_seal_params p;
	memset(&p, 0, sizeof(p));
	p.key = key;
	p.key_id = 1;
	memcpy(p.sender, sender, VEIL_SENDER_ID_BYTES);
	p.seq = 1;
	size_t n = 0;
	ck_assert_int_eq(veil_envelope_seal(&p, topic, (const uint8_t *)"v", 1, out, cap, &n), VEIL_OK);
	return n;
}

START_TEST(acl_scenario_memcheck_clean)
{
	/* Registered only in builds without sanitizers (tests/CMakeLists.txt):
	 * here valgrind must run, a missing one is a failure, never a skip. */
	ck_assert_msg(system("valgrind --version >/dev/null 2>&1") == 0,
	              "valgrind is not installed (tools/install-deps.sh installs it)");
	/* From here on every deadline is scaled for memcheck (x10, timing.h). */
	setenv("VEIL_VALGRIND", "1", 1);
	struct acl_env env;
	acl_env_init(&env, users);
	char acl[400];
	snprintf(acl, sizeof(acl), "%s/vg.acl", env.dir);
	const char *rules = "topic write open/#\n"
	                    "pattern readwrite dev/%c/#\n"
	                    "user zgod\n"
	                    "topic read #\n"
	                    "role dev\n"
	                    "topic readwrite,encrypted enc/#\n"
	                    "topic write,encrypted will/#\n";
	ck_assert_int_eq(test_write_file(acl, rules, 0644), 0);
	struct test_broker b;
	acl_env_start_plugin(&env, &b, acl, "plugin_opt_acl_poll_interval 0\n");

	struct test_device d1, d2;
	test_device_new(&d1, env.authority, "vg-dev1", "dev");
	test_device_new(&d2, env.authority, "vg-dev2", "dev");
	struct acl_pc obs, a, w, anon;
	ck_assert_int_eq(acl_pc_connect(&obs, b.port, "zgod", "zgod"), 0);
	ck_assert_int_eq(acl_pc_sub(&obs, "#", 1), 1);
	ck_assert_int_eq(acl_pc_connect_will(&a, b.port, "vg-dev1", "vg-dev1", d1.pw, NULL, NULL, 0, 0), 0);
	uint8_t buf[512];
	size_t n = seal("enc/x", d1.sender, buf, sizeof(buf));
	ck_assert_int_lt(acl_pc_pub(&a, "enc/x", buf, (int)n, 1, 0), 0x80);
	ck_assert_int_eq(acl_pc_pub(&a, "enc/x", "plain", 5, 1, 0), 0x87);
	ck_assert_int_lt(acl_pc_pub(&a, "dev/vg-dev1/t", "p", 1, 1, 0), 0x80);
	ck_assert_int_eq(acl_pc_connect(&anon, b.port, "auto-vg-anon", NULL), 0);
	ck_assert_int_lt(acl_pc_pub(&anon, "open/1", "o", 1, 1, 0), 0x80);
	ck_assert_int_eq(acl_pc_pub(&anon, "enc/x", "o", 1, 1, 0), 0x87);
	/* A Will judged after the client left. */
	n = seal("will/x", d2.sender, buf, sizeof(buf));
	ck_assert_int_eq(acl_pc_connect_will(&w, b.port, "vg-dev2", "vg-dev2", d2.pw, "will/x", buf, (int)n, 0), 0);
	/* It leaves with its ACL cache built: a checked publish (PUBACK) builds
	 * it, as a TICK would. */
	ck_assert_int_lt(acl_pc_pub(&w, "dev/vg-dev2/t", "p", 1, 1, 0), 0x80);
	MQTTClient_disconnect5(w.c, 100, MQTTREASONCODE_DISCONNECT_WITH_WILL_MESSAGE, NULL);
	acl_pc_close(&w);
	ck_assert_msg(acl_pc_wait_topic(&obs, "will/x", 1, 2000), "the Will never arrived");
	/* Reloads: a changed file, then a broken one (kept old). */
	ck_assert_int_eq(test_write_file(acl, "topic write open/#\nuser zgod\ntopic read #\nrole dev\n"
	                                      "topic readwrite enc/#\n", 0644), 0);
	ck_assert_int_eq(test_broker_reload(&b), 0);
	ck_assert(test_broker_log_wait(&b, "why=reload file=", 3000));
	ck_assert_int_lt(acl_pc_pub(&a, "enc/y", "now-plain-ok", 12, 1, 0), 0x80);
	ck_assert_int_eq(test_write_file(acl, "topic bogus x\n", 0644), 0);
	ck_assert_int_eq(test_broker_reload(&b), 0);
	ck_assert(test_broker_log_wait(&b, "why=reload kept=old-rules", 3000));
	ck_assert_int_lt(acl_pc_pub(&anon, "open/2", "o", 1, 1, 0), 0x80);
	ck_assert(acl_pc_wait_topic(&obs, "open/2", 1, 1000));
	ck_assert_int_ge(acl_pc_count(&obs, "enc/x"), 1);
	ck_assert_int_eq(acl_pc_count(&obs, "will/x"), 1);

	/* Stop with clients connected: the registry still holds ACL caches. */
	int status = test_broker_stop(&b);
	char summary[256];
	bool clean = test_broker_valgrind_clean(&b, summary, sizeof(summary));
	fprintf(stderr, "check_plugin_acl_valgrind: %s (exit status %d)\n", summary, status);
	ck_assert_msg(clean, "memcheck not clean: %s (logs in %s)", summary, b.dir);
	acl_pc_close(&a);
	acl_pc_close(&anon);
	acl_pc_close(&obs);
	test_broker_cleanup(&b);
	test_device_free(&d1);
	test_device_free(&d2);
	acl_env_free(&env);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("plugin_acl_valgrind");
	/* Sized for the broker under memcheck (this test sets VEIL_VALGRIND
	 * itself, after the case is made). */
	TCase *t = veil_tcase("memcheck", 30);
	tcase_add_test(t, acl_scenario_memcheck_clean);
	suite_add_tcase(s, t);
	return veil_check_run(s);
}
