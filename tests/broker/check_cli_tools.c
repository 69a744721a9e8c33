/*
 * The `veil` commands around the clients (tools/cmd_keys.c, cmd_inspect.c,
 * cmd_passwd.c) as a user runs them: keygen authority prints the authority
 * id that credential show names; credential issue takes --hours and
 * --minutes; token verify checks a token offline and gives the clock
 * difference; show and inspect speak JSON; passwd takes mosquitto_passwd's
 * -c -b -D -U forms, keeps the owner and mode of the file (a broker running
 * as another user still reads it: checked with a real login), and names a
 * hash it cannot verify.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <pwd.h>

#include <sodium.h>

#include "check_run.h"
#include "cli_fixture.h"
#include "files.h"
#include "material.h"
#include "proc.h"
#include "raw_mqtt.h"
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

/* The value after "label:" on a line of text (copied into out). */
static void field(const char *text, const char *label, char *out, size_t cap)
{
	const char *p = strstr(text, label);
	ck_assert_msg(p != NULL, "no '%s' in: %s", label, text);
	p += strlen(label);
	p += strspn(p, " ");
	size_t n = strcspn(p, " \n");
	ck_assert_uint_lt(n, cap);
	memcpy(out, p, n);
	out[n] = '\0';
}

START_TEST(test_keygen_authority_id)
{
	char akey[400], dkey[400], cred[400], dpub[400];
	clifx_path(&F, "auth.key", akey, sizeof(akey));
	clifx_path(&F, "dev.key", dkey, sizeof(dkey));
	clifx_path(&F, "dev.key.pub", dpub, sizeof(dpub));
	clifx_path(&F, "dev.cred", cred, sizeof(cred));
	ck_assert_int_eq(clifx_run(&F, "ka", NULL, "keygen", NULL, "authority", "-o", akey, NULL), 0);
	ck_assert_msg(!strstr(OUT("ka"), "sender id"), "keygen authority: %s", OUT("ka"));
	char aid[32], shown[32];
	field(OUT("ka"), "authority id:", aid, sizeof(aid));
	ck_assert_int_eq(clifx_run(&F, "kd", NULL, "keygen", NULL, "identity", "-o", dkey, NULL), 0);
	ck_assert(strstr(OUT("kd"), "sender id: "));
	/* --hours and --minutes add up (plus the minute of skew issue allows). */
	ck_assert_int_eq(clifx_run(&F, "issue", NULL, "credential", NULL, "issue", "--authority", akey, "--device-pub",
	                           dpub, "--client-id", "dev-1", "--hours", "2", "--minutes", "30", "-o", cred, NULL),
	                 0);
	ck_assert_int_eq(clifx_run(&F, "show", NULL, "credential", NULL, "show", cred, NULL), 0);
	field(OUT("show"), "authority id:", shown, sizeof(shown));
	ck_assert_str_eq(shown, aid);
	char from[32], until[32];
	field(OUT("show"), "issued at:", from, sizeof(from));
	field(OUT("show"), "expires at:", until, sizeof(until));
	ck_assert_uint_eq(strtoull(until, NULL, 10) - strtoull(from, NULL, 10), 2 * 3600 + 30 * 60 + 60);
	/* --json, verified against the authority. */
	char apub[440];
	snprintf(apub, sizeof(apub), "%s.pub", akey);
	ck_assert_int_eq(clifx_run(&F, "json", NULL, "credential", NULL, "show", cred, "--authority-pub", apub,
	                           "--json", NULL),
	                 0);
	char want[200];
	snprintf(want, sizeof(want), "\"client_id\":\"dev-1\",\"roles\":[],\"authority_id\":\"%s\"", aid);
	ck_assert_msg(strstr(OUT("json"), want) && strstr(OUT("json"), "\"verified\":true}\n") &&
	                      strstr(OUT("json"), "\"expires_at_utc\":\"20"),
	              "json: %s", OUT("json"));
	ck_assert_int_eq(clifx_run(&F, "bad", NULL, "credential", NULL, "issue", "--authority", akey, "--device-pub",
	                           dpub, "--client-id", "dev-1", "--hours", "x", "-o", cred, NULL),
	                 2);
}
END_TEST

