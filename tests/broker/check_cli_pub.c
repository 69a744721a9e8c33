/*
 * `veil pub` (tools/cmd_pub.c, tools/cli_mqtt.c) as a user runs it, against
 * a real Mosquitto with mosquitto_veil.so: a publish the broker refuses exits
 * 1 with the MQTT 5 reason code and its meaning (QoS 1 and 2), what MQTT
 * cannot report is said in --help (QoS 0, MQTT 3.1.1); sending in clear under
 * a plaintext policy needs --allow-plaintext and nothing leaves without it;
 * -l keeps a window of messages in flight and loses or reorders none;
 * mosquitto_pub's message sources and options; -n -r clears a retained
 * message; a Will is sealed and opened, and kept retained with
 * --will-retain; -k and -c reach the broker's CONNECT; --quiet silences
 * runtime errors, not usage errors; and every failure names its
 * cause without -d (the missing file, the keyring line, the expired
 * credential, the identity that does not match, a refused token login with
 * the clock and the credential's window).
 */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "check_run.h"
#include "cli_fixture.h"
#include "files.h"
#include "material.h"
#include "proc.h"
#include "timing.h"

static struct clifx F;

static void setup(void)
{
	clifx_setup(&F, NULL, NULL);
}

static void teardown(void)
{
	clifx_teardown(&F);
}

#define ERR(tag) clifx_text(&F, tag, "err")
#define OUT(tag) clifx_text(&F, tag, "out")

START_TEST(test_refused_publish_says_why)
{
	/* sensor-1 may write only sensors/sensor-1/#: the plugin's ACL refuses
	 * the rest with PUBACK / PUBREC 0x87. */
	static const char *const qos[] = { "1", "2" };
	for (size_t i = 0; i < 2; i++) {
		char tag[16];
		snprintf(tag, sizeof(tag), "refused%s", qos[i]);
		int st = clifx_run(&F, tag, NULL, "pub", "sensor-1", "-t", "sensors/dash-1/x", "-q", qos[i], "-m",
		                   "not mine", NULL);
		ck_assert_msg(st == 1, "QoS %s: exit %d, stderr: %s", qos[i], st, ERR(tag));
		ck_assert_msg(strstr(ERR(tag), "the broker refused the publish on 'sensors/dash-1/x'") &&
		                      strstr(ERR(tag), "0x87, Not authorized"),
		              "QoS %s stderr: %s", qos[i], ERR(tag));
	}
	/* Its own topic goes through at every QoS. */
	ck_assert_int_eq(clifx_run(&F, "mine", NULL, "pub", "sensor-1", "-t", "sensors/sensor-1/x", "-q", "2", "-m",
	                           "mine", NULL),
	                 0);
	/* What MQTT cannot report is said where a user looks. */
	ck_assert_int_eq(clifx_run(&F, "help", NULL, "pub", NULL, "--help", NULL), 0);
	const char *help = OUT("help");
	ck_assert_msg(strstr(help, "MQTT has no acknowledgement at QoS 0") &&
	                      strstr(help, "MQTT 3.1.1 cannot report a refused publish at any QoS"),
	              "--help: %s", help);
}
END_TEST

