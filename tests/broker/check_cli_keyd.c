/*
 * `veil pub` and `veil sub` with the key service and no keyring file
 * (tools/cli_mqtt.c: --authorities, --key-service, or the client config
 * file libveil reads), against Mosquitto with the Veil plugin and veil-keyd
 * (tests/support/keys_fixture.h): a fresh device publishes right after its
 * connect and a dashboard's `veil sub` prints it; `-n -r` clears a retained
 * message on a key service topic; with keyd down `veil pub` says that no
 * bundle came and why nothing was published (exit 1).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "veil/veil.h"

#include "files.h"
#include "keys_fixture.h"
#include "proc.h"
#include "timing.h"

static char out_path[400], err_path[400];

/* `veil ARGS...` (-h/-p of the fixture's broker first), output in
 * <dir>/<tag>.out/.err. */
static pid_t cli_start(const char *tag, const char *const *args)
{
	const char *argv[32];
	char port[16];
	snprintf(port, sizeof(port), "%d", kfx_env.broker.port);
	size_t n = 0;
	argv[n++] = getenv("VEIL_CLI");
	ck_assert_msg(argv[0] != NULL, "VEIL_CLI not set (run through ctest)");
	argv[n++] = args[0]; /* the command */
	argv[n++] = "-h";
	argv[n++] = "127.0.0.1";
	argv[n++] = "-p";
	argv[n++] = port;
	for (size_t i = 1; args[i] && n < 31; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	snprintf(out_path, sizeof(out_path), "%s/%s.out", kfx_env.dir, tag);
	snprintf(err_path, sizeof(err_path), "%s/%s.err", kfx_env.dir, tag);
	struct test_spawn o = { .out = out_path, .err = err_path };
	return test_spawn(argv, &o);
}

static int cli_run(const char *tag, const char *const *args)
{
	int st = test_wait_exit(cli_start(tag, args), 40000);
	if (st != 0)
		test_file_dump(tag, err_path);
	return st;
}

static char *text(const char *tag, const char *ext)
{
	char p[400];
	snprintf(p, sizeof(p), "%s/%s.%s", kfx_env.dir, tag, ext);
	size_t n = 0;
	char *t = test_file_read(p, &n);
	ck_assert_ptr_nonnull(t);
	return t;
}

START_TEST(pub_and_sub_without_keyring)
{
	kfx_keyd_start();
	char dconf[400], sconf[400];
	kfx_device("dash-c", "dashboard", dconf, sizeof(dconf));
	kfx_device("fe-cli", NULL, sconf, sizeof(sconf));
	/* A dashboard through its config file (no keyring: the key service). */
	const char *sub[] = { "sub", "--config", dconf, "-t", "factory/#", "-C", "3", "-W", "40", "-v", NULL };
	pid_t rd = cli_start("sub", sub);
	/* Its own subscription comes after the key service's (its connect
	 * returned once its keys were there). */
	char needle[64];
	snprintf(needle, sizeof(needle), "Sending SUBACK to dash-c\n");
	ck_assert(test_file_wait_count(kfx_env.broker.log, needle, 2, 20000));
	/* A fresh device with the options on the command line, right after connect. */
	char key[400], cred[400], state[400];
	snprintf(key, sizeof(key), "%s/fe-cli.key", kfx_env.dir);
	snprintf(cred, sizeof(cred), "%s/fe-cli.cred", kfx_env.dir);
	snprintf(state, sizeof(state), "%s/fe-cli.cli-state", kfx_env.dir);
	const char *p1[] = { "pub", "--identity", key, "--credential", cred, "--authorities", kfx_env.authority_pub,
		             "--state-dir", state, "--key-service", "on", "-t", "factory/fe-cli/a", "-q", "1", "-m",
		             "first", NULL };
	ck_assert_int_eq(cli_run("p1", p1), 0);
	/* The same device through its config file; then a retained value
	 * and its clearing (zero-length retained, unsealed). */
	const char *p2[] = { "pub", "--config", sconf, "-t", "factory/fe-cli/b", "-q", "1", "-m", "second", NULL };
	ck_assert_int_eq(cli_run("p2", p2), 0);
	const char *p3[] = { "pub", "--config", sconf, "-t", "factory/fe-cli/c", "-q", "1", "-r", "-m", "kept", NULL };
	ck_assert_int_eq(cli_run("p3", p3), 0);
	ck_assert_int_eq(test_wait_exit(rd, 20000), 0);
	char *o = text("sub", "out");
	ck_assert_str_eq(o, "factory/fe-cli/a first\nfactory/fe-cli/b second\nfactory/fe-cli/c kept\n");
	free(o);
	const char *p4[] = { "pub", "--config", sconf, "-t", "factory/fe-cli/c", "-q", "1", "-r", "-n", NULL };
	ck_assert_int_eq(cli_run("p4", p4), 0);
	/* A new reader gets no retained value: the first it prints is fresh. */
	const char *sub2[] = { "sub", "--config", dconf, "-t", "factory/fe-cli/c", "-C", "1", "-W", "40", "-F", "%r:%p",
		               NULL };
	rd = cli_start("sub2", sub2);
	ck_assert(test_file_wait_count(kfx_env.broker.log, needle, 4, 20000));
	const char *p5[] = { "pub", "--config", sconf, "-t", "factory/fe-cli/c", "-q", "1", "-m", "fresh", NULL };
	ck_assert_int_eq(cli_run("p5", p5), 0);
	ck_assert_int_eq(test_wait_exit(rd, 20000), 0);
	o = text("sub2", "out");
	ck_assert_str_eq(o, "0:fresh\n");
	free(o);
}
END_TEST

START_TEST(pub_with_keyd_down_says_why)
{
	char sconf[400];
	kfx_device("fe-cli", NULL, sconf, sizeof(sconf));
	const char *p[] = { "pub", "--config", sconf, "-t", "factory/fe-cli/a", "-q", "1", "-m", "m", NULL };
	int st = test_wait_exit(cli_start("down", p), 60000);
	char *e = text("down", "err");
	ck_assert_msg(st == 1, "exit %d: %s", st, e);
	ck_assert_msg(strstr(e, "veil pub: connected, but no bundle came from the key service within 10 s") &&
	                  strstr(e, "veil pub: publish on 'factory/fe-cli/a' REFUSED: no key from the key service yet") &&
	                  strstr(e, "(no-key)"),
	              "stderr: %s", e);
	free(e);
}
END_TEST

static Suite *suite(void)
{
	Suite *su = suite_create("cli_keyd");
	TCase *tc = veil_tcase("cli", 60);
	tcase_add_checked_fixture(tc, kfx_setup, kfx_teardown);
	tcase_add_test(tc, pub_and_sub_without_keyring);
	tcase_add_test(tc, pub_with_keyd_down_says_why);
	suite_add_tcase(su, tc);
	return su;
}

int main(int argc, char **argv)
{
	return kfx_run(argc, argv, suite);
}