START_TEST(test_token_verify_offline)
{
	char key[400], cred[400];
	clifx_path(&F, "sensor-1.key", key, sizeof(key));
	clifx_path(&F, "sensor-1.cred", cred, sizeof(cred));
	time_t made = time(NULL); /* the token's time is this or later */
	ck_assert_int_eq(clifx_run(&F, "tok", NULL, "token", NULL, "--identity", key, "--credential", cred,
	                           "--client-id", "sensor-1", "--password", NULL),
	                 0);
	char tokfile[400];
	clifx_path(&F, "tok.out", tokfile, sizeof(tokfile));
	ck_assert_int_eq(clifx_run(&F, "ok", tokfile, "token", NULL, "verify", "--authority-pub", F.auth_pub,
	                           "--client-id", "sensor-1", NULL),
	                 0);
	ck_assert_msg(strstr(OUT("ok"), "verification:  ok"), "out: %s", OUT("ok"));
	/* The verifier's clock 300 s ahead: stale, and by how much (300 s
	 * plus however long the token took to make, on a slow machine). */
	char later[32];
	time_t now = time(NULL);
	snprintf(later, sizeof(later), "%llu", (unsigned long long)now + 300);
	int st = clifx_run(&F, "stale", tokfile, "token", NULL, "verify", "--authority-pub", F.auth_pub, "--client-id",
	                   "sensor-1", "--time", later, NULL);
	ck_assert_int_eq(st, 1);
	const char *behind = strstr(ERR("stale"), "its time is ");
	long secs = behind ? strtol(behind + strlen("its time is "), NULL, 10) : -1;
	ck_assert_msg(strstr(ERR("stale"), "stale token") && behind && strstr(behind, " s behind") && secs >= 300 &&
	                      secs <= 300 + (long)(now - made) && strstr(ERR("stale"), "check the clock"),
	              "stderr: %s (expected 300 to %ld s behind)", ERR("stale"), 300 + (long)(now - made));
	st = clifx_run(&F, "other", tokfile, "token", NULL, "verify", "--authority-pub", F.auth_pub, "--client-id",
	               "dash-1", NULL);
	ck_assert_int_eq(st, 1);
	ck_assert(strstr(ERR("other"), "the token is for client id 'sensor-1', not 'dash-1'"));
}
END_TEST

START_TEST(test_inspect_json)
{
	struct cfx_plain spy;
	cfx_plain_connect(&F.c, &spy, "auto-spy", "sensors/#");
	ck_assert_int_eq(clifx_run(&F, "pub", NULL, "pub", "sensor-1", "-t", "sensors/sensor-1/a", "-q", "1", "-m",
	                           "twelve bytes", "--sign", NULL),
	                 0);
	ck_assert(cfx_plain_wait(&spy, 1, 5000));
	char env[400];
	clifx_path(&F, "env.bin", env, sizeof(env));
	FILE *fp = fopen(env, "wb");
	ck_assert_ptr_nonnull(fp);
	pthread_mutex_lock(&spy.lock);
	ck_assert_uint_eq(fwrite(spy.payload[0], 1, spy.len[0], fp), spy.len[0]);
	pthread_mutex_unlock(&spy.lock);
	fclose(fp);
	cfx_plain_close(&spy);
	ck_assert_int_eq(clifx_run(&F, "i", NULL, "inspect", NULL, env, "--json", NULL), 0);
	ck_assert_msg(strstr(OUT("i"), "{\"envelope\":true,") && strstr(OUT("i"), "\"signed\":true,\"key_id\":1,") &&
	                      strstr(OUT("i"), "\"plaintext_bytes\":12,") &&
	                      strstr(OUT("i"), "\"credential\":{\"client_id\":\"sensor-1\""),
	              "json: %s", OUT("i"));
	ck_assert_int_eq(clifx_run(&F, "n", NULL, "inspect", NULL, "--hex", "0102", "--json", NULL), 1);
	ck_assert(strstr(OUT("n"), "{\"envelope\":false,\"bytes\":2,\"error\":"));
}
END_TEST

