/*
 * plugin/auth_config.c: plugin_opt_* parsing (defaults, ranges, booleans,
 * every option known), and reloading files: a changed good file replaces the
 * state, a broken one keeps the old state, an unchanged one is not re-read.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>
#include <sodium.h>

#include "veil/veil.h"
#include "broker.h"
#include "plugin_private.h"
#include "auth_private.h"
#include "passwd.h"
#include "proxy.h"
#include "revoke.h"
#include "check_run.h"
#include "timing.h"

/* Parse one option into *a, releasing what a previous parse left there
 * (even a refused one allocates defaults such as auto_id_prefix). */
static int parse(struct vp_auth *a, const char *key, const char *value)
{
	struct mosquitto_opt o = { (char *)key, (char *)value };
	vp_auth__release(a);
	memset(a, 0, sizeof(*a));
	return vp_auth__options(a, &o, 1);
}

START_TEST(test_defaults)
{
	struct vp_auth a;
	memset(&a, 0, sizeof(a));
	ck_assert_int_eq(vp_auth__options(&a, NULL, 0), VEIL_OK);
	ck_assert_uint_eq(a.token_window, 60);
	ck_assert_uint_eq(a.poll_interval, 1);
	ck_assert_uint_eq(a.backoff_base_ms, 250);
	ck_assert_uint_eq(a.backoff_max_ms, 30000);
	ck_assert_uint_eq(a.password_cache_ttl, 60);
	ck_assert_uint_eq(a.password_hashes_per_sec, 1000); /* a count cap; time is bounded below */
	ck_assert_uint_eq(a.password_ms_per_sec, 200);
	ck_assert(!a.allow_anonymous);
	ck_assert(!a.defer_unknown);
	ck_assert(a.enhanced_auth);
	ck_assert_str_eq(a.auto_id_prefix, "auto-"); /* Mosquitto's own default */
	ck_assert_ptr_null(a.state_dir);
	ck_assert_ptr_null(a.authority_file);
	vp_auth__release(&a);
}
END_TEST

/* The options added for issue 17: enhanced auth can be turned off, the
 * broker-assigned id prefix must be a usable client id, the Argon2id time
 * budget is 1..1000 ms per second. */
START_TEST(test_issue17_options)
{
	struct vp_auth a;
	memset(&a, 0, sizeof(a));
	ck_assert_int_eq(parse(&a, "enhanced_auth", "false"), VEIL_OK);
	ck_assert(!a.enhanced_auth);
	ck_assert_int_eq(parse(&a, "enhanced_auth", "true"), VEIL_OK);
	ck_assert(a.enhanced_auth);
	ck_assert_int_eq(parse(&a, "enhanced_auth", "no"), VEIL_ERR_INVAL);
	ck_assert_int_eq(parse(&a, "auto_id_prefix", "anon-"), VEIL_OK);
	ck_assert_str_eq(a.auto_id_prefix, "anon-");
	ck_assert_int_eq(parse(&a, "state_dir", "/var/lib/mosquitto/veil"), VEIL_OK);
	ck_assert_str_eq(a.state_dir, "/var/lib/mosquitto/veil");
	ck_assert_int_eq(parse(&a, "password_ms_per_sec", "1"), VEIL_OK);
	ck_assert_uint_eq(a.password_ms_per_sec, 1);
	ck_assert_int_eq(parse(&a, "password_ms_per_sec", "1000"), VEIL_OK);
	const char *bad[][2] = { { "auto_id_prefix", "" },        { "auto_id_prefix", "a+" },
		                 { "auto_id_prefix", "a#" },      { "auto_id_prefix", "a\x01" },
		                 { "state_dir", "" },             { "password_ms_per_sec", "0" },
		                 { "password_ms_per_sec", "1001" } };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(parse(&a, bad[i][0], bad[i][1]) == VEIL_ERR_INVAL, "%s=%s accepted", bad[i][0], bad[i][1]);
	vp_auth__release(&a);
}
END_TEST

