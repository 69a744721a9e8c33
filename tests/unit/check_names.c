/*
 * core/names.c: the one rule for client ids and usernames (docs/PROTOCOL.md
 * section 3), and every front door that applies it. The names and their
 * verdicts come from the independent implementation (tests/vectors/names.txt,
 * `tools/gen_vectors.py --names`); each door must agree with it:
 *   username     the core; the plugin's revocation list ("client <id>")
 *   client id    the core; veil_credential_issue and veil_credential_parse;
 *                the client config's client_id; `veil credential issue`
 *   passwd user  the core; the plugin's password file loader; `veil passwd add`
 * A door "accepts" a name only when it takes that exact name: a file whose
 * trimming or comment rule turned it into another name is not acceptance.
 *
 * config.c is compiled in here directly, as in check_config.c: its functions
 * are hidden in both libraries that use it.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "../../client-shim/config.c"
#include "../../core/names.h"

#include "veil/identity.h"
#include "check_run.h"
#include "files.h"
#include "passwd.h"
#include "proc.h"
#include "revoke.h"
#include "timing.h"
#include "vectors.h"

#define MAX_NAMES 128

enum { K_USERNAME = TEST_NAME_USERNAME, K_CLIENT_ID = TEST_NAME_CLIENT_ID, K_PASSWD_USER = TEST_NAME_PASSWD_USER };

static struct test_name cases[MAX_NAMES];
static size_t ncases;
static char dir[256];

static void setup(void)
{
	ck_assert_int_eq(sodium_init() >= 0, 1);
	long n = test_names(cases, MAX_NAMES);
	ck_assert_int_gt(n, 30);
	ncases = (size_t)n;
	ck_assert_int_eq(test_mkdtemp(dir, sizeof(dir)), 0);
}

static void teardown(void)
{
	test_rmtree(dir);
}

/* For failure messages: the name in hex. */
static const char *hex(const struct test_name *c)
{
	static char out[2 * sizeof(c->name) + 1];
	sodium_bin2hex(out, sizeof(out), (const unsigned char *)c->name, c->len);
	return out;
}

static void expect(const struct test_name *c, int kind, bool got, const char *door)
{
	ck_assert_msg(got == c->valid[kind], "%s %s name %s (table: %s)", door, got ? "accepts" : "refuses", hex(c),
	              c->valid[kind] ? "valid" : "invalid");
}

START_TEST(core_rule)
{
	for (size_t i = 0; i < ncases; i++) {
		const struct test_name *c = &cases[i];
		expect(c, K_USERNAME, veil_username_valid(c->name), "veil_username_valid");
		expect(c, K_CLIENT_ID, veil_client_id_valid(c->name), "veil_client_id_valid");
		expect(c, K_PASSWD_USER, veil__name_check(c->name, c->len, VEIL__NAME_PASSWD_USER) == NULL,
		       "passwd user rule");
		/* A refusal always says why. */
		const char *why = veil__name_why(c->name, VEIL__NAME_CLIENT_ID);
		ck_assert(c->valid[K_CLIENT_ID] ? why == NULL : why != NULL && *why != '\0');
	}
	/* What a C string cannot show: NULL, a NUL byte inside counted bytes. */
	ck_assert(!veil_username_valid(NULL));
	ck_assert(!veil_client_id_valid(NULL));
	ck_assert_str_eq(veil__name_check("a\0b", 3, VEIL__NAME_USERNAME), "contains a control character");
	ck_assert_str_eq(veil__name_check("", 0, VEIL__NAME_USERNAME), "is empty");
	/* Each kind names its own reason. */
	ck_assert_ptr_nonnull(strstr(veil__name_why("a/b", VEIL__NAME_CLIENT_ID), "'/'"));
	ck_assert_ptr_nonnull(strstr(veil__name_why("a:b", VEIL__NAME_PASSWD_USER), "':'"));
	ck_assert_ptr_nonnull(strstr(veil__name_why("a+b", VEIL__NAME_USERNAME), "'+'"));
	ck_assert_ptr_nonnull(strstr(veil__name_why(" a", VEIL__NAME_USERNAME), "space"));
}
END_TEST