START_TEST(test_plaintext_needs_allow)
{
	struct cfx_plain spy;
	cfx_plain_connect(&F.c, &spy, "auto-spy", "public/#");
	/* The keyring says 'policy public/# plaintext': refused unless asked. */
	int st = clifx_run(&F, "clear", NULL, "pub", "sensor-1", "-t", "public/news", "-q", "1", "-m", "in clear",
	                   NULL);
	ck_assert_msg(st == 1, "exit %d, stderr: %s", st, ERR("clear"));
	ck_assert_msg(strstr(ERR("clear"), "REFUSED: the keyring policy for 'public/#' says plaintext") &&
	                      strstr(ERR("clear"), "--allow-plaintext"),
	              "stderr: %s", ERR("clear"));
	/* ... naming the keyring line that says so. */
	size_t kn = 0;
	char *kr = test_file_read(F.c.keyring, &kn);
	ck_assert_ptr_nonnull(kr);
	const char *pol = strstr(kr, "policy public/# plaintext");
	ck_assert_ptr_nonnull(pol);
	unsigned line = 1;
	for (const char *p = kr; p < pol; p++)
		line += *p == '\n';
	free(kr);
	char where[400];
	snprintf(where, sizeof(where), "(%s:%u)", F.c.keyring, line);
	ck_assert_msg(strstr(ERR("clear"), where), "stderr does not name %s: %s", where, ERR("clear"));
	ck_assert_int_eq(clifx_run(&F, "allowed", NULL, "pub", "sensor-1", "-t", "public/news", "-q", "1", "-m",
	                           "asked for", "--allow-plaintext", NULL),
	                 0);
	/* The broker keeps order: had the first gone out, it would come first. */
	ck_assert(cfx_plain_wait(&spy, 1, 5000));
	pthread_mutex_lock(&spy.lock);
	ck_assert_uint_eq(spy.len[0], 9);
	ck_assert(memcmp(spy.payload[0], "asked for", 9) == 0);
	pthread_mutex_unlock(&spy.lock);
	cfx_plain_close(&spy);
}
END_TEST

START_TEST(test_lines_all_delivered_in_order)
{
	/* More lines than the in-flight window, QoS 1, into veil sub. */
	enum { N = 600 };
	char in[400], *text = malloc(N * 32);
	ck_assert_ptr_nonnull(text);
	size_t off = 0;
	for (int i = 0; i < N; i++)
		off += (size_t)snprintf(text + off, N * 32 - off, "line %04d of the pipe\n", i);
	clifx_path(&F, "lines.txt", in, sizeof(in));
	ck_assert_int_eq(test_write_file(in, text, 0600), 0);
	char count[16];
	snprintf(count, sizeof(count), "%d", N);
	pid_t sub = clifx_start(&F, "sub", NULL, "sub", "dash-1", "-t", "sensors/sensor-1/lines", "-q", "1", "-C",
	                        count, "-W", "60", NULL);
	ck_assert(clifx_wait_subacks(&F, "dash-1", 1));
	int st = clifx_run(&F, "pub", in, "pub", "sensor-1", "-t", "sensors/sensor-1/lines", "-q", "1", "-l", NULL);
	ck_assert_msg(st == 0, "pub exit %d: %s", st, ERR("pub"));
	ck_assert_int_eq(test_wait_exit(sub, 30000), 0);
	ck_assert_str_eq(OUT("sub"), text);
	free(text);
}
END_TEST

START_TEST(test_message_sources)
{
	char file[400], multi[400];
	clifx_path(&F, "payload.bin", file, sizeof(file));
	clifx_path(&F, "multi.txt", multi, sizeof(multi));
	ck_assert_int_eq(test_write_file(file, "from a file", 0600), 0);
	ck_assert_int_eq(test_write_file(multi, "two\nlines", 0600), 0);
	pid_t sub = clifx_start(&F, "sub", NULL, "sub", "dash-1", "-t", "sensors/#", "-q", "1", "-C", "6", "-W", "30",
	                        "-F", "%t=%p|", "-N", NULL);
	ck_assert(clifx_wait_subacks(&F, "dash-1", 1));
	ck_assert_int_eq(clifx_run(&F, "f", NULL, "pub", "sensor-1", "-t", "sensors/sensor-1/f", "-q", "1", "-f", file,
	                           NULL),
	                 0);
	/* -s: all of standard input as one message. */
	ck_assert_int_eq(clifx_run(&F, "s", multi, "pub", "sensor-1", "-t", "sensors/sensor-1/s", "-q", "1", "-s",
	                           NULL),
	                 0);
	ck_assert_int_eq(clifx_run(&F, "rep", NULL, "pub", "sensor-1", "-t", "sensors/sensor-1/r", "-q", "1", "-m",
	                           "again", "--repeat", "3", "--repeat-delay", "0.01", NULL),
	                 0);
	/* -L: user, host, port and topic as one URL (no password here). */
	char url[200];
	snprintf(url, sizeof(url), "mqtt://127.0.0.1:%s/sensors/sensor-1/url", F.port);
	char key[400], cred[400];
	clifx_path(&F, "sensor-1.key", key, sizeof(key));
	clifx_path(&F, "sensor-1.cred", cred, sizeof(cred));
	ck_assert_int_eq(clifx_run(&F, "url", NULL, "pub", NULL, "-L", url, "--identity", key, "--credential", cred,
	                           "--keyring", F.c.keyring, "-q", "1", "-m", "by url", "-k", "30", NULL),
	                 0);
	ck_assert_int_eq(test_wait_exit(sub, 20000), 0);
	ck_assert_str_eq(OUT("sub"), "sensors/sensor-1/f=from a file|sensors/sensor-1/s=two\nlines|"
	                             "sensors/sensor-1/r=again|sensors/sensor-1/r=again|sensors/sensor-1/r=again|"
	                             "sensors/sensor-1/url=by url|");
}
END_TEST

