/*
 * Runs the shipped programs against a real Mosquitto, as a user would:
 * examples/sensor -> examples/dashboard through libveil (config files made
 * here with the core API), examples/plain_sensor publishing in clear (the
 * dashboard must refuse it), and the `veil pub` / `veil sub` CLI.
 * Processes are started with fork/exec and stopped by PID.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client_fixture.h"
#include "check_run.h"
#include "proc.h"
#include "timing.h"

static struct cfx F;
static char cfg_sensor[400], cfg_dash[400];

static void write_config(const char *path, const char *id)
{
	char text[2048];
	/* auth none: a plain broker refuses the MQTT 5 Authentication Method. */
	snprintf(text, sizeof(text),
	         "# client config for %s\n"
	         "identity %s/%s.key\ncredential %s/%s.cred\nkeyring %s\nstate_dir %s/%s-state\n"
	         "client_id %s\nauth none\n",
	         id, F.dir, id, F.dir, id, F.keyring, F.dir, id, id);
	ck_assert_int_eq(test_write_file(path, text, 0600), 0);
}

static void setup(void)
{
	cfx_setup(&F);
	cfx_device(&F, "sensor-1");
	cfx_device(&F, "dash-1");
	snprintf(cfg_sensor, sizeof(cfg_sensor), "%s/sensor.conf", F.dir);
	snprintf(cfg_dash, sizeof(cfg_dash), "%s/dash.conf", F.dir);
	write_config(cfg_sensor, "sensor-1");
	write_config(cfg_dash, "dash-1");
}

static void teardown(void)
{
	cfx_teardown(&F);
}

static void example_path(char *out, size_t cap, const char *name)
{
	snprintf(out, cap, "%s/examples/%s", VEIL_BINARY_DIR, name);
}

/* <dir>/<tag>.<ext>: where a program's output goes. */
static void out_path(char *out, size_t cap, const char *tag, const char *ext)
{
	ck_assert_int_lt(snprintf(out, cap, "%s/%s.%s", F.dir, tag, ext), (int)cap);
}

/* Start argv with stdout/stderr to <dir>/<tag>.out/.err and stdin from in (or /dev/null). */
static pid_t spawn(char *const argv[], const char *tag, const char *in)
{
	char out[400], err[400];
	out_path(out, sizeof(out), tag, "out");
	out_path(err, sizeof(err), tag, "err");
	struct test_spawn o = { .in = in, .out = out, .err = err };
	return test_spawn((const char *const *)argv, &o);
}

static int run(char *const argv[], const char *tag, const char *in)
{
	return test_wait_exit(spawn(argv, tag, in), 20000);
}

/* What the program wrote to <tag>.<ext> (static buffer, until the next call). */
static char *slurp(const char *tag, const char *ext)
{
	static char buf[8192];
	char path[400];
	out_path(path, sizeof(path), tag, ext);
	size_t len;
	char *text = test_file_read(path, &len);
	snprintf(buf, sizeof(buf), "%s", text ? text : "");
	free(text);
	return buf;
}

static bool wait_for(const char *tag, const char *ext, const char *needle, int base_ms)
{
	char path[400];
	out_path(path, sizeof(path), tag, ext);
	return test_file_wait(path, needle, base_ms);
}

START_TEST(test_sensor_to_dashboard)
{
	char sensor[400], dashboard[400], plain[400];
	example_path(sensor, sizeof(sensor), "sensor");
	example_path(dashboard, sizeof(dashboard), "dashboard");
	example_path(plain, sizeof(plain), "plain_sensor");
	char *dash_argv[] = { dashboard, F.uri, cfg_dash, (char *)"sensors/#", (char *)"3", NULL };
	pid_t d = spawn(dash_argv, "dash", NULL);
	ck_assert(wait_for("dash", "err", "subscribed", 10000));

	/* A plain Paho app publishing in clear on a protected topic is refused. */
	char *plain_argv[] = { plain, F.uri, (char *)"plain-1", (char *)"sensors/room1/temp", (char *)"2", NULL };
	ck_assert_int_eq(run(plain_argv, "plain", NULL), 0);
	ck_assert(wait_for("dash", "err", "refused message on sensors/room1/temp: not-envelope", 5000));

	char *sensor_argv[] = { sensor, F.uri, cfg_sensor, (char *)"sensors/room1/temp", (char *)"3", NULL };
	ck_assert_int_eq(run(sensor_argv, "sensor", NULL), 0);
	ck_assert_int_eq(test_wait_exit(d, 10000), 0);
	char *out = slurp("dash", "out");
	ck_assert_msg(strstr(out, "sensors/room1/temp ") && strstr(out, " reading 0: 20.0 C\n") &&
	                      strstr(out, " reading 2: 21.0 C\n"),
	              "dashboard printed: %s", out);
	ck_assert(!strstr(out, "plain reading"));
	ck_assert(strstr(slurp("dash", "err"), "delivered 3, refused 2"));
}
END_TEST

