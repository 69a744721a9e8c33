/*
 * plugin/passwd.c: the Argon2id password file (format, lookups, broken
 * files reported as path:line), the keyed verification cache (hits only
 * for the same user, password and stored hash, until the TTL), and the file
 * `veil passwd` (tools/cmd_passwd.c, run as $VEIL_CLI) writes.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <sodium.h>

#include "veil/error.h"
#include "broker.h"
#include "passwd.h"
#include "check_run.h"
#include "timing.h"

static char dir[256], path[300];
static char h_alice[crypto_pwhash_STRBYTES], h_bob[crypto_pwhash_STRBYTES];

static void setup(void)
{
	ck_assert_int_ge(sodium_init(), 0);
	ck_assert_int_eq(test_mkdtemp(dir, sizeof(dir)), 0);
	snprintf(path, sizeof(path), "%s/passwd", dir);
	/* Cheapest Argon2id limits: this tests the file, not the KDF. */
	ck_assert_int_eq(crypto_pwhash_str_alg(h_alice, "wonderland", 10, crypto_pwhash_OPSLIMIT_MIN,
	                                       crypto_pwhash_MEMLIMIT_MIN, crypto_pwhash_ALG_ARGON2ID13),
	                 0);
	ck_assert_int_eq(crypto_pwhash_str_alg(h_bob, "builder", 7, crypto_pwhash_OPSLIMIT_MIN,
	                                       crypto_pwhash_MEMLIMIT_MIN, crypto_pwhash_ALG_ARGON2ID13),
	                 0);
}

static void teardown(void)
{
	remove(path);
	remove(dir);
}

static int veil_passwd(const char *args, const char *password);

static int load_text(const char *text, struct vp_passwd **p, char *err, size_t errlen)
{
	ck_assert_int_eq(test_write_file(path, text, 0600), 0);
	return vp_passwd__load(path, p, err, errlen);
}

START_TEST(test_load_and_lookup)
{
	char text[600], err[256] = "";
	snprintf(text, sizeof(text), "# users\n\nbob:%s\r\n  alice:%s\n", h_bob, h_alice);
	struct vp_passwd *p = NULL;
	ck_assert_msg(load_text(text, &p, err, sizeof(err)) == VEIL_OK, "%s", err);
	ck_assert_uint_eq(vp_passwd__count(p), 2);
	ck_assert_str_eq(vp_passwd__hash(p, "alice"), h_alice);
	ck_assert_str_eq(vp_passwd__hash(p, "bob"), h_bob);
	ck_assert_ptr_null(vp_passwd__hash(p, "carol"));
	ck_assert_ptr_null(vp_passwd__hash(p, "alic"));
	ck_assert_ptr_null(vp_passwd__hash(p, NULL));
	ck_assert_int_eq(crypto_pwhash_str_verify(vp_passwd__hash(p, "alice"), "wonderland", 10), 0);
	/* What an unknown user's password is verified against: a real entry
	 * (the first by name), so it costs what a wrong password costs. */
	ck_assert_str_eq(vp_passwd__decoy(p), h_alice);
	ck_assert_ptr_null(vp_passwd__decoy(NULL));
	vp_passwd__free(&p);
	ck_assert_ptr_null(p);
}
END_TEST

/* Trailing comments, the one rule of every Veil file (PROTOCOL.md section 2),
 * in the plugin's reader and in `veil passwd verify`. */
START_TEST(test_trailing_comments)
{
	char text[600], err[256] = "";
	snprintf(text, sizeof(text), "bob:%s   # ops, rotated 2024-05\nalice:%s\t#\n", h_bob, h_alice);
	struct vp_passwd *p = NULL;
	ck_assert_msg(load_text(text, &p, err, sizeof(err)) == VEIL_OK, "%s", err);
	ck_assert_uint_eq(vp_passwd__count(p), 2);
	ck_assert_str_eq(vp_passwd__hash(p, "bob"), h_bob);
	ck_assert_str_eq(vp_passwd__hash(p, "alice"), h_alice);
	vp_passwd__free(&p);
	char args[600];
	snprintf(args, sizeof(args), "verify '%s' alice", path);
	ck_assert_int_eq(veil_passwd(args, "wonderland"), 0);
	ck_assert_int_eq(veil_passwd(args, "wonder"), 1);
	/* '#' glued to the hash is part of it, not a comment. */
	snprintf(text, sizeof(text), "bob:%s#x\n", h_bob);
	ck_assert_msg(load_text(text, &p, err, sizeof(err)) == VEIL_OK, "%s", err);
	const char *h = vp_passwd__hash(p, "bob");
	ck_assert_uint_eq(strlen(h), strlen(h_bob) + 2);
	ck_assert_str_eq(h + strlen(h_bob), "#x");
	vp_passwd__free(&p);
}
END_TEST