START_TEST(test_null_retained_clears)
{
	/* A retained reading, then `-n -r`: MQTT's way to delete it is a
	 * zero-length retained PUBLISH, which libveil sends as it is (there is
	 * nothing to seal). A reader subscribing afterwards gets no retained
	 * message: the first it prints is the fresh one sent after its SUBACK. */
	ck_assert_int_eq(clifx_run(&F, "keep", NULL, "pub", "sensor-1", "-t", "sensors/sensor-1/state", "-q", "1",
	                           "-r", "-m", "on", NULL),
	                 0);
	int st = clifx_run(&F, "clear", NULL, "pub", "sensor-1", "-t", "sensors/sensor-1/state", "-q", "1", "-r", "-n",
	                   NULL);
	ck_assert_msg(st == 0, "exit %d, stderr: %s", st, ERR("clear"));
	pid_t rd = clifx_start(&F, "read", NULL, "sub", "dash-1", "-t", "sensors/sensor-1/state", "-C", "1", "-W", "10",
	                       "-F", "%r:%p", NULL);
	ck_assert(clifx_wait_subacks(&F, "dash-1", 1));
	ck_assert_int_eq(clifx_run(&F, "fresh", NULL, "pub", "sensor-1", "-t", "sensors/sensor-1/state", "-q", "1", "-m",
	                           "fresh", NULL),
	                 0);
	ck_assert_int_eq(test_wait_exit(rd, 10000), 0);
	ck_assert_str_eq(OUT("read"), "0:fresh\n");
}
END_TEST

START_TEST(test_will_sealed)
{
	/* The Will is sealed for its connection like any message: a client
	 * that dies without DISCONNECT leaves it, and a reader opens it (the
	 * broker's ACL wants envelopes on sensors/%c/#: a Will in clear would
	 * be refused). */
	pid_t rd = clifx_start(&F, "rd", NULL, "sub", "dash-1", "-t", "sensors/sensor-1/will", "-C", "1", "-W", "15", "-v",
	                       NULL);
	ck_assert(clifx_wait_subacks(&F, "dash-1", 1));
	pid_t w = clifx_start(&F, "w", NULL, "sub", "sensor-1", "-t", "sensors/sensor-1/x", "--will-topic",
	                      "sensors/sensor-1/will", "--will-payload", "gone", "--will-qos", "1", "--will-retain", NULL);
	ck_assert(clifx_wait_subacks(&F, "sensor-1", 1));
	kill(w, SIGKILL);
	ck_assert_int_eq(test_wait_exit(w, 10000), 128 + SIGKILL);
	int st = test_wait_exit(rd, 15000);
	ck_assert_msg(st == 0, "exit %d, stderr: %s", st, ERR("rd"));
	ck_assert_str_eq(OUT("rd"), "sensors/sensor-1/will gone\n");
	/* --will-retain: the broker has kept it as the topic's retained
	 * message, so a reader subscribing after the death gets it too, retain
	 * flag set (without the flag: nothing, "Timed out", 27). */
	st = clifx_run(&F, "late", NULL, "sub", "dash-1", "-t", "sensors/sensor-1/will", "-C", "1", "-W", "10", "-F",
	               "%r:%p", NULL);
	ck_assert_msg(st == 0, "exit %d, stderr: %s", st, ERR("late"));
	ck_assert_str_eq(OUT("late"), "1:gone\n");
}
END_TEST

