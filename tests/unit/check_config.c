/*
 * Tests for client-shim/config.c, the client config file shared by libveil
 * and libveil_preload.so: a good file, defaults, relative paths, and every
 * refusal with its "path:line:" prefix checked.
 *
 * config.c is compiled in here directly: its functions are internal (hidden)
 * in both libraries that use it, so no library exports them.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../client-shim/config.c"

#include "broker.h"
#include "check_run.h"
#include "timing.h"

static char dir[256];
static char path[400];

static void setup(void)
{
	ck_assert_int_eq(test_mkdtemp(dir, sizeof(dir)), 0);
	snprintf(path, sizeof(path), "%s/client.conf", dir);
}

static void teardown(void)
{
	unlink(path);
	rmdir(dir);
}

static int load_text(const char *text, struct veil_config *c, char *err, size_t errlen)
{
	ck_assert_int_eq(test_write_file(path, text, 0644), 0);
	return veil_config_load(path, c, err, errlen);
}

/* Expect VEIL_ERR_PARSE with "path:line: " and a reason containing needle. */
static void expect_line_error(const char *text, unsigned line, const char *needle)
{
	struct veil_config c;
	char err[512] = "";
	int rc = load_text(text, &c, err, sizeof(err));
	ck_assert_int_eq(rc, VEIL_ERR_PARSE);
	char prefix[480];
	snprintf(prefix, sizeof(prefix), "%s:%u: ", path, line);
	ck_assert_msg(strncmp(err, prefix, strlen(prefix)) == 0, "want prefix '%s', got '%s'", prefix, err);
	ck_assert_msg(strstr(err, needle) != NULL, "want '%s' in '%s'", needle, err);
	veil_config_free(&c);
	ck_assert_ptr_null(c.path);
}

#define BASE "keyring /k/ring\nidentity /k/id\ncredential /k/cred\n"

START_TEST(good_file)
{
	struct veil_config c;
	char err[512] = "";
	const char *text = "# device config\n"
	                   "\n"
	                   "  identity   /etc/veil/dev.id  \r\n"
	                   "credential /etc/veil/dev.cred\n"
	                   "\t# indented comment\n"
	                   "keyring /etc/veil/keys dir/ring#1\n"
	                   "state_dir state\n"
	                   "client_id sensor-17\n"
	                   "audience factory-eu\n"
	                   "auth credential\n"
	                   "sign always\n"
	                   "log none"; /* no final newline */
	ck_assert_msg(load_text(text, &c, err, sizeof(err)) == VEIL_OK, "%s", err);
	ck_assert_str_eq(c.identity, "/etc/veil/dev.id");
	ck_assert_str_eq(c.credential, "/etc/veil/dev.cred");
	ck_assert_str_eq(c.keyring, "/etc/veil/keys dir/ring#1");
	char want[400];
	snprintf(want, sizeof(want), "%s/state", dir);
	ck_assert_str_eq(c.state_dir, want);
	ck_assert_str_eq(c.client_id, "sensor-17");
	ck_assert_str_eq(c.audience, "factory-eu");
	ck_assert_int_eq(c.auth, VEIL_CONFIG_AUTH_CREDENTIAL);
	ck_assert_int_eq(c.sign, VEIL_CONFIG_SIGN_ALWAYS);
	ck_assert_int_eq(c.log, VEIL_CONFIG_LOG_NONE);
	ck_assert_str_eq(c.path, path);
	veil_config_free(&c);
	ck_assert_ptr_null(c.keyring);
	veil_config_free(&c); /* twice is harmless */
}
END_TEST

/* Trailing comments: Veil's one rule (PROTOCOL.md section 2). A word that
 * begins with '#' starts a comment, a '#' inside a word is part of it. */
START_TEST(trailing_comments)
{
	struct veil_config c;
	char err[512] = "";
	const char *text = "keyring /etc/veil/keys dir/ring#1   # the main keyring\n"
	                   "identity /k/my #2 id\n" /* "#2" begins a word: the path is "/k/my" */
	                   "credential /k/cred\t#\n"
	                   "auth credential # tokens\n"
	                   "client_id sensor-1\t#no blank after the hash\n"
	                   "log none #\n";
	ck_assert_msg(load_text(text, &c, err, sizeof(err)) == VEIL_OK, "%s", err);
	ck_assert_str_eq(c.keyring, "/etc/veil/keys dir/ring#1");
	ck_assert_str_eq(c.identity, "/k/my");
	ck_assert_str_eq(c.credential, "/k/cred");
	ck_assert_int_eq(c.auth, VEIL_CONFIG_AUTH_CREDENTIAL);
	ck_assert_str_eq(c.client_id, "sensor-1");
	ck_assert_int_eq(c.log, VEIL_CONFIG_LOG_NONE);
	veil_config_free(&c);
	/* A comment where the value should be leaves the key without one. */
	expect_line_error(BASE "state_dir # later\n", 4, "missing value for 'state_dir'");
	expect_line_error(BASE "auth none#x\n", 4, "auth must be credential, password or none");
}
END_TEST