START_TEST(test_broken_files)
{
	char text[600], err[256];
	const struct {
		const char *pre, *post;
	} bad[] = {
		{ "alice ", "\n" },                                        /* no colon */
		{ "al+ice:", "\n" },                                       /* wildcard in name */
		{ ":", "\n" },                                             /* empty name */
		{ "alice:$argon2i$v=19$m=4096,t=3,p=1$c2FsdA$aGFzaA", "\n" }, /* Argon2i, not id */
		{ "alice:$2y$10$abcdefghijk", "\n" },                     /* bcrypt */
		{ "alice:", " with spaces\n" },
		{ "alice:", "\nalice:$argon2id$v=19$m=65536,t=2,p=1$c2FsdA$aGFzaA\n" }, /* duplicate */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(text, sizeof(text), "%s%s%s", bad[i].pre, h_alice, bad[i].post);
		struct vp_passwd *p = NULL;
		err[0] = '\0';
		ck_assert_msg(load_text(text, &p, err, sizeof(err)) == VEIL_ERR_PARSE, "case %zu loaded", i);
		ck_assert_ptr_null(p);
		ck_assert_msg(strstr(err, path) != NULL, "case %zu: '%s'", i, err);
	}
	/* Line numbers are reported. */
	snprintf(text, sizeof(text), "# c\nbob:%s\nbroken line\n", h_bob);
	struct vp_passwd *p = NULL;
	ck_assert_int_eq(load_text(text, &p, err, sizeof(err)), VEIL_ERR_PARSE);
	ck_assert_ptr_nonnull(strstr(err, ":3:"));
	remove(path);
	ck_assert_int_eq(vp_passwd__load(path, &p, err, sizeof(err)), VEIL_ERR_IO);
}
END_TEST

START_TEST(test_cache)
{
	struct vp_pwcache *c = NULL;
	ck_assert_int_eq(vp_pwcache__new(64, &c), 0);
	ck_assert(!vp_pwcache__hit(c, "alice", "wonderland", h_alice, 100));
	vp_pwcache__put(c, "alice", "wonderland", h_alice, 160);
	ck_assert(vp_pwcache__hit(c, "alice", "wonderland", h_alice, 100));
	ck_assert(vp_pwcache__hit(c, "alice", "wonderland", h_alice, 159));
	ck_assert(!vp_pwcache__hit(c, "alice", "wonderland", h_alice, 160)); /* TTL */
	ck_assert(!vp_pwcache__hit(c, "alice", "wonderlanD", h_alice, 100));
	ck_assert(!vp_pwcache__hit(c, "alicE", "wonderland", h_alice, 100));
	/* The stored hash is part of the key: a changed file entry never matches. */
	ck_assert(!vp_pwcache__hit(c, "alice", "wonderland", h_bob, 100));
	/* Separators: "ab"+"c" is not "a"+"bc". */
	vp_pwcache__put(c, "ab", "c", h_bob, 500);
	ck_assert(!vp_pwcache__hit(c, "a", "bc", h_bob, 100));
	ck_assert(vp_pwcache__hit(c, "ab", "c", h_bob, 100));
	vp_pwcache__clear(c);
	ck_assert(!vp_pwcache__hit(c, "alice", "wonderland", h_alice, 100));
	ck_assert(!vp_pwcache__hit(c, NULL, "x", h_alice, 1));
	vp_pwcache__free(&c);
	ck_assert_ptr_null(c);
	/* Bounded: the oldest entry goes first; putting an entry again renews it. */
	ck_assert_int_eq(vp_pwcache__new(0, &c), VEIL_ERR_INVAL);
	ck_assert_int_eq(vp_pwcache__new(3, &c), VEIL_OK);
	vp_pwcache__put(c, "u1", "p", h_alice, 500);
	vp_pwcache__put(c, "u2", "p", h_alice, 500);
	vp_pwcache__put(c, "u3", "p", h_alice, 500);
	vp_pwcache__put(c, "u1", "p", h_alice, 600); /* u2 is now the oldest */
	vp_pwcache__put(c, "u4", "p", h_alice, 500);
	ck_assert(vp_pwcache__hit(c, "u1", "p", h_alice, 550));
	ck_assert(!vp_pwcache__hit(c, "u2", "p", h_alice, 100));
	ck_assert(vp_pwcache__hit(c, "u3", "p", h_alice, 100));
	ck_assert(vp_pwcache__hit(c, "u4", "p", h_alice, 100));
	vp_pwcache__free(&c);
	/* A different process key: another cache never matches this one's entries. */
	struct vp_pwcache *c1 = NULL, *c2 = NULL;
	ck_assert_int_eq(vp_pwcache__new(16, &c1), 0);
	ck_assert_int_eq(vp_pwcache__new(16, &c2), 0);
	vp_pwcache__put(c1, "u", "p", h_alice, 10);
	ck_assert(vp_pwcache__hit(c1, "u", "p", h_alice, 1));
	ck_assert(!vp_pwcache__hit(c2, "u", "p", h_alice, 1));
	vp_pwcache__free(&c1);
	vp_pwcache__free(&c2);
}
END_TEST