/* -k and -c go into the CONNECT: the broker's log line shows them
 * ("(p5, c0, k17, ...)"), as it does for mosquitto_pub's on the same broker. */
START_TEST(test_keepalive_and_clean_session_sent)
{
	ck_assert_int_eq(clifx_run(&F, "dflt", NULL, "pub", "sensor-1", "-t", "sensors/sensor-1/a", "-q", "1", "-m", "m",
	                           NULL),
	                 0);
	ck_assert(test_file_wait(F.c.broker.log, " as sensor-1 (p5, c1, k60,", 5000));
	int st = clifx_run(&F, "kc", NULL, "pub", "sensor-1", "-t", "sensors/sensor-1/a", "-q", "1", "-m", "m", "-k",
	                   "17", "-c", "-i", "sensor-1", NULL);
	ck_assert_msg(st == 0, "exit %d, stderr: %s", st, ERR("kc"));
	ck_assert(test_file_wait(F.c.broker.log, " as sensor-1 (p5, c0, k17,", 5000));
	const char *const ref[] = { "mosquitto_pub", "-h", "127.0.0.1", "-p", F.port, "-V", "5", "-i", "auto-ref", "-c",
		                    "-k", "17", "-t", "public/ref", "-q", "1", "-m", "m", NULL };
	ck_assert_int_eq(test_wait_exit(test_spawn(ref, &(struct test_spawn){ 0 }), 10000), 0);
	ck_assert(test_file_wait(F.c.broker.log, " as auto-ref (p5, c0, k17", 5000));
}
END_TEST

/* --quiet: a runtime failure exits as without it and prints nothing;
 * a usage error is still said (as mosquitto_pub --quiet). */
START_TEST(test_quiet)
{
	int st = clifx_run(&F, "loud", NULL, "pub", "sensor-1", "-t", "sensors/dash-1/x", "-q", "1", "-m", "m", NULL);
	ck_assert_msg(st == 1 && strstr(ERR("loud"), "refused the publish"), "exit %d: %s", st, ERR("loud"));
	st = clifx_run(&F, "refused", NULL, "pub", "sensor-1", "-t", "sensors/dash-1/x", "-q", "1", "-m", "m", "--quiet",
	               NULL);
	ck_assert_int_eq(st, 1);
	ck_assert_str_eq(ERR("refused"), "");
	st = clifx_run(&F, "nokr", NULL, "pub", NULL, "-h", "127.0.0.1", "-p", F.port, "--auth", "none", "-i", "x",
	               "--keyring", "/nonexistent/veil-keyring", "-t", "a", "-m", "m", "--quiet", NULL);
	ck_assert_int_eq(st, 1);
	ck_assert_str_eq(ERR("nokr"), "");
	ck_assert_int_eq(clifx_run(&F, "usage", NULL, "pub", "sensor-1", "-t", "sensors/sensor-1/a", "-m", "m", "-c",
	                           "--quiet", NULL),
	                 2);
	ck_assert(strstr(ERR("usage"), "-c needs -i"));
}
END_TEST