START_TEST(test_cli_pub_sub)
{
	const char *cli = getenv("VEIL_CLI");
	ck_assert_msg(cli != NULL, "VEIL_CLI not set (run through ctest)");
	char port[16];
	snprintf(port, sizeof(port), "%d", F.broker.port);
	char *sub_argv[] = { (char *)cli, (char *)"sub", (char *)"-h", (char *)"127.0.0.1", (char *)"-p", port,
		             (char *)"--config", cfg_dash, (char *)"-t", (char *)"sensors/#", (char *)"-t",
		             (char *)"public/#", (char *)"-q", (char *)"1", (char *)"-v", (char *)"-C", (char *)"4",
		             (char *)"-W", (char *)"20", NULL };
	/* `veil sub` prints no readiness line: the broker's log shows its two
	 * SUBACKs (one SUBSCRIBE per -t) once both subscriptions are active. */
	pid_t s = spawn(sub_argv, "sub", NULL);
	ck_assert_msg(test_file_wait_count(F.broker.log, "Sending SUBACK to dash-1\n", 2, 10000),
	              "veil sub never subscribed");

	char *pub_argv[] = { (char *)cli, (char *)"pub", (char *)"-h", (char *)"127.0.0.1", (char *)"-p", port,
		             (char *)"--config", cfg_sensor, (char *)"-t", (char *)"sensors/cli", (char *)"-q",
		             (char *)"1", (char *)"-m", (char *)"hello from the cli", NULL };
	ck_assert_int_eq(run(pub_argv, "pub1", NULL), 0);
	/* -l: one message per stdin line. */
	char lines[400];
	snprintf(lines, sizeof(lines), "%s/lines.txt", F.dir);
	ck_assert_int_eq(test_write_file(lines, "line one\nline two\n", 0600), 0);
	char *publ_argv[] = { (char *)cli, (char *)"pub", (char *)"-h", (char *)"127.0.0.1", (char *)"-p", port,
		              (char *)"--config", cfg_sensor, (char *)"-t", (char *)"sensors/lines", (char *)"-l",
		              NULL };
	ck_assert_int_eq(run(publ_argv, "pub2", lines), 0);
	/* No keyring entry: refused, nothing sent, exit status 1. */
	char *nop_argv[] = { (char *)cli, (char *)"pub", (char *)"-h", (char *)"127.0.0.1", (char *)"-p", port,
		             (char *)"--config", cfg_sensor, (char *)"-t", (char *)"other/x", (char *)"-m",
		             (char *)"nope", NULL };
	ck_assert_int_eq(run(nop_argv, "pub3", NULL), 1);
	ck_assert_msg(strstr(slurp("pub3", "err"), "(no-policy)"), "pub stderr: %s", slurp("pub3", "err"));
	/* Plaintext injected by a plain client: refused on stderr, not printed. */
	struct cfx_plain mallory;
	cfx_plain_connect(&F, &mallory, "mallory", NULL);
	cfx_plain_publish(&mallory, "sensors/cli", "forged", 6);
	cfx_plain_close(&mallory);
	/* Plaintext policy topic: in clear only when asked (--allow-plaintext). */
	char *pubp_argv[] = { (char *)cli, (char *)"pub", (char *)"-h", (char *)"127.0.0.1", (char *)"-p", port,
		              (char *)"--config", cfg_sensor, (char *)"-t", (char *)"public/news", (char *)"-m",
		              (char *)"open news", (char *)"--allow-plaintext", NULL };
	ck_assert_int_eq(run(pubp_argv, "pub4", NULL), 0);

	ck_assert_int_eq(test_wait_exit(s, 20000), 0);
	char *out = slurp("sub", "out");
	ck_assert_msg(strstr(out, "sensors/cli hello from the cli\n") && strstr(out, "sensors/lines line one\n") &&
	                      strstr(out, "sensors/lines line two\n") &&
	                      strstr(out, "public/news [plaintext] open news\n"),
	              "sub printed: %s", out);
	ck_assert(!strstr(out, "forged"));
	ck_assert_msg(strstr(slurp("sub", "err"), "refused message on 'sensors/cli': not-envelope"), "sub stderr: %s",
	              slurp("sub", "err"));

	/* --help works; bad usage is status 2. */
	char *help_argv[] = { (char *)cli, (char *)"sub", (char *)"--help", NULL };
	ck_assert_int_eq(run(help_argv, "help", NULL), 0);
	ck_assert(strstr(slurp("help", "out"), "-C COUNT"));
	char *bad_argv[] = { (char *)cli, (char *)"pub", (char *)"-t", (char *)"x", NULL };
	ck_assert_int_eq(run(bad_argv, "bad", NULL), 2);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("client_examples");
	TCase *tc = veil_tcase("programs", 10);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_sensor_to_dashboard);
	tcase_add_test(tc, test_cli_pub_sub);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return veil_check_run(suite());
}
