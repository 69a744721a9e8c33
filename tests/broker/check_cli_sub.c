/*
 * `veil sub` (tools/cmd_sub.c, tools/sub_format.c) as a user runs it,
 * against a real Mosquitto with mosquitto_veil.so: a message accepted in
 * clear under a plaintext policy is never printed like a verified one;
 * --json and -F carry topic, payload, QoS, retain, verification, signer,
 * sender, key id and sequence; -W times out with "Timed out" and status 27;
 * -R, -T, -E, -U, -c, -k as mosquitto_sub, --quiet silences a refusal;
 * -x N keeps the session and its queued messages N seconds (without -c a
 * clean start, as mosquitto_sub); and a long-running subscriber
 * re-reads its keyring on SIGHUP and when the file changes, keeps the old
 * keyring when the new one does not load (saying file:line), and never
 * drops its connection for it.
 */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sodium.h>

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

/* The fixture's broker with a revocation list (empty at first). */
static char revoked[400];
static void setup_revocable(void)
{
	char extra[600];
	char dir[256];
	ck_assert_int_eq(test_mkdtemp_readable(dir, sizeof(dir)), 0);
	snprintf(revoked, sizeof(revoked), "%s/revoked", dir);
	ck_assert_int_eq(test_write_file(revoked, "# none yet\n", 0644), 0);
	snprintf(extra, sizeof(extra), "plugin_opt_revocation_file %s\n", revoked);
	clifx_setup(&F, NULL, extra);
}

static void teardown_revocable(void)
{
	char dir[400];
	snprintf(dir, sizeof(dir), "%s", revoked);
	*strrchr(dir, '/') = '\0';
	clifx_teardown(&F);
	test_rmtree(dir);
}

#define ERR(tag) clifx_text(&F, tag, "err")
#define OUT(tag) clifx_text(&F, tag, "out")

/* The hex sender id of a device of the fixture (from its key file). */
static void sender_hex(const char *dev, char out[2 * VEIL_SENDER_ID_BYTES + 1])
{
	char path[400];
	snprintf(path, sizeof(path), "%s/%s.key", F.c.dir, dev);
	struct veil_identity *id = NULL;
	ck_assert_int_eq(veil_identity_load(path, &id, NULL, 0), VEIL_OK);
	uint8_t pk[VEIL_PK_BYTES], sid[VEIL_SENDER_ID_BYTES];
	veil_identity_public(id, pk);
	veil_identity_free(&id);
	veil_sender_id(pk, sid);
	sodium_bin2hex(out, 2 * VEIL_SENDER_ID_BYTES + 1, sid, sizeof(sid));
}

static int count_lines(const char *s)
{
	int n = 0;
	for (; *s; s++)
		n += *s == '\n';
	return n;
}

static void pub(const char *tag, const char *topic, const char *msg, const char *extra)
{
	int st = clifx_run(&F, tag, NULL, "pub", "sensor-1", "-t", topic, "-q", "1", "-m", msg, extra, NULL);
	ck_assert_msg(st == 0, "pub %s: exit %d: %s", tag, st, ERR(tag));
}

START_TEST(test_plaintext_never_looks_verified)
{
	cfx_device(&F.c, "dash-2");
	pid_t v = clifx_start(&F, "v", NULL, "sub", "dash-1", "-t", "sensors/#", "-t", "public/#", "-v", "-C", "2",
	                      "-W", "20", NULL);
	pid_t j = clifx_start(&F, "j", NULL, "sub", "dash-2", "-t", "public/#", "--json", "-C", "1", "-W", "20", NULL);
	ck_assert(clifx_wait_subacks(&F, "dash-1", 2));
	ck_assert(clifx_wait_subacks(&F, "dash-2", 1));
	pub("p1", "sensors/sensor-1/a", "sealed reading", NULL);
	pub("p2", "public/news", "open news", "--allow-plaintext");
	ck_assert_int_eq(test_wait_exit(v, 20000), 0);
	ck_assert_int_eq(test_wait_exit(j, 20000), 0);
	ck_assert_str_eq(OUT("v"), "sensors/sensor-1/a sealed reading\npublic/news [plaintext] open news\n");
	ck_assert_msg(strstr(ERR("v"), "message on 'public/news' arrived in clear") && strstr(ERR("v"), "NOT verified"),
	              "stderr: %s", ERR("v"));
	ck_assert_msg(strstr(OUT("j"), "\"topic\":\"public/news\",\"payload\":\"open news\"") &&
	                      strstr(OUT("j"), "\"verified\":false,\"plaintext\":true,\"signed\":false}"),
	              "json: %s", OUT("j"));
}
END_TEST