START_TEST(test_options_checked)
{
	ck_assert_int_eq(clifx_run(&F, "x", NULL, "pub", "sensor-1", "-t", "sensors/sensor-1/a", "-m", "m", "-x", "soon",
	                           NULL),
	                 2);
	ck_assert(strstr(ERR("x"), "-x soon: 0 to 4294967295 seconds"));
	ck_assert_int_eq(clifx_run(&F, "x0", NULL, "pub", "sensor-1", "-t", "sensors/sensor-1/a", "-m", "m", "-c", "-i",
	                           "sensor-1", "-x", "0", NULL),
	                 2);
	ck_assert(strstr(ERR("x0"), "-c -x 0"));
	ck_assert_int_eq(clifx_run(&F, "c", NULL, "pub", "sensor-1", "-t", "sensors/sensor-1/a", "-m", "m", "-c", NULL),
	                 2);
	ck_assert(strstr(ERR("c"), "-c needs -i"));
	ck_assert_int_eq(clifx_run(&F, "will", NULL, "pub", "sensor-1", "-t", "sensors/sensor-1/a", "-m", "m",
	                           "--will-payload", "gone", NULL),
	                 2);
	ck_assert(strstr(ERR("will"), "--will-payload needs --will-topic"));
	ck_assert_int_eq(clifx_run(&F, "ks", NULL, "pub", NULL, "-t", "a", "-m", "m", "--key-service", "off", "-i", "x",
	                           "--auth", "none", NULL),
	                 2);
	ck_assert(strstr(ERR("ks"), "--keyring (or --config with a keyring) is required with --key-service off"));
	ck_assert_int_eq(clifx_run(&F, "ks2", NULL, "pub", "sensor-1", "-t", "a", "-m", "m", "--key-service", "maybe",
	                           NULL),
	                 2);
	ck_assert(strstr(ERR("ks2"), "--key-service maybe: auto, on or off"));
	ck_assert_int_eq(clifx_run(&F, "two", NULL, "pub", "sensor-1", "-t", "sensors/sensor-1/a", "-m", "m", "-l",
	                           NULL),
	                 2);
}
END_TEST

/* Every failure names its cause without -d. */
START_TEST(test_errors_name_their_cause)
{
	/* The missing file's path. */
	int st = clifx_run(&F, "nokr", NULL, "pub", NULL, "-h", "127.0.0.1", "-p", F.port, "--auth", "none", "-i",
	                   "x", "--keyring", "/nonexistent/veil-keyring", "-t", "a", "-m", "m", NULL);
	ck_assert_msg(st == 1 && strstr(ERR("nokr"), "/nonexistent/veil-keyring"), "exit %d: %s", st, ERR("nokr"));
	/* A keyring error: file and line. */
	char bad[400];
	clifx_path(&F, "bad-keyring", bad, sizeof(bad));
	ck_assert_int_eq(test_write_file(bad, "# fine\npolicy public/# plaintext\nkey sensors/# 1 notbase64\n", 0600),
	                 0);
	char where[440];
	snprintf(where, sizeof(where), "%s:3:", bad);
	st = clifx_run(&F, "badkr", NULL, "pub", NULL, "-h", "127.0.0.1", "-p", F.port, "--auth", "none", "-i", "x",
	               "--keyring", bad, "-t", "a", "-m", "m", NULL);
	ck_assert_msg(st == 1 && strstr(ERR("badkr"), where), "exit %d: %s", st, ERR("badkr"));
	/* The missing identity file. */
	char cred[400];
	clifx_path(&F, "sensor-1.cred", cred, sizeof(cred));
	st = clifx_run(&F, "noid", NULL, "pub", NULL, "-h", "127.0.0.1", "-p", F.port, "--identity",
	               "/nonexistent/dev.key", "--credential", cred, "--keyring", F.c.keyring, "-t", "sensors/sensor-1/a",
	               "-m", "m", NULL);
	ck_assert_msg(st == 1 && strstr(ERR("noid"), "/nonexistent/dev.key"), "exit %d: %s", st, ERR("noid"));
	/* Identity and credential of two different devices. */
	char dash_key[400];
	clifx_path(&F, "dash-1.key", dash_key, sizeof(dash_key));
	st = clifx_run(&F, "mismatch", NULL, "pub", NULL, "-h", "127.0.0.1", "-p", F.port, "--identity", dash_key,
	               "--credential", cred, "--keyring", F.c.keyring, "-t", "sensors/sensor-1/a", "-m", "m", NULL);
	ck_assert_msg(st == 1 && strstr(ERR("mismatch"), "identity does not match credential"), "exit %d: %s", st,
	              ERR("mismatch"));
	/* An expired credential: when. */
	struct veil_identity *dev = NULL;
	char key_path[400], old_cred[400];
	clifx_path(&F, "sensor-1.key", key_path, sizeof(key_path));
	ck_assert_int_eq(veil_identity_load(key_path, &dev, NULL, 0), VEIL_OK);
	uint8_t c[VEIL_CREDENTIAL_MAX];
	size_t cl = test_credential_make(F.c.authority, dev, "sensor-1", NULL, -60, c);
	veil_identity_free(&dev);
	clifx_path(&F, "expired.cred", old_cred, sizeof(old_cred));
	ck_assert_int_eq(veil_credential_save(c, cl, old_cred), VEIL_OK);
	st = clifx_run(&F, "expired", NULL, "pub", NULL, "-h", "127.0.0.1", "-p", F.port, "--identity", key_path,
	               "--credential", old_cred, "--keyring", F.c.keyring, "-t", "sensors/sensor-1/a", "-m", "m", NULL);
	ck_assert_msg(st == 1 && strstr(ERR("expired"), "expired at 20"), "exit %d: %s", st, ERR("expired"));
}
END_TEST

