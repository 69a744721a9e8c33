/*
 * Issue 14: "a test runs today's `veil` binary and the new one against one
 * broker in both modes". Today's binary is the `veil` CLI of the last
 * release before token version 2: commit 070a1aa (version 1.0.0, the
 * parent of ec6216b, which added version 2 tokens; its CLI has no
 * --audience and sends only version 1 tokens). This test builds that CLI
 * from the repository's own history (git archive of the commit, configure,
 * build only the `veil` target), then against a real Mosquitto with
 * mosquitto_veil.so and plugin_opt_audience plant-a:
 *   plugin_opt_token_v1 allow: the release's logins (MQTT 5 and 3.1.1) are
 *     accepted, each with the token-v1 warning line and its count;
 *   plugin_opt_token_v1 refuse: they are refused (token-v1-refused);
 * and in both modes the binary built here, with --audience plant-a, logs
 * in with a version 2 token. A clone without that commit (a shallow one)
 * fails the test, saying so: it is never skipped.
 */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "check_run.h"
#include "cli_fixture.h"
#include "files.h"
#include "proc.h"
#include "timing.h"

#define RELEASE_COMMIT "070a1aaa62dfabf2a3448b4d4daaa12bca044f2d"

static struct clifx F;
static char build_dir[256];
static char release_cli[400];

/* Run argv with its output in <build_dir>/<tag>.log; its exit status
 * (printed with the log when it is not 0). */
static int step(const char *tag, const char *const argv[], int base_ms)
{
	char log[400];
	snprintf(log, sizeof(log), "%s/%s.log", build_dir, tag);
	struct test_spawn o = { .out = log };
	int st = test_wait_exit(test_spawn(argv, &o), base_ms);
	if (st != 0)
		test_file_dump(tag, log);
	return st;
}

/* The release's veil CLI, built in a fresh temp dir: its path in release_cli. */
static void build_release_cli(void)
{
	uint64_t t0 = veil_test_now_ms();
	ck_assert_int_eq(test_mkdtemp(build_dir, sizeof(build_dir)), 0);
	char src[300], bin[300];
	snprintf(src, sizeof(src), "%s/src", build_dir);
	snprintf(bin, sizeof(bin), "%s/build", build_dir);
	const char *have[] = { "git", "-C", VEIL_SOURCE_DIR, "cat-file", "-e", RELEASE_COMMIT "^{commit}", NULL };
	ck_assert_msg(step("git-cat-file", have, 30000) == 0,
	              "the release before token v2 (commit " RELEASE_COMMIT ") is not in the history of " VEIL_SOURCE_DIR
	              ": this test needs a full clone (git fetch --unshallow)");
	const char *archive[] = { "sh", "-c", "mkdir -p \"$3\" && git -C \"$1\" archive \"$2\" | tar -x -C \"$3\"", "sh",
		                  VEIL_SOURCE_DIR, RELEASE_COMMIT, src, NULL };
	ck_assert_msg(step("git-archive", archive, 60000) == 0, "git archive of the release failed");
	const char *configure[] = { "cmake", "-S", src, "-B", bin, "-DCMAKE_BUILD_TYPE=RelWithDebInfo",
		                    "-DVEIL_BUILD_TESTS=OFF", "-DVEIL_BUILD_BENCH=OFF", NULL };
	ck_assert_msg(step("configure", configure, 120000) == 0, "configuring the release failed");
	const char *build[] = { "cmake", "--build", bin, "--target", "veil", "-j2", NULL };
	ck_assert_msg(step("build", build, 300000) == 0, "building the release's veil failed");
	snprintf(release_cli, sizeof(release_cli), "%s/tools/veil", bin);
	fprintf(stderr, "FIGURE release_cli_build commit=%.7s s=%.1f\n", RELEASE_COMMIT,
	        (double)(veil_test_now_ms() - t0) / 1000.0);
}