START_TEST(test_json_fields)
{
	char bin[400];
	clifx_path(&F, "bin", bin, sizeof(bin));
	static const uint8_t bytes[] = { 0x00, 0xff, 0x10, 'a' };
	FILE *fp = fopen(bin, "wb");
	ck_assert_ptr_nonnull(fp);
	ck_assert_uint_eq(fwrite(bytes, 1, sizeof(bytes), fp), sizeof(bytes));
	fclose(fp);
	pid_t s = clifx_start(&F, "s", NULL, "sub", "dash-1", "-t", "sensors/#", "-q", "1", "--json", "-C", "3", "-W",
	                      "20", NULL);
	ck_assert(clifx_wait_subacks(&F, "dash-1", 1));
	pub("signed", "sensors/sensor-1/a", "signed \"q\" \xc3\xa9", "--sign");
	pub("unsigned", "sensors/sensor-1/b", "plain text", NULL);
	ck_assert_int_eq(clifx_run(&F, "bin", NULL, "pub", "sensor-1", "-t", "sensors/sensor-1/c", "-q", "1", "-f", bin,
	                           NULL),
	                 0);
	ck_assert_int_eq(test_wait_exit(s, 20000), 0);
	char sid[2 * VEIL_SENDER_ID_BYTES + 1], want[512];
	sender_hex("sensor-1", sid);
	const char *out = OUT("s");
	const char *l2 = strchr(out, '\n');
	ck_assert_int_eq(count_lines(out), 3);
	ck_assert_ptr_nonnull(l2);
	snprintf(want, sizeof(want),
	         "{\"topic\":\"sensors/sensor-1/a\",\"payload\":\"signed \\\"q\\\" \xc3\xa9\",\"qos\":1,\"retained\":false,"
	         "\"verified\":true,\"plaintext\":false,\"signed\":true,\"sender_client_id\":\"sensor-1\","
	         "\"sender\":\"%s\",\"key_id\":1,\"seq\":",
	         sid);
	ck_assert_msg(strncmp(out, want, strlen(want)) == 0, "line 1: %s\nwant:   %s", out, want);
	snprintf(want, sizeof(want),
	         "{\"topic\":\"sensors/sensor-1/b\",\"payload\":\"plain text\",\"qos\":1,\"retained\":false,"
	         "\"verified\":true,\"plaintext\":false,\"signed\":false,\"sender\":\"%s\",\"key_id\":1,\"seq\":",
	         sid);
	ck_assert_msg(strncmp(l2 + 1, want, strlen(want)) == 0, "line 2: %s\nwant:   %s", l2 + 1, want);
	const char *line3 = strstr(out, "sensors/sensor-1/c");
	ck_assert_msg(line3 && strstr(line3, "\"payload\":\"AP8QYQ==\",\"payload_base64\":true"), "line 3: %s", out);
	/* Sequences are numbers, exact, and increase. */
	unsigned long long q1 = strtoull(strstr(out, "\"seq\":") + 6, NULL, 10);
	unsigned long long q2 = strtoull(strstr(l2 + 1, "\"seq\":") + 6, NULL, 10);
	ck_assert_msg(q1 > 0 && q2 > q1, "seq %llu then %llu", q1, q2);
}
END_TEST