START_TEST(test_token_refusal_shows_clock)
{
	/* A credential from an authority the broker does not trust (the
	 * device's own keyring names it, so only the broker refuses): the
	 * broker says only 0x87; the CLI adds what this side knows. */
	struct veil_identity *trusted = F.c.authority;
	ck_assert_int_eq(veil_identity_generate(&F.c.authority), VEIL_OK);
	cfx_device_as(&F.c, "rogue", "sensor-1");
	char kr[400];
	clifx_path(&F, "rogue-keyring", kr, sizeof(kr));
	cfx_write_keyring(&F.c, kr, true);
	veil_identity_free(&F.c.authority);
	F.c.authority = trusted;
	char key[400], cred[400];
	clifx_path(&F, "rogue.key", key, sizeof(key));
	clifx_path(&F, "rogue.cred", cred, sizeof(cred));
	static const char *const versions[] = { "5", "311" };
	for (size_t i = 0; i < 2; i++) {
		char tag[16];
		snprintf(tag, sizeof(tag), "rogue%s", versions[i]);
		int st = clifx_run(&F, tag, NULL, "pub", NULL, "-h", "127.0.0.1", "-p", F.port, "--identity", key,
		                   "--credential", cred, "--keyring", kr, "-V", versions[i], "-t", "sensors/sensor-1/a",
		                   "-m", "m", NULL);
		const char *err = ERR(tag);
		ck_assert_msg(st == 1, "MQTT %s: exit %d: %s", versions[i], st, err);
		ck_assert_msg(strstr(err, "refused the connection as 'sensor-1'") &&
		                      strstr(err, i == 0 ? "0x87, Not authorized" : "CONNACK 5, not authorized") &&
		                      strstr(err, "this machine's clock says 20") && strstr(err, "is valid from 20") &&
		                      strstr(err, "check the clock"),
		              "MQTT %s stderr: %s", versions[i], err);
	}
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("cli_pub");
	TCase *tc = veil_tcase("pub", 20);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_refused_publish_says_why);
	tcase_add_test(tc, test_plaintext_needs_allow);
	tcase_add_test(tc, test_lines_all_delivered_in_order);
	tcase_add_test(tc, test_message_sources);
	tcase_add_test(tc, test_null_retained_clears);
	tcase_add_test(tc, test_will_sealed);
	tcase_add_test(tc, test_keepalive_and_clean_session_sent);
	tcase_add_test(tc, test_quiet);
	tcase_add_test(tc, test_options_checked);
	tcase_add_test(tc, test_errors_name_their_cause);
	tcase_add_test(tc, test_token_refusal_shows_clock);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return veil_check_run(suite());
}