/* The credential issuer and parser: a credential carries the client id. */
START_TEST(credential_doors)
{
	struct veil_identity *auth = NULL;
	uint8_t seed[VEIL_SEED_BYTES] = { 7 };
	ck_assert_int_eq(veil_identity_from_seed(seed, &auth), VEIL_OK);
	uint8_t good[VEIL_CREDENTIAL_MAX];
	size_t good_len = 0;
	struct veil_credential base = { .issued_at = 1000, .expires_at = 2000 };
	memcpy(base.client_id, "x", 2);
	ck_assert_int_eq(veil_credential_issue(auth, &base, good, sizeof(good), &good_len), VEIL_OK);
	for (size_t i = 0; i < ncases; i++) {
		const struct test_name *c = &cases[i];
		struct veil_credential cr = base;
		memset(cr.client_id, 0, sizeof(cr.client_id));
		memcpy(cr.client_id, c->name, c->len < sizeof(cr.client_id) ? c->len : sizeof(cr.client_id));
		uint8_t out[VEIL_CREDENTIAL_MAX];
		size_t out_len = 0;
		bool issued = veil_credential_issue(auth, &cr, out, sizeof(out), &out_len) == VEIL_OK;
		expect(c, K_CLIENT_ID, issued, "veil_credential_issue");
		/* The parser, on a credential whose client id field holds the name
		 * (the signature is not its business). */
		if (c->len > 255)
			continue;
		uint8_t blob[VEIL_CREDENTIAL_MAX + 300];
		size_t n = 0;
		memcpy(blob, good, VEIL_CREDENTIAL_FIXED - 1);
		n = VEIL_CREDENTIAL_FIXED - 1;
		blob[n++] = (uint8_t)c->len;
		memcpy(blob + n, c->name, c->len);
		n += c->len;
		size_t tail = good_len - VEIL_CREDENTIAL_FIXED - 1; /* roles length, roles, signature after "x" */
		memcpy(blob + n, good + VEIL_CREDENTIAL_FIXED + 1, tail);
		n += tail;
		struct veil_credential parsed;
		int rc = veil_credential_parse(blob, n, &parsed);
		bool ok = rc == VEIL_OK && strcmp(parsed.client_id, c->name) == 0;
		/* Over 128 bytes the length itself is out of range: TOO_LARGE or PARSE. */
		expect(c, K_CLIENT_ID, ok, "veil_credential_parse");
	}
	veil_identity_free(&auth);
}
END_TEST

/* The plugin's password file and revocation list, and the client config:
 * each gets a file naming the name. */
START_TEST(file_doors)
{
	char path[400], text[600], err[512];
	snprintf(path, sizeof(path), "%s/file", dir);
	for (size_t i = 0; i < ncases; i++) {
		const struct test_name *c = &cases[i];
		snprintf(text, sizeof(text),
		         "%.*s:$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$"
		         "0123456789abcdefghijklmnopqrstuvwxyzABCDEFG\n",
		         (int)c->len, c->name);
		ck_assert_int_eq(test_write_file(path, text, 0600), 0);
		struct vp_passwd *p = NULL;
		bool ok = vp_passwd__load(path, &p, err, sizeof(err)) == VEIL_OK && vp_passwd__hash(p, c->name) != NULL;
		expect(c, K_PASSWD_USER, ok, "the plugin's password file");
		vp_passwd__free(&p);

		snprintf(text, sizeof(text), "client %.*s\n", (int)c->len, c->name);
		ck_assert_int_eq(test_write_file(path, text, 0644), 0);
		struct vp_revoke *r = NULL;
		ok = vp_revoke__load(path, &r, err, sizeof(err)) == VEIL_OK && vp_revoke__client(r, c->name);
		expect(c, K_USERNAME, ok, "the plugin's revocation list");
		vp_revoke__free(&r);

		snprintf(text, sizeof(text), "keyring /k\nauth none\nclient_id %.*s\n", (int)c->len, c->name);
		ck_assert_int_eq(test_write_file(path, text, 0644), 0);
		struct veil_config cfg;
		ok = veil_config_load(path, &cfg, err, sizeof(err)) == VEIL_OK && cfg.client_id &&
		     strcmp(cfg.client_id, c->name) == 0;
		expect(c, K_CLIENT_ID, ok, "the client config");
		veil_config_free(&cfg);
	}
}
END_TEST