START_TEST(test_values)
{
	struct vp_auth a;
	memset(&a, 0, sizeof(a));
	ck_assert_int_eq(parse(&a, "token_window", "30"), VEIL_OK);
	ck_assert_uint_eq(a.token_window, 30);
	ck_assert_int_eq(parse(&a, "allow_anonymous", "true"), VEIL_OK);
	ck_assert(a.allow_anonymous);
	ck_assert_int_eq(parse(&a, "defer_unknown", "false"), VEIL_OK);
	ck_assert_int_eq(parse(&a, "password_file", "/etc/veil/passwd"), VEIL_OK);
	ck_assert_str_eq(a.password_file, "/etc/veil/passwd");
	const char *bad[][2] = { { "token_window", "0" },       { "token_window", "3601" },
		                 { "token_window", "-5" },      { "token_window", "60s" },
		                 { "token_window", "" },        { "allow_anonymous", "yes" },
		                 { "backoff_base_ms", "0" },    { "poll_interval", "99999999999999999999" },
		                 { "password_hashes_per_sec", "0" } };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(parse(&a, bad[i][0], bad[i][1]) == VEIL_ERR_INVAL, "%s=%s accepted", bad[i][0], bad[i][1]);
	struct mosquitto_opt two[] = { { "backoff_base_ms", "5000" }, { "backoff_max_ms", "1000" } };
	vp_auth__release(&a); /* also zeroes it */
	ck_assert_int_eq(vp_auth__options(&a, two, 2), VEIL_ERR_INVAL);
	vp_auth__release(&a);
}
END_TEST

/* plugin_opt_proxy_addresses (issue 14): numeric addresses, several on a
 * line and over repeated lines; anything else refuses the start. */