START_TEST(test_format)
{
	char sid[2 * VEIL_SENDER_ID_BYTES + 1], want[512];
	sender_hex("sensor-1", sid);
	pid_t s = clifx_start(&F, "s", NULL, "sub", "dash-1", "-t", "sensors/#", "-t", "public/#", "-q", "1", "-C", "2",
	                      "-W", "20", "-F", "%t\\t%p|%q|%r|%l|%x|%X|%V|%g|%c|%s|%k|%-6.3t|%05l|%%|@@", NULL);
	ck_assert(clifx_wait_subacks(&F, "dash-1", 2));
	pub("a", "sensors/sensor-1/a", "Hi", "--sign");
	pub("b", "public/x", "op", "--allow-plaintext");
	ck_assert_int_eq(test_wait_exit(s, 20000), 0);
	snprintf(want, sizeof(want),
	         "sensors/sensor-1/a\tHi|1|0|2|4869|4869|verified|signed|sensor-1|%s|1|sen   |00002|%%|@\n"
	         "public/x\top|1|0|2|6f70|6F70|PLAINTEXT|unsigned||||pub   |00002|%%|@\n",
	         sid);
	ck_assert_str_eq(OUT("s"), want);
	/* -N: no new line; -T: filtered out, not counted. */
	s = clifx_start(&F, "n", NULL, "sub", "dash-1", "-t", "sensors/#", "-q", "1", "-C", "2", "-W", "20", "-N", "-T",
	                "sensors/sensor-1/skip", NULL);
	ck_assert(clifx_wait_subacks(&F, "dash-1", 3));
	pub("c", "sensors/sensor-1/skip", "skipped", NULL);
	pub("d", "sensors/sensor-1/a", "one", NULL);
	pub("e", "sensors/sensor-1/a", "two", NULL);
	ck_assert_int_eq(test_wait_exit(s, 20000), 0);
	ck_assert_str_eq(OUT("n"), "onetwo");
}
END_TEST

START_TEST(test_timeout_is_27)
{
	int st = clifx_run(&F, "w", NULL, "sub", "dash-1", "-t", "sensors/#", "-W", "1", NULL);
	ck_assert_int_eq(st, 27);
	ck_assert_str_eq(ERR("w"), "Timed out\n");
	st = clifx_run(&F, "q", NULL, "sub", "dash-1", "-t", "sensors/#", "-W", "1", "--quiet", NULL);
	ck_assert_int_eq(st, 27);
	ck_assert_str_eq(ERR("q"), "");
	/* A refused subscription is said with its reason. */
	st = clifx_run(&F, "deny", NULL, "sub", "dash-1", "-t", "secret/#", "-q", "1", "-W", "5", NULL);
	ck_assert_int_eq(st, 1);
	ck_assert_msg(strstr(ERR("deny"), "refused the subscription to 'secret/#': reason code 0x87, Not authorized"),
	              "stderr: %s", ERR("deny"));
	/* --quiet: the same failure, the same status, nothing said. */
	st = clifx_run(&F, "qdeny", NULL, "sub", "dash-1", "-t", "secret/#", "-q", "1", "-W", "5", "--quiet", NULL);
	ck_assert_int_eq(st, 1);
	ck_assert_str_eq(ERR("qdeny"), "");
}
END_TEST

START_TEST(test_retained_skipped_with_R)
{
	pub("old", "sensors/sensor-1/state", "old", "-r");
	ck_assert_int_eq(clifx_run(&F, "all", NULL, "sub", "dash-1", "-t", "sensors/sensor-1/state", "-C", "1", "-W",
	                           "10", NULL),
	                 0);
	ck_assert_str_eq(OUT("all"), "old\n");
	pid_t s = clifx_start(&F, "fresh", NULL, "sub", "dash-1", "-t", "sensors/sensor-1/state", "-R", "-C", "1", "-W",
	                      "20", NULL);
	ck_assert(clifx_wait_subacks(&F, "dash-1", 2));
	pub("new", "sensors/sensor-1/state", "new", NULL);
	ck_assert_int_eq(test_wait_exit(s, 20000), 0);
	ck_assert_str_eq(OUT("fresh"), "new\n");
}
END_TEST