START_TEST(test_passwd_forms)
{
	char pw[400];
	size_t len = 0;
	clifx_path(&F, "passwd", pw, sizeof(pw));
	/* Without -c the file must exist. */
	ck_assert_int_eq(clifx_run(&F, "nofile", NULL, "passwd", NULL, "-b", pw, "alice", "a-pw", NULL), 1);
	ck_assert(strstr(ERR("nofile"), "-c creates it"));
	ck_assert_int_eq(clifx_run(&F, "c", NULL, "passwd", NULL, "-c", "-b", pw, "alice", "a-pw", NULL), 0);
	ck_assert_int_eq(clifx_run(&F, "b", NULL, "passwd", NULL, "-b", pw, "bob", "b-pw", NULL), 0);
	char in[400];
	clifx_path(&F, "pw-in", in, sizeof(in));
	ck_assert_int_eq(test_write_file(in, "b-pw\n", 0600), 0);
	ck_assert_int_eq(clifx_run(&F, "vb", in, "passwd", NULL, "verify", pw, "bob", NULL), 0);
	/* Updated in place: alice stays first. */
	ck_assert_int_eq(clifx_run(&F, "a2", NULL, "passwd", NULL, "-b", pw, "alice", "new-pw", NULL), 0);
	char *text = test_file_read(pw, &len);
	ck_assert_msg(text && !strncmp(text, "alice:$argon2id$", 16) && strstr(text, "\nbob:$argon2id$"), "%s", text);
	free(text);
	/* -D deletes; -c replaces the whole file. */
	ck_assert_int_eq(clifx_run(&F, "d", NULL, "passwd", NULL, "-D", pw, "bob", NULL), 0);
	ck_assert_int_eq(clifx_run(&F, "vd", in, "passwd", NULL, "verify", pw, "bob", NULL), 1);
	/* -U hashes plain-text passwords, keeps comments and Argon2id lines. */
	text = test_file_read(pw, &len);
	char plain[2048];
	snprintf(plain, sizeof(plain), "%s# legacy users\ncarol:c-pw\n", text);
	free(text);
	ck_assert_int_eq(test_write_file(pw, plain, 0600), 0);
	ck_assert_int_eq(clifx_run(&F, "u", NULL, "passwd", NULL, "-U", pw, NULL), 0);
	ck_assert_int_eq(test_write_file(in, "c-pw\n", 0600), 0);
	ck_assert_int_eq(clifx_run(&F, "vc", in, "passwd", NULL, "verify", pw, "carol", NULL), 0);
	text = test_file_read(pw, &len);
	ck_assert_msg(text && strstr(text, "\n# legacy users\ncarol:$argon2id$") && !strstr(text, "c-pw"), "%s", text);
	free(text);
	/* A mosquitto_passwd hash: named, never verified, never "upgraded". */
	text = test_file_read(pw, &len);
	snprintf(plain, sizeof(plain), "%sdave:$7$101$c2FsdHNhbHQ=$aGFzaGhhc2hoYXNo\n", text);
	free(text);
	ck_assert_int_eq(test_write_file(pw, plain, 0600), 0);
	ck_assert_int_eq(clifx_run(&F, "v7", in, "passwd", NULL, "verify", pw, "dave", NULL), 1);
	ck_assert_msg(strstr(ERR("v7"), "not an Argon2id hash ($7$") &&
	                      strstr(ERR("v7"), "re-create this user with veil passwd"),
	              "stderr: %s", ERR("v7"));
	ck_assert_int_eq(clifx_run(&F, "u7", NULL, "passwd", NULL, "-U", pw, NULL), 1);
	ck_assert_msg(strstr(ERR("u7"), ":4: user 'dave': not an Argon2id hash ($7$"), "stderr: %s", ERR("u7"));
	text = test_file_read(pw, &len);
	ck_assert_str_eq(text, plain); /* untouched */
	free(text);
	/* Adding and deleting another user beside it works, and says plainly
	 * that dave's line will keep the plugin from loading the file. */
	ck_assert_int_eq(clifx_run(&F, "a7", NULL, "passwd", NULL, "-b", pw, "erin", "e-pw", NULL), 0);
	ck_assert_msg(strstr(ERR("a7"), ":4: user 'dave': not an Argon2id hash ($7$"), "stderr: %s", ERR("a7"));
	ck_assert_int_eq(clifx_run(&F, "d7", NULL, "passwd", NULL, "-D", pw, "erin", NULL), 0);
	ck_assert_msg(strstr(ERR("d7"), ":4: user 'dave': not an Argon2id hash ($7$"), "stderr: %s", ERR("d7"));
	/* mosquitto_passwd's prompting form, -c FILE USER: the password from
	 * standard input (its first line, with no terminal). -c replaces the
	 * whole file: frank alone. */
	ck_assert_int_eq(test_write_file(in, "f-pw\n", 0600), 0);
	ck_assert_int_eq(clifx_run(&F, "cp", in, "passwd", NULL, "-c", pw, "frank", NULL), 0);
	ck_assert_int_eq(clifx_run(&F, "vf", in, "passwd", NULL, "verify", pw, "frank", NULL), 0);
	text = test_file_read(pw, &len);
	ck_assert_msg(text && !strncmp(text, "frank:$argon2id$", 16) && strchr(text, '\n') == text + len - 1, "%s",
	              text);
	free(text);
	ck_assert_int_eq(clifx_run(&F, "h", NULL, "passwd", NULL, "-H", "sha512-pbkdf2", pw, "x", NULL), 2);
}
END_TEST

