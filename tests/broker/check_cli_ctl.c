/*
 * `veil ctl` (tools/cmd_ctl.c) as an operator runs it, against a real broker
 * with the plugin (support/ops_fixture.c): a revocation kicks the connected
 * device within the usual bound and survives a broker restart; password
 * users from standard input; --json; the exit status and the sentence for
 * an error answer, a refused command (no admin role), no answer at all
 * (a broker without the plugin), and usage errors.
 */
#include <check.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "veil/veil.h"
#include "broker.h"
#include "check_run.h"
#include "files.h"
#include "ops_fixture.h"
#include "proc.h"
#include "timing.h"

#define MAX_ARGS 32

static struct opsfx F;

static const char *cli(void)
{
	const char *c = getenv("VEIL_CLI");
	ck_assert_msg(c && *c, "VEIL_CLI not set (run through ctest)");
	return c;
}

static void out_path(const char *tag, const char *ext, char *out, size_t cap)
{
	ck_assert_int_lt(snprintf(out, cap, "%s/%s.%s", F.c.dir, tag, ext), (int)cap);
}

/* `veil ctl -h 127.0.0.1 -p PORT [--identity <dev>.key --credential <dev>.cred] ARGS...`;
 * stdout and stderr in <dir>/<tag>.out/.err; the exit status. */
static int ctl(const char *tag, const char *in, const char *dev, ...)
{
	const char *argv[MAX_ARGS];
	char key[512], cred[512], out[512], err[512];
	size_t n = 0;
	argv[n++] = cli();
	argv[n++] = "ctl";
	argv[n++] = "-h";
	argv[n++] = "127.0.0.1";
	argv[n++] = "-p";
	argv[n++] = F.port;
	if (dev) {
		snprintf(key, sizeof(key), "%s/%s.key", F.c.dir, dev);
		snprintf(cred, sizeof(cred), "%s/%s.cred", F.c.dir, dev);
		argv[n++] = "--identity";
		argv[n++] = key;
		argv[n++] = "--credential";
		argv[n++] = cred;
	}
	va_list ap;
	va_start(ap, dev);
	const char *a;
	while ((a = va_arg(ap, const char *)) && n < MAX_ARGS - 1)
		argv[n++] = a;
	va_end(ap);
	argv[n] = NULL;
	out_path(tag, "out", out, sizeof(out));
	out_path(tag, "err", err, sizeof(err));
	struct test_spawn o = { .in = in, .out = out, .err = err };
	return test_wait_exit(test_spawn(argv, &o), 20000);
}

static const char *text(const char *tag, const char *ext)
{
	static char buf[4][8192];
	static int k;
	char path[512];
	out_path(tag, ext, path, sizeof(path));
	size_t len = 0;
	char *t = test_file_read(path, &len);
	char *b = buf[k++ % 4];
	snprintf(b, sizeof(buf[0]), "%s", t ? t : "");
	free(t);
	return b;
}

static void setup(void)
{
	opsfx_setup(&F, NULL);
}

static void teardown(void)
{
	opsfx_teardown(&F);
}

START_TEST(revocation_kicks_and_survives_restart)
{
	struct opsfx_session dev;
	opsfx_open(&F, &dev, "dev-1", false);
	uint64_t t0 = veil_test_now_ms();
	ck_assert_int_eq(ctl("revoke", NULL, "admin-1", "revokeClient", "dev-1", NULL), 0);
	ck_assert_msg(opsfx_gone(&dev, 2000), "dev-1 not kicked: %s", text("revoke", "err"));
	/* veil ctl returns once the broker answered; the kick follows at the next TICK. */
	printf("FIGURE ctl_revoke_to_kick ms=%llu (the CLI's connect and login included)\n",
	       (unsigned long long)(veil_test_now_ms() - t0));
	ck_assert_str_eq(text("revoke", "out"), "revoked dev-1 (1 connected client(s) kicked)\n");
	ck_assert(test_broker_log_wait(&F.c.broker, "veil: auth | kick | client=dev-1 reason=revoked-client", 5000));
	opsfx_close(&dev);

	ck_assert_int_ge(test_broker_stop(&F.c.broker), 0);
	ck_assert_int_eq(test_broker_restart(&F.c.broker), 0);
	ck_assert_int_eq(opsfx_login_rc(&F, "dev-1"), VEIL_ERR_AUTH);
	ck_assert(test_broker_log_wait(&F.c.broker, "client=dev-1 addr=127.0.0.1 method=credential reason=revoked-client",
	                               5000));
	ck_assert_int_eq(ctl("list", NULL, "admin-1", "listRevocations", NULL), 0);
	ck_assert_str_eq(text("list", "out"), "client dev-1   # runtime\n");
	/* Undone through veil ctl: the device logs in again. */
	ck_assert_int_eq(ctl("undo", NULL, "admin-1", "removeRevocation", "client", "dev-1", NULL), 0);
	ck_assert_int_eq(opsfx_login_rc(&F, "dev-1"), VEIL_OK);
}
END_TEST