START_TEST(defaults_and_modes)
{
	struct veil_config c;
	char err[512] = "";
	ck_assert_msg(load_text(BASE, &c, err, sizeof(err)) == VEIL_OK, "%s", err);
	ck_assert_int_eq(c.auth, VEIL_CONFIG_AUTH_CREDENTIAL);
	ck_assert_int_eq(c.sign, VEIL_CONFIG_SIGN_POLICY);
	ck_assert_int_eq(c.log, VEIL_CONFIG_LOG_STDERR);
	ck_assert_ptr_null(c.client_id);
	ck_assert_ptr_null(c.audience); /* version 1 tokens */
	ck_assert_ptr_null(c.state_dir);
	veil_config_free(&c);

	/* Legacy password login and anonymous receivers need no identity. */
	ck_assert_msg(load_text("keyring r\nauth password\n", &c, err, sizeof(err)) == VEIL_OK, "%s", err);
	ck_assert_int_eq(c.auth, VEIL_CONFIG_AUTH_PASSWORD);
	ck_assert_ptr_null(c.identity);
	veil_config_free(&c);
	ck_assert_msg(load_text("keyring r\nauth none\nsign policy\nlog stderr\n", &c, err, sizeof(err)) == VEIL_OK,
	              "%s", err);
	ck_assert_int_eq(c.auth, VEIL_CONFIG_AUTH_NONE);
	veil_config_free(&c);
	ck_assert_str_eq(veil_config_auth_name(VEIL_CONFIG_AUTH_PASSWORD), "password");
}
END_TEST

START_TEST(unknown_key)
{
	expect_line_error(BASE "\n# x\nkeyfile /a\n", 6, "unknown key 'keyfile'");
	expect_line_error("Keyring /k\n", 1, "unknown key 'Keyring'");
}
END_TEST

START_TEST(missing_value)
{
	expect_line_error(BASE "state_dir\n", 4, "missing value for 'state_dir'");
	expect_line_error("keyring /k\nidentity   \t \n", 2, "missing value for 'identity'");
	expect_line_error("keyring /k\nauth\n", 2, "missing value for 'auth'");
}
END_TEST

START_TEST(duplicate_key)
{
	expect_line_error(BASE "# again\nkeyring /other\n", 5, "duplicate key 'keyring' (first set on line 1)");
	expect_line_error(BASE "log none\nlog none\n", 5, "duplicate key 'log'");
}
END_TEST

START_TEST(password_refused)
{
	expect_line_error(BASE "password hunter2\n", 4, "not allowed");
	expect_line_error("password_file /p\n" BASE, 1, "not allowed");
	/* The secret itself must never be echoed into an error message. */
	struct veil_config c;
	char err[512] = "";
	ck_assert_int_eq(load_text(BASE "password hunter2\n", &c, err, sizeof(err)), VEIL_ERR_PARSE);
	ck_assert_ptr_null(strstr(err, "hunter2"));
	veil_config_free(&c);
}
END_TEST

START_TEST(bad_values)
{
	expect_line_error(BASE "auth token\n", 4, "auth must be credential, password or none");
	expect_line_error(BASE "sign sometimes\n", 4, "sign must be always or policy");
	expect_line_error(BASE "log syslog\n", 4, "log must be stderr or none");
	expect_line_error(BASE "auth none extra\n", 4, "single word");
	expect_line_error(BASE "client_id dev+1\n", 4, "'+'");
	expect_line_error(BASE "client_id a/b\n", 4, "'/'");
	expect_line_error(BASE "client_id a\x01z\n", 4, "control");
	/* A deployment's name: the rule of a credential's client id. */
	expect_line_error(BASE "audience plant/a\n", 4, "audience contains '/'");
	expect_line_error(BASE "audience plant#1\n", 4, "audience contains '+' or '#'");
	expect_line_error(BASE "audience a\x7f\n", 4, "audience contains a control");
	char big[400] = BASE "client_id ";
	size_t n = strlen(big);
	memset(big + n, 'a', 129);
	big[n + 129] = '\n';
	big[n + 130] = '\0';
	expect_line_error(big, 4, "longer than 128");
}
END_TEST