START_TEST(test_passwd_keeps_owner_for_the_broker)
{
	/* A broker that runs as mosquitto (as Debian's does), reading a
	 * password file that mosquitto owns, mode 0600; veil passwd run as
	 * root adds a user: the file must stay the broker's to read. */
	struct passwd *pwd = getpwnam("mosquitto");
	ck_assert_msg(pwd != NULL, "no 'mosquitto' user (the Debian package makes it)");
	ck_assert_msg(geteuid() == 0, "this test runs as root, as veil passwd does on a broker host");
	char pw[400];
	clifx_path(&F, "broker-passwd", pw, sizeof(pw));
	char line[256];
	test_passwd_line(line, sizeof(line), "alice", "wonderland");
	ck_assert_int_eq(test_write_file(pw, line, 0600), 0);
	ck_assert_int_eq(chown(pw, pwd->pw_uid, pwd->pw_gid), 0);
	char conf[2048];
	/* The broker's own directory is the test's (0700): no log file there. */
	snprintf(conf, sizeof(conf),
	         "user mosquitto\nlog_dest none\nallow_anonymous false\nplugin %s\nplugin_opt_authority_file %s\n"
	         "plugin_opt_acl_file %s\nplugin_opt_password_file %s\n",
	         test_plugin_path(), F.auth_pub, F.acl, pw);
	struct test_broker b;
	ck_assert_int_eq(test_broker_start(&b, conf), 0);
	char in[400];
	clifx_path(&F, "carol-pw", in, sizeof(in));
	ck_assert_int_eq(test_write_file(in, "c-pw\n", 0600), 0);
	ck_assert_int_eq(clifx_run(&F, "add", in, "passwd", NULL, "add", pw, "carol", NULL), 0);
	struct stat st;
	ck_assert_int_eq(stat(pw, &st), 0);
	ck_assert_uint_eq(st.st_uid, pwd->pw_uid);
	ck_assert_uint_eq(st.st_gid, pwd->pw_gid);
	ck_assert_uint_eq(st.st_mode & 07777, 0600);
	/* The plugin re-reads it on SIGHUP, as the mosquitto user. */
	ck_assert_int_eq(test_broker_reload(&b), 0);
	struct raw_login l = { .version = 4, .client_id = "carol", .username = "carol", .password = "c-pw" };
	ck_assert_msg(VEIL_WAIT_UNTIL(raw_login_once(b.port, &l, 5000) == 0, 10000),
	              "carol's login refused: the broker could not read the rewritten file");
	test_broker_stop(&b);
	test_broker_cleanup(&b);
	/* Mode kept too (0640 group-readable stays so). */
	ck_assert_int_eq(chmod(pw, 0640), 0);
	ck_assert_int_eq(clifx_run(&F, "del", NULL, "passwd", NULL, "-D", pw, "alice", NULL), 0);
	ck_assert_int_eq(stat(pw, &st), 0);
	ck_assert_uint_eq(st.st_mode & 07777, 0640);
	ck_assert_uint_eq(st.st_uid, pwd->pw_uid);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("cli_tools");
	TCase *tc = veil_tcase("tools", 30);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_keygen_authority_id);
	tcase_add_test(tc, test_token_verify_offline);
	tcase_add_test(tc, test_inspect_json);
	tcase_add_test(tc, test_passwd_forms);
	tcase_add_test(tc, test_passwd_keeps_owner_for_the_broker);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return veil_check_run(suite());
}