#define ERR(tag) clifx_text(&F, tag, "err")

/* veil pub as sensor-1 on its own topic at QoS 1 with the binary bin (exit
 * 0 = CONNACK and PUBACK accepted, 1 = refused); args after the message. */
#define EXPECT_PUB(bin, want, tag, ...)                                                                            \
	do {                                                                                                       \
		F.cli = (bin);                                                                                     \
		int st_ = clifx_run(&F, tag, NULL, "pub", "sensor-1", "-t", "sensors/sensor-1/t", "-q", "1", "-m", \
		                    "21.5", ##__VA_ARGS__, NULL);                                                  \
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

START_TEST(release_and_new_binary_in_both_modes)
{
	build_release_cli();
	const char *new_cli = NULL;

	/* allow (the default): the release logs in, warned and counted. */
	clifx_setup(&F, NULL, "plugin_opt_audience plant-a\n");
	new_cli = F.cli;
	expect_log("audience=plant-a token_v1=allow");
	/* It is the release: it knows no audience. */
	EXPECT_PUB(release_cli, 2, "release-audience", "--audience", "plant-a");
	ck_assert_msg(strstr(ERR("release-audience"), "--audience") != NULL, "%s", ERR("release-audience"));
	EXPECT_PUB(release_cli, 0, "release-v5");
	expect_log("veil: auth | token-v1 | client=sensor-1 addr=127.0.0.1 logins=1 ");
	EXPECT_PUB(release_cli, 0, "release-311", "-V", "311");
	expect_log("veil: auth | token-v1 | client=sensor-1 addr=127.0.0.1 logins=2 ");
	ck_assert_int_eq(count_log("method=credential roles=- "), 2);
	ck_assert_int_eq(count_log("token=v1"), 2);
	/* The new binary with the deployment's name: version 2, no warning. */
	EXPECT_PUB(new_cli, 0, "new-v5", "--audience", "plant-a");
	EXPECT_PUB(new_cli, 0, "new-311", "--audience", "plant-a", "-V", "311");
	ck_assert(test_file_wait_count(F.c.broker.log, "token=v2", 2, 5000));
	ck_assert_int_eq(count_log("veil: auth | token-v1 |"), 2);
	ck_assert_int_eq(count_log("veil: auth | refuse |"), 0);
	clifx_teardown(&F);

	/* refuse: the release is refused, the new binary is not. */
	clifx_setup(&F, NULL, "plugin_opt_audience plant-a\nplugin_opt_token_v1 refuse\n");
	expect_log("audience=plant-a token_v1=refuse");
	EXPECT_PUB(release_cli, 1, "release-v5");
	expect_log("veil: auth | refuse | client=sensor-1 addr=127.0.0.1 method=credential reason=token-v1-refused "
	           "token=v1 audience=-");
	EXPECT_PUB(release_cli, 1, "release-311", "-V", "311");
	ck_assert(test_file_wait_count(F.c.broker.log, "reason=token-v1-refused", 2, 5000));
	EXPECT_PUB(new_cli, 0, "new-v5", "--audience", "plant-a");
	EXPECT_PUB(new_cli, 0, "new-311", "--audience", "plant-a", "-V", "311");
	ck_assert(test_file_wait_count(F.c.broker.log, "token=v2", 2, 5000));
	ck_assert_int_eq(count_log("veil: auth | accept |"), 2);
	ck_assert_int_eq(count_log("veil: auth | token-v1 |"), 0);
	F.cli = new_cli;
	clifx_teardown(&F);
	ck_assert_int_eq(test_rmtree(build_dir), 0);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("plugin_token_v1_release");
	/* Building the release's CLI takes most of it (about 45 s on a loaded
	 * 2-core machine: configure, then the veil target at -j2). */
	TCase *tc = veil_tcase("release", 300);
	tcase_add_test(tc, release_and_new_binary_in_both_modes);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return veil_check_run(suite());
}