/* Run `veil passwd <args>` with password on stdin; returns the exit status. */
static int veil_passwd(const char *args, const char *password)
{
	const char *cli = getenv("VEIL_CLI");
	ck_assert_msg(cli && *cli, "VEIL_CLI not set (ctest sets it)");
	char cmd[1024];
	snprintf(cmd, sizeof(cmd), "printf '%%s\\n' '%s' | '%s' passwd %s 2>/dev/null", password, cli, args);
	int st = system(cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

START_TEST(test_cli_round_trip)
{
	char args[600], err[256] = "";
	snprintf(args, sizeof(args), "add '%s' alice", path);
	ck_assert_int_eq(veil_passwd(args, "wonderland"), 0);
	snprintf(args, sizeof(args), "add '%s' bob", path);
	ck_assert_int_eq(veil_passwd(args, "builder"), 0);
	snprintf(args, sizeof(args), "add '%s' alice", path);
	ck_assert_int_eq(veil_passwd(args, "looking-glass"), 0); /* replaces */
	struct stat st;
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0600);
	struct vp_passwd *p = NULL;
	ck_assert_msg(vp_passwd__load(path, &p, err, sizeof(err)) == VEIL_OK, "%s", err);
	ck_assert_uint_eq(vp_passwd__count(p), 2);
	const char *h = vp_passwd__hash(p, "alice");
	ck_assert_ptr_nonnull(h);
	ck_assert(strncmp(h, "$argon2id$", 10) == 0);
	ck_assert_int_eq(crypto_pwhash_str_verify(h, "looking-glass", 13), 0);
	ck_assert_int_ne(crypto_pwhash_str_verify(h, "wonderland", 10), 0);
	vp_passwd__free(&p);
	snprintf(args, sizeof(args), "verify '%s' alice", path);
	ck_assert_int_eq(veil_passwd(args, "looking-glass"), 0);
	ck_assert_int_eq(veil_passwd(args, "wonderland"), 1);
	snprintf(args, sizeof(args), "delete '%s' bob", path);
	ck_assert_int_eq(veil_passwd(args, ""), 0);
	ck_assert_int_eq(veil_passwd(args, ""), 1); /* already gone */
	ck_assert_int_eq(vp_passwd__load(path, &p, err, sizeof(err)), VEIL_OK);
	ck_assert_ptr_null(vp_passwd__hash(p, "bob"));
	ck_assert_ptr_nonnull(vp_passwd__hash(p, "alice"));
	vp_passwd__free(&p);
	/* Names the plugin would refuse are refused here too; no password on argv. */
	snprintf(args, sizeof(args), "add '%s' 'a+b'", path);
	ck_assert_int_eq(veil_passwd(args, "x"), 2);
	snprintf(args, sizeof(args), "add '%s' 'a:b'", path);
	ck_assert_int_eq(veil_passwd(args, "x"), 2);
	snprintf(args, sizeof(args), "add '%s' carol extra-password-arg", path);
	ck_assert_int_eq(veil_passwd(args, "x"), 2);
	snprintf(args, sizeof(args), "add '%s' carol", path);
	ck_assert_int_eq(veil_passwd(args, ""), 1); /* empty password */
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("passwd");
	TCase *t = veil_tcase("core", 10);
	tcase_add_checked_fixture(t, setup, teardown);
	tcase_add_test(t, test_load_and_lookup);
	tcase_add_test(t, test_trailing_comments);
	tcase_add_test(t, test_broken_files);
	tcase_add_test(t, test_cache);
	tcase_add_test(t, test_cli_round_trip);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	return veil_check_run(suite());
}