START_TEST(test_proxy_addresses)
{
	struct vp_auth a;
	memset(&a, 0, sizeof(a));
	ck_assert_int_eq(parse(&a, "proxy_addresses", "127.0.0.1"), VEIL_OK);
	ck_assert_uint_eq(vp_proxies__count(a.proxies), 1);
	ck_assert(vp_proxies__has(a.proxies, "127.0.0.1"));
	ck_assert(!vp_proxies__has(a.proxies, "127.0.0.2"));
	struct mosquitto_opt two[] = { { "proxy_addresses", " 10.0.0.5\t192.168.1.7 " },
		                       { "proxy_addresses", "fd00::5 10.0.0.5" } };
	vp_auth__release(&a);
	ck_assert_int_eq(vp_auth__options(&a, two, 2), VEIL_OK);
	ck_assert_uint_eq(vp_proxies__count(a.proxies), 3);
	ck_assert(vp_proxies__has(a.proxies, "192.168.1.7"));
	ck_assert(vp_proxies__has(a.proxies, "::ffff:10.0.0.5")); /* one address, either spelling */
	ck_assert(vp_proxies__has(a.proxies, "fd00:0::5"));
	ck_assert(!vp_proxies__has(a.proxies, "127.0.0.1"));
	ck_assert_int_eq(parse(&a, "token_window", "30"), VEIL_OK);
	ck_assert_ptr_null(a.proxies); /* the default: no load balancer */
	const char *bad[] = { "", "   ", "localhost", "10.0.0", "10.0.0.0/8", "127.0.0.1,10.0.0.5",
		              "fe80::1%eth0", "1.2.3.4 nope" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(parse(&a, "proxy_addresses", bad[i]) == VEIL_ERR_INVAL, "'%s' accepted", bad[i]);
	/* At most VP_PROXIES_MAX distinct addresses (a repeated one counts once). */
	char many[(VP_PROXIES_MAX + 1) * 16] = "10.0.0.1 10.0.0.1";
	for (unsigned i = 2; i <= VP_PROXIES_MAX; i++)
		snprintf(many + strlen(many), sizeof(many) - strlen(many), " 10.0.0.%u", i);
	ck_assert_int_eq(parse(&a, "proxy_addresses", many), VEIL_OK);
	ck_assert_uint_eq(vp_proxies__count(a.proxies), VP_PROXIES_MAX);
	snprintf(many + strlen(many), sizeof(many) - strlen(many), " 10.0.1.1");
	ck_assert_int_eq(parse(&a, "proxy_addresses", many), VEIL_ERR_INVAL);
	vp_auth__release(&a);
}
END_TEST

START_TEST(test_known)
{
	const char *keys[] = { "authority_file", "password_file", "revocation_file", "allow_anonymous",
		               "defer_unknown", "token_window", "poll_interval", "backoff_base_ms",
		               "backoff_max_ms", "ratelimit_entries", "replay_cache_size", "password_cache_ttl",
		               "password_hashes_per_sec", "password_ms_per_sec", "enhanced_auth", "auto_id_prefix",
		               "state_dir", "proxy_addresses" };
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		ck_assert_msg(vp_auth__option_known(keys[i]), "%s", keys[i]);
	ck_assert(!vp_auth__option_known("acl_file"));
	ck_assert(!vp_auth__option_known("token_windo"));
	ck_assert(!vp_auth__option_known(NULL));
}
END_TEST

START_TEST(test_reload_keeps_old_on_error)
{
	ck_assert_int_eq(veil_init(), VEIL_OK);
	char dir[256], pw[300], rv[300], au[300];
	ck_assert_int_eq(test_mkdtemp(dir, sizeof(dir)), 0);
	snprintf(pw, sizeof(pw), "%s/passwd", dir);
	snprintf(rv, sizeof(rv), "%s/revoked", dir);
	snprintf(au, sizeof(au), "%s/authority.pub", dir);
	struct veil_identity *id = NULL;
	ck_assert_int_eq(veil_identity_generate(&id), VEIL_OK);
	uint8_t pk[VEIL_PK_BYTES];
	veil_identity_public(id, pk);
	ck_assert_int_eq(veil_public_key_save(pk, au), VEIL_OK);
	ck_assert_int_eq(test_write_file(pw, "alice:$argon2id$v=19$m=65536,t=2,p=1$c2FsdA$aGFzaA\n", 0600), 0);
	ck_assert_int_eq(test_write_file(rv, "client gone\n", 0600), 0);
	struct mosquitto_opt o[] = { { "password_file", pw }, { "revocation_file", rv }, { "authority_file", au } };
	struct vp_auth a;
	memset(&a, 0, sizeof(a));
	ck_assert_int_eq(vp_auth__options(&a, o, 3), VEIL_OK);
	bool changed = false;
	ck_assert_int_eq(vp_auth__load_files(&a, true, &changed), VEIL_OK);
	ck_assert(changed);
	ck_assert_uint_eq(a.n_authorities, 1);
	ck_assert_mem_eq(a.authorities[0], pk, VEIL_PK_BYTES);
	ck_assert_ptr_nonnull(vp_passwd__hash(a.passwd, "alice"));
	ck_assert(vp_revoke__client(a.revoke, "gone"));
	/* Unchanged: nothing reloaded. */
	ck_assert_int_eq(vp_auth__load_files(&a, false, &changed), VEIL_OK);
	ck_assert(!changed);
	/* Broken revocation list (different size, so the change is seen): old list kept. */
	ck_assert_int_eq(test_write_file(rv, "client gone\nclient also-gone\nbogus\n", 0600), 0);
	ck_assert_int_eq(vp_auth__load_files(&a, false, &changed), VEIL_ERR_PARSE);
	ck_assert(!changed);
	ck_assert(vp_revoke__client(a.revoke, "gone"));
	ck_assert(!vp_revoke__client(a.revoke, "also-gone"));
	/* The same broken version is not re-read on every poll (it is logged
	 * again at each: the old state it keeps may be what the operator meant
	 * to change). */
	ck_assert_int_eq(vp_auth__load_files(&a, false, &changed), VEIL_ERR_PARSE);
	/* Fixed: replaced. */
	ck_assert_int_eq(test_write_file(rv, "client also-gone\n", 0600), 0);
	ck_assert_int_eq(vp_auth__load_files(&a, false, &changed), VEIL_OK);
	ck_assert(changed);
	ck_assert(!vp_revoke__client(a.revoke, "gone"));
	ck_assert(vp_revoke__client(a.revoke, "also-gone"));
	/* Deleted password file: old users kept (fail safe for the fleet, logged). */
	remove(pw);
	ck_assert_int_eq(vp_auth__load_files(&a, false, &changed), VEIL_ERR_IO);
	ck_assert_ptr_nonnull(vp_passwd__hash(a.passwd, "alice"));
	/* An authority file without keys is refused, the old keys stay. */
	ck_assert_int_eq(test_write_file(au, "# no keys\n", 0600), 0);
	ck_assert_int_eq(vp_auth__load_files(&a, false, &changed), VEIL_ERR_PARSE);
	ck_assert_uint_eq(a.n_authorities, 1);
	vp_auth__release(&a);
	veil_identity_free(&id);
	remove(rv);
	remove(au);
	remove(dir);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("auth_config");
	TCase *t = veil_tcase("core", 2);
	tcase_add_test(t, test_defaults);
	tcase_add_test(t, test_values);
	tcase_add_test(t, test_issue17_options);
	tcase_add_test(t, test_known);
	tcase_add_test(t, test_proxy_addresses);
	tcase_add_test(t, test_reload_keeps_old_on_error);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	return veil_check_run(suite());
}