START_TEST(test_persistent_session)
{
	ck_assert_int_eq(clifx_run(&F, "noid", NULL, "sub", "dash-1", "-t", "sensors/#", "-c", NULL), 2);
	ck_assert(strstr(ERR("noid"), "-c needs -i"));
	/* -E: make the session and leave. */
	ck_assert_int_eq(clifx_run(&F, "make", NULL, "sub", "dash-1", "-c", "-i", "dash-1", "-q", "1", "-t",
	                           "sensors/#", "-E", NULL),
	                 0);
	pub("q1", "sensors/sensor-1/a", "queued one", NULL);
	pub("q2", "sensors/sensor-1/a", "queued two", NULL);
	ck_assert_int_eq(clifx_run(&F, "resume", NULL, "sub", "dash-1", "-c", "-i", "dash-1", "-q", "1", "-t",
	                           "sensors/#", "-C", "2", "-W", "10", NULL),
	                 0);
	ck_assert_str_eq(OUT("resume"), "queued one\nqueued two\n");
	/* -U: the session no longer holds the subscription. */
	ck_assert_int_eq(clifx_run(&F, "unsub", NULL, "sub", "dash-1", "-c", "-i", "dash-1", "-U", "sensors/#", NULL),
	                 0);
	pub("q3", "sensors/sensor-1/a", "not queued", NULL);
	ck_assert_int_eq(clifx_run(&F, "after", NULL, "sub", "dash-1", "-c", "-i", "dash-1", "-q", "1", "-t",
	                           "public/#", "-W", "2", NULL),
	                 27);
	ck_assert_str_eq(OUT("after"), "");
}
END_TEST

/* -k goes into the CONNECT: the broker's log line shows it. */
START_TEST(test_keepalive_sent)
{
	ck_assert_int_eq(clifx_run(&F, "k", NULL, "sub", "dash-1", "-t", "sensors/#", "-k", "23", "-E", NULL), 0);
	ck_assert(test_file_wait(F.c.broker.log, " as dash-1 (p5, c1, k23,", 5000));
}
END_TEST

/* The fixture's broker publishing $SYS every second: the count of expired
 * sessions is the event a session's end is waited on with. */
static void setup_sys(void)
{
	clifx_setup(&F, CLIFX_ACL "topic read $SYS/broker/clients/expired\n", "sys_interval 1\n");
}

/* -x N: Mosquitto keeps the session, with the QoS 1 messages queued in
 * it, for N seconds after the disconnect, then ends it and drops them. As
 * with mosquitto_sub, -x without -c is a clean start whose session then
 * lasts N seconds: the message queued after it is there on -c's return. */
START_TEST(test_session_expiry)
{
	/* A session that never expires, as mosquitto_sub says, needs -i. */
	ck_assert_int_eq(clifx_run(&F, "xinf", NULL, "sub", "dash-1", "-x", "-1", "-t", "sensors/#", NULL), 2);
	ck_assert_msg(strstr(ERR("xinf"), "-x -1 (a session that never expires) needs -i"), "%s", ERR("xinf"));
	struct cfx_plain sys;
	cfx_plain_connect(&F.c, &sys, "auto-sys", "$SYS/broker/clients/expired");
	int clean = test_file_count(F.c.broker.log, " as dash-1 (p5, c1,");
	ck_assert_int_eq(clifx_run(&F, "make", NULL, "sub", "dash-1", "-i", "dash-1", "-x", "60", "-q", "1", "-t",
	                           "sensors/#", "-E", NULL),
	                 0);
	ck_assert(test_file_wait_count(F.c.broker.log, " as dash-1 (p5, c1,", clean + 1, 5000)); /* a clean start */
	pub("q1", "sensors/sensor-1/a", "kept", NULL);
	/* Back within 60 s: the queued message; leaving now with -x 1. */
	int st = clifx_run(&F, "resume", NULL, "sub", "dash-1", "-c", "-i", "dash-1", "-x", "1", "-q", "1", "-t",
	                   "sensors/#", "-C", "1", "-W", "10", NULL);
	ck_assert_msg(st == 0, "exit %d: %s", st, ERR("resume"));
	ck_assert_str_eq(OUT("resume"), "kept\n");
	pub("q2", "sensors/sensor-1/a", "dropped", NULL);
	ck_assert_msg(VEIL_WAIT_UNTIL(cfx_plain_saw(&sys, "1", 1), 10000), "the session did not expire");
	cfx_plain_close(&sys);
	/* A session found again after that is a new one: the first message it
	 * prints is one sent after its SUBACK, not the one queued before. */
	pid_t s = clifx_start(&F, "after", NULL, "sub", "dash-1", "-c", "-i", "dash-1", "-q", "1", "-t", "sensors/#",
	                      "-C", "1", "-W", "10", NULL);
	ck_assert(clifx_wait_subacks(&F, "dash-1", 3));
	pub("q3", "sensors/sensor-1/a", "fresh", NULL);
	ck_assert_int_eq(test_wait_exit(s, 10000), 0);
	ck_assert_str_eq(OUT("after"), "fresh\n");
}
END_TEST