START_TEST(oversized_and_binary)
{
	/* Truncated/oversized input: a line past the limit, a file past the cap, a NUL byte. */
	size_t n = VEIL_CONFIG_MAX_LINE + 20U;
	char *text = malloc(n + 64U);
	ck_assert_ptr_nonnull(text);
	strcpy(text, "keyring /k\nidentity /");
	size_t o = strlen(text);
	memset(text + o, 'x', n);
	strcpy(text + o + n, "\n");
	expect_line_error(text, 2, "line longer than");
	free(text);

	size_t big = VEIL_CONFIG_MAX_BYTES + 10U;
	char *huge = malloc(big + 1U);
	ck_assert_ptr_nonnull(huge);
	for (size_t i = 0; i < big; i++)
		huge[i] = (i % 40U == 39U) ? '\n' : '#';
	huge[big] = '\0';
	struct veil_config c;
	char err[512] = "";
	ck_assert_int_eq(load_text(huge, &c, err, sizeof(err)), VEIL_ERR_TOO_LARGE);
	ck_assert_ptr_nonnull(strstr(err, path));
	veil_config_free(&c);
	free(huge);

	FILE *f = fopen(path, "wb");
	ck_assert_ptr_nonnull(f);
	fwrite("keyring /k\nidentity /a\0b\n", 1, 25, f);
	fclose(f);
	ck_assert_int_eq(veil_config_load(path, &c, err, sizeof(err)), VEIL_ERR_PARSE);
	char prefix[480];
	snprintf(prefix, sizeof(prefix), "%s:2: NUL", path);
	ck_assert_msg(strncmp(err, prefix, strlen(prefix)) == 0, "got '%s'", err);
	veil_config_free(&c);
}
END_TEST

START_TEST(missing_required)
{
	struct veil_config c;
	char err[512] = "";
	/* No keyring: the key service provides the keys (key_service auto). */
	ck_assert_int_eq(load_text("identity /i\ncredential /c\n", &c, err, sizeof(err)), VEIL_OK);
	ck_assert_ptr_null(c.keyring);
	ck_assert_int_eq(c.key_service, VEIL_CONFIG_KEYS_AUTO);
	veil_config_free(&c);
	/* Without the key service a keyring is required. */
	ck_assert_int_eq(load_text("identity /i\ncredential /c\nkey_service off\n", &c, err, sizeof(err)),
	                 VEIL_ERR_PARSE);
	ck_assert_ptr_nonnull(strstr(err, "missing key 'keyring' (required with key_service off)"));
	ck_assert_ptr_nonnull(strstr(err, path));
	veil_config_free(&c);
	ck_assert_int_eq(load_text("keyring /k\nkey_service sometimes\n", &c, err, sizeof(err)), VEIL_ERR_PARSE);
	ck_assert_ptr_nonnull(strstr(err, "key_service must be auto, on or off"));
	veil_config_free(&c);
	ck_assert_int_eq(load_text("keyring /k\nidentity /i\n", &c, err, sizeof(err)), VEIL_ERR_PARSE);
	ck_assert_ptr_nonnull(strstr(err, "needs both 'identity' and 'credential'"));
	veil_config_free(&c);
	ck_assert_int_eq(load_text("keyring /k\nauth none\ncredential /c\n", &c, err, sizeof(err)), VEIL_ERR_PARSE);
	ck_assert_ptr_nonnull(strstr(err, "without the 'identity'"));
	veil_config_free(&c);
	ck_assert_int_eq(load_text("", &c, err, sizeof(err)), VEIL_ERR_PARSE);
	veil_config_free(&c);
}
END_TEST

START_TEST(missing_file)
{
	struct veil_config c;
	char err[512] = "";
	char nofile[420];
	snprintf(nofile, sizeof(nofile), "%s/does-not-exist.conf", dir);
	ck_assert_int_eq(veil_config_load(nofile, &c, err, sizeof(err)), VEIL_ERR_IO);
	ck_assert_msg(strstr(err, nofile) == err && strstr(err, "No such file") != NULL, "got '%s'", err);
	veil_config_free(&c);
	ck_assert_int_eq(veil_config_load(NULL, &c, err, sizeof(err)), VEIL_ERR_INVAL);
	veil_config_free(&c);
	ck_assert_int_eq(veil_config_load(nofile, NULL, err, sizeof(err)), VEIL_ERR_INVAL);
	/* NULL err buffer is allowed. */
	ck_assert_int_eq(veil_config_load(nofile, &c, NULL, 0), VEIL_ERR_IO);
	veil_config_free(&c);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("config");
	TCase *tc = veil_tcase("config", 3);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, good_file);
	tcase_add_test(tc, trailing_comments);
	tcase_add_test(tc, defaults_and_modes);
	tcase_add_test(tc, unknown_key);
	tcase_add_test(tc, missing_value);
	tcase_add_test(tc, duplicate_key);
	tcase_add_test(tc, password_refused);
	tcase_add_test(tc, bad_values);
	tcase_add_test(tc, oversized_and_binary);
	tcase_add_test(tc, missing_required);
	tcase_add_test(tc, missing_file);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return veil_check_run(suite());
}