static int run_cli(const char *const argv[], const char *stdin_path)
{
	struct test_spawn o = { stdin_path, NULL, NULL, NULL };
	pid_t pid = test_spawn(argv, &o);
	return test_wait_exit(pid, 20000);
}

/* The CLI as a user runs it; what it writes must be what the plugin and the
 * credential loader then take. */
START_TEST(cli_doors)
{
	const char *cli = getenv("VEIL_CLI");
	ck_assert_msg(cli && *cli, "VEIL_CLI not set (ctest sets it)");
	char akey[400], dkey[400], pw[400], pwfile[400], cred[400], err[512];
	snprintf(akey, sizeof(akey), "%s/auth.key", dir);
	snprintf(dkey, sizeof(dkey), "%s/dev.key", dir);
	snprintf(pw, sizeof(pw), "%s/password", dir);
	ck_assert_int_eq(test_write_file(pw, "secret-password\n", 0600), 0);
	ck_assert_int_eq(run_cli((const char *const[]){ cli, "keygen", "authority", "-o", akey, NULL }, NULL), 0);
	ck_assert_int_eq(run_cli((const char *const[]){ cli, "keygen", "identity", "-o", dkey, NULL }, NULL), 0);
	for (size_t i = 0; i < ncases; i++) {
		const struct test_name *c = &cases[i];
		snprintf(cred, sizeof(cred), "%s/c%zu.cred", dir, i);
		int st = run_cli((const char *const[]){ cli, "credential", "issue", "--authority", akey, "--device", dkey,
		                                        "--client-id", c->name, "-o", cred, NULL },
		                 NULL);
		ck_assert_msg(st == 0 || st == 2, "veil credential issue exited %d", st);
		expect(c, K_CLIENT_ID, st == 0, "veil credential issue");
		if (st == 0) {
			uint8_t buf[VEIL_CREDENTIAL_MAX];
			size_t len = 0;
			struct veil_credential parsed;
			ck_assert_msg(veil_credential_load(cred, buf, sizeof(buf), &len, err, sizeof(err)) == VEIL_OK, "%s",
			              err);
			ck_assert_int_eq(veil_credential_parse(buf, len, &parsed), VEIL_OK);
			ck_assert_str_eq(parsed.client_id, c->name);
		}

		snprintf(pwfile, sizeof(pwfile), "%s/p%zu", dir, i);
		st = run_cli((const char *const[]){ cli, "passwd", "add", pwfile, c->name, NULL }, pw);
		ck_assert_msg(st == 0 || st == 2, "veil passwd add exited %d", st);
		expect(c, K_PASSWD_USER, st == 0, "veil passwd add");
		if (st == 0) {
			/* The bug this guards against: a file the CLI wrote that the
			 * plugin then refuses as a whole, or reads as another name. */
			struct vp_passwd *p = NULL;
			ck_assert_msg(vp_passwd__load(pwfile, &p, err, sizeof(err)) == VEIL_OK, "%s", err);
			ck_assert_msg(vp_passwd__hash(p, c->name) != NULL, "the plugin does not find %s", hex(c));
			vp_passwd__free(&p);
		}
	}
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("names");
	TCase *t = veil_tcase("rule", 2);
	tcase_add_checked_fixture(t, setup, teardown);
	tcase_add_test(t, core_rule);
	tcase_add_test(t, credential_doors);
	tcase_add_test(t, file_doors);
	suite_add_tcase(s, t);
	/* About 60 CLI runs, 20 of them Argon2id hashes. */
	TCase *cli = veil_tcase("cli", 60);
	tcase_add_checked_fixture(cli, setup, teardown);
	tcase_add_test(cli, cli_doors);
	suite_add_tcase(s, cli);
	return s;
}

int main(void)
{
	return veil_check_run(suite());
}