/* A keyring for the sub alone: the authority, the fixture's sensors key
 * (id 1), and when k7 is set a second key for sensors/# (id 7). */
static void write_keyring(const char *path, const uint8_t *k7, const char *junk)
{
	uint8_t apk[VEIL_PK_BYTES];
	veil_identity_public(F.c.authority, apk);
	char a64[64], k1[64], k7s[64] = "", text[1024], tmp[440];
	test_b64(a64, sizeof(a64), apk, sizeof(apk));
	test_b64(k1, sizeof(k1), F.c.k_sensors, VEIL_KEY_BYTES);
	if (k7)
		test_b64(k7s, sizeof(k7s), k7, VEIL_KEY_BYTES);
	snprintf(text, sizeof(text), "authority %s\n%skey sensors/# 1 %s send\n%s%s%s", a64, junk ? junk : "", k1,
	         k7 ? "key sensors/# 7 " : "", k7s, k7 ? "\n" : "");
	/* Replaced in one rename, as an editor or a deployment tool does. */
	snprintf(tmp, sizeof(tmp), "%s.new", path);
	ck_assert_int_eq(test_write_file(tmp, text, 0600), 0);
	ck_assert_int_eq(rename(tmp, path), 0);
}

START_TEST(test_keyring_reload_keeps_connection)
{
	char kr[400], pub_kr[400], key[400], cred[400];
	clifx_path(&F, "dash.keyring", kr, sizeof(kr));
	clifx_path(&F, "k7.keyring", pub_kr, sizeof(pub_kr));
	clifx_path(&F, "dash-1.key", key, sizeof(key));
	clifx_path(&F, "dash-1.cred", cred, sizeof(cred));
	uint8_t k7[VEIL_KEY_BYTES];
	veil_topic_key_generate(k7);
	write_keyring(kr, NULL, NULL);
	/* The sensor's new keyring seals with key 7 only. */
	uint8_t apk[VEIL_PK_BYTES];
	veil_identity_public(F.c.authority, apk);
	char a64[64], k7s[64], text[512];
	test_b64(a64, sizeof(a64), apk, sizeof(apk));
	test_b64(k7s, sizeof(k7s), k7, sizeof(k7));
	snprintf(text, sizeof(text), "authority %s\nkey sensors/# 7 %s send\n", a64, k7s);
	ck_assert_int_eq(test_write_file(pub_kr, text, 0600), 0);
	char skey[400], scred[400];
	clifx_path(&F, "sensor-1.key", skey, sizeof(skey));
	clifx_path(&F, "sensor-1.cred", scred, sizeof(scred));
#define PUB7(tag, msg)                                                                                      \
	ck_assert_int_eq(clifx_run(&F, tag, NULL, "pub", NULL, "-h", "127.0.0.1", "-p", F.port, "--identity", skey, \
	                           "--credential", scred, "--keyring", pub_kr, "-t", "sensors/sensor-1/k", "-q", "1", \
	                           "-m", msg, NULL),                                                           \
	                 0)

	pid_t s = clifx_start(&F, "s", NULL, "sub", NULL, "-h", "127.0.0.1", "-p", F.port, "--identity", key,
	                      "--credential", cred, "--keyring", kr, "-t", "sensors/#", "-q", "1", "-v", NULL);
	ck_assert(clifx_wait_subacks(&F, "dash-1", 1));
	/* SIGHUP re-reads the keyring; it no longer ends the program. */
	ck_assert_int_eq(kill(s, SIGHUP), 0);
	ck_assert(clifx_wait(&F, "s", "err", "reloaded (SIGHUP)", 5000));
	PUB7("p1", "k7 one");
	ck_assert(clifx_wait(&F, "s", "err", "refused message on 'sensors/sensor-1/k': unknown-key", 5000));
	/* The file changes: read again, without a signal. */
	write_keyring(kr, k7, NULL);
	ck_assert(clifx_wait(&F, "s", "err", "reloaded (the file changed)", 5000));
	PUB7("p2", "k7 two");
	ck_assert(clifx_wait(&F, "s", "out", "sensors/sensor-1/k k7 two\n", 5000));
	/* A keyring that does not load: said with file and line, the old one stays. */
	write_keyring(kr, k7, "junk here\n");
	char where[512];
	snprintf(where, sizeof(where), "reload failed, the old keyring stays: keyring %s:2:", kr);
	ck_assert(clifx_wait(&F, "s", "err", where, 5000));
	PUB7("p3", "k7 three");
	ck_assert(clifx_wait(&F, "s", "out", "sensors/sensor-1/k k7 three\n", 5000));
	ck_assert_int_eq(kill(s, SIGHUP), 0);
	char path[400];
	snprintf(path, sizeof(path), "%s/s.err", F.c.dir);
	ck_assert(test_file_wait_count(path, "reload failed", 2, 5000));
	/* One connection all along. */
	ck_assert_int_eq(test_file_count(F.c.broker.log, " as dash-1 ("), 1);
	ck_assert_int_eq(kill(s, SIGTERM), 0);
	ck_assert_int_eq(test_wait_exit(s, 10000), 0);
	sodium_memzero(k7, sizeof(k7));
#undef PUB7
}
END_TEST