START_TEST(credential_file_and_users)
{
	/* revokeCredential takes the credential file itself. */
	char cred[512];
	snprintf(cred, sizeof(cred), "%s/dev-2.cred", F.c.dir);
	ck_assert_int_eq(ctl("rc", NULL, "admin-1", "revokeCredential", cred, NULL), 0);
	ck_assert_int_eq(opsfx_login_rc(&F, "dev-2"), VEIL_ERR_AUTH);
	ck_assert_int_eq(ctl("rc2", NULL, "admin-1", "revokeCredential", "not-a-file", NULL), 2);
	ck_assert_ptr_nonnull(strstr(text("rc2", "err"), "neither 32 hex digits nor a credential file"));

	/* A password from standard input's first line. */
	char pw[512];
	out_path("pw", "in", pw, sizeof(pw));
	ck_assert_int_eq(test_write_file(pw, "through-stdin\nignored\n", 0600), 0);
	ck_assert_int_eq(ctl("add", pw, "admin-1", "addPasswordUser", "bob", NULL), 0);
	ck_assert_str_eq(text("add", "out"), "added user bob\n");
	ck_assert_int_eq(opsfx_password_rc(&F, "bob", "through-stdin"), VEIL_OK);
	ck_assert(!test_file_has(F.c.broker.log, "through-stdin"));
	ck_assert_int_eq(ctl("users", NULL, "admin-1", "--json", "listPasswordUsers", NULL), 0);
	cJSON *t = cJSON_Parse(text("users", "out"));
	ck_assert_ptr_nonnull(t);
	const cJSON *r = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(t, "responses"), 0);
	ck_assert_str_eq(opsfx_str(r, "command"), "listPasswordUsers");
	const cJSON *users = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(r, "data"), "users");
	ck_assert_int_eq(cJSON_GetArraySize(users), 2);
	cJSON_Delete(t);
	ck_assert_int_eq(ctl("rm", NULL, "admin-1", "removePasswordUser", "bob", NULL), 0);
	ck_assert_int_eq(opsfx_password_rc(&F, "bob", "through-stdin"), VEIL_ERR_AUTH);
	ck_assert_int_eq(ctl("counters", NULL, "admin-1", "getCounters", NULL), 0);
	ck_assert_ptr_nonnull(strstr(text("counters", "out"), "\ncontrol_commands/addPasswordUser 1\n"));
	ck_assert_ptr_nonnull(strstr(text("counters", "out"), "\nlogins_refused/revoked-credential 1\n"));
}
END_TEST

START_TEST(errors_and_exit_status)
{
	/* The broker answers an error: exit 1, the error on stderr. */
	ck_assert_int_eq(ctl("kick", NULL, "admin-1", "kickClient", "nobody", NULL), 1);
	ck_assert_str_eq(text("kick", "out"), "");
	ck_assert_str_eq(text("kick", "err"), "veil ctl: kickClient: client not connected (or not logged in by this "
	                                      "plugin) (not-found)\n");
	/* No admin role: the broker refuses; nothing changed. */
	ck_assert_int_eq(ctl("nope", NULL, "dev-1", "revokeClient", "dev-2", NULL), 1);
	ck_assert_ptr_nonnull(strstr(text("nope", "err"), "0x87"));
	ck_assert_ptr_nonnull(strstr(text("nope", "err"), "admin role"));
	ck_assert_int_eq(opsfx_login_rc(&F, "dev-2"), VEIL_OK);
	/* Usage errors: exit 2. */
	ck_assert_int_eq(ctl("u1", NULL, "admin-1", "selfDestruct", NULL), 2);
	ck_assert_ptr_nonnull(strstr(text("u1", "err"), "unknown command 'selfDestruct'"));
	ck_assert_int_eq(ctl("u2", NULL, "admin-1", "kickClient", NULL), 2);
	ck_assert_int_eq(ctl("u3", NULL, "admin-1", "reload", "--offset", "3", NULL), 2);
	ck_assert_int_eq(ctl("u4", NULL, "admin-1", NULL), 2);
	/* A broker without the plugin never answers: exit 1 after --timeout. */
	struct test_broker plain;
	ck_assert_int_eq(test_broker_start(&plain, "allow_anonymous true\n"), 0);
	char port[16];
	snprintf(port, sizeof(port), "%d", plain.port);
	snprintf(F.port, sizeof(F.port), "%s", port);
	uint64_t t0 = veil_test_now_ms();
	ck_assert_int_eq(ctl("silent", NULL, NULL, "--auth", "none", "-i", "auto-ctl", "--timeout", "1", "reload", NULL), 1);
	ck_assert_uint_ge(veil_test_now_ms() - t0, 1000);
	ck_assert_ptr_nonnull(strstr(text("silent", "err"), "no response from the broker within 1 s"));
	snprintf(F.port, sizeof(F.port), "%d", F.c.broker.port);
	test_broker_stop(&plain);
	test_broker_cleanup(&plain);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("cli_ctl");
	TCase *tc = veil_tcase("ctl", 60);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, revocation_kicks_and_survives_restart);
	tcase_add_test(tc, credential_file_and_users);
	tcase_add_test(tc, errors_and_exit_status);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return veil_check_run(suite());
}