/* Revoked while subscribed: the plugin kicks it, and `veil sub` says so and
 * exits 1, over MQTT 5 (the broker's DISCONNECT names the reason) and 3.1.1
 * (the connection just closes). */
START_TEST(test_kicked_exits)
{
	pid_t s5 = clifx_start(&F, "s5", NULL, "sub", "dash-1", "-t", "sensors/#", NULL);
	pid_t s3 = clifx_start(&F, "s3", NULL, "sub", "sensor-1", "-V", "311", "-t", "sensors/#", NULL);
	ck_assert(clifx_wait_subacks(&F, "dash-1", 1));
	ck_assert(clifx_wait_subacks(&F, "sensor-1", 1));
	ck_assert_int_eq(test_write_file(revoked, "client dash-1\nclient sensor-1\n", 0644), 0);
	ck_assert_int_eq(test_wait_exit(s5, 10000), 1);
	ck_assert_msg(strstr(ERR("s5"), "connection lost: the broker disconnected this client: reason code 0x"),
	              "stderr: %s", ERR("s5"));
	ck_assert_int_eq(test_wait_exit(s3, 10000), 1);
	ck_assert_msg(strstr(ERR("s3"), "connection lost: "), "stderr: %s", ERR("s3"));
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("cli_sub");
	TCase *tc = veil_tcase("sub", 30);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_plaintext_never_looks_verified);
	tcase_add_test(tc, test_json_fields);
	tcase_add_test(tc, test_format);
	tcase_add_test(tc, test_timeout_is_27);
	tcase_add_test(tc, test_retained_skipped_with_R);
	tcase_add_test(tc, test_persistent_session);
	tcase_add_test(tc, test_keyring_reload_keeps_connection);
	tcase_add_test(tc, test_keepalive_sent);
	suite_add_tcase(s, tc);
	TCase *sys = veil_tcase("session-expiry", 30);
	tcase_add_checked_fixture(sys, setup_sys, teardown);
	tcase_add_test(sys, test_session_expiry);
	suite_add_tcase(s, sys);
	TCase *kick = veil_tcase("kicked", 30);
	tcase_add_checked_fixture(kick, setup_revocable, teardown_revocable);
	tcase_add_test(kick, test_kicked_exits);
	suite_add_tcase(s, kick);
	return s;
}

int main(void)
{
	return veil_check_run(suite());
}
