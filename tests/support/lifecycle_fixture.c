/* The key lifecycle fixture: broker, authorities, lists, keyd, key sets
 * (see lifecycle_fixture.h; the devices and the eavesdropper are in
 * lifecycle_device.c). */
#define _GNU_SOURCE
#include "lifecycle_fixture.h"

#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "../../core/bundle.h"
#include "../../core/util.h"
#include "files.h"
#include "material.h"
#include "proc.h"
#include "timing.h"

struct lfx lfx;

_Static_assert(sizeof(((struct lfx_key *)0)->scope) == VEIL__GRANT_SCOPE_MAX + 1,
               "lfx_key.scope holds any grant's scope");

#define KEYD_MAX 4
static struct lfx_keyd *keyds[KEYD_MAX]; /* started ones, stopped at teardown */

static const char *env_bin(const char *name)
{
	const char *p = getenv(name);
	ck_assert_msg(p && *p, "%s not set (run through ctest)", name);
	return p;
}

void lfx_path(char *out, size_t cap, const char *name)
{
	ck_assert_int_lt(snprintf(out, cap, "%s/%s", lfx.dir, name), (int)cap);
}

void lfx_authorities_file(const char *name, unsigned mask, char *out, size_t cap)
{
	char text[LFX_AUTH_MAX * 100] = "", line[100];
	for (int i = 0; i < LFX_AUTH_MAX; i++) {
		if (!(mask & (1U << i)))
			continue;
		uint8_t pk[VEIL_PK_BYTES];
		char b64[64];
		veil_identity_public(lfx.auth[i], pk);
		test_b64(b64, sizeof(b64), pk, sizeof(pk));
		snprintf(line, sizeof(line), "veil-public-key-v1 %s\n", b64);
		strcat(text, line);
	}
	lfx_path(out, cap, name);
	ck_assert_int_eq(test_write_file(out, text, 0644), 0);
}

/* The broker's set of authorities; once it runs, returns when its plugin has
 * loaded the new file (it polls once a second; keyd, watching the file,
 * may have moved on already: a device must not race the broker). */
void lfx_trust(unsigned mask)
{
	static const char loaded[] = "veil: auth | load | file=authority keys=";
	bool running = lfx.broker.pid > 0 && lfx.plugin;
	int before = running ? test_file_count(lfx.broker.log, loaded) : 0;
	lfx_authorities_file("trusted.pub", mask, lfx.trusted, sizeof(lfx.trusted));
	if (running)
		ck_assert_msg(test_file_wait_count(lfx.broker.log, loaded, before + 1, 5000),
		              "the broker's plugin did not reload the authorities file");
}

void lfx_setup(const struct lfx_opts *o)
{
	memset(&lfx, 0, sizeof(lfx));
	memset(keyds, 0, sizeof(keyds));
	ck_assert_int_eq(veil_init(), VEIL_OK);
	ck_assert_int_eq(test_mkdtemp_readable(lfx.dir, sizeof(lfx.dir)), 0);
	for (int i = 0; i < LFX_AUTH_MAX; i++)
		ck_assert_int_eq(veil_identity_generate(&lfx.auth[i]), VEIL_OK);
	lfx_trust(1U);
	lfx_path(lfx.acl, sizeof(lfx.acl), "veil.acl");
	lfx_path(lfx.revoked, sizeof(lfx.revoked), "revoked.txt");
	ck_assert_int_eq(test_write_file(lfx.acl, o->acl, 0644), 0);
	ck_assert_int_eq(test_write_file(lfx.revoked, "# revoked credentials and clients\n", 0644), 0);
	lfx.plugin = !o->no_plugin;
	char conf[4096], passwd[400] = "";
	if (o->passwd) {
		char path[320];
		lfx_path(path, sizeof(path), "passwd");
		ck_assert_int_eq(test_write_file(path, o->passwd, 0644), 0);
		snprintf(passwd, sizeof(passwd), "plugin_opt_password_file %s\n", path);
	}
	if (lfx.plugin)
		snprintf(conf, sizeof(conf),
		         "allow_anonymous false\npersistence true\npersistence_location %%DIR%%/\nplugin %s\n"
		         "plugin_opt_authority_file %s\nplugin_opt_acl_file %s\nplugin_opt_revocation_file %s\n%s%s",
		         test_plugin_path(), lfx.trusted, lfx.acl, lfx.revoked, passwd,
		         o->broker_extra ? o->broker_extra : "");
	else
		snprintf(conf, sizeof(conf), "allow_anonymous true\npersistence true\npersistence_location %%DIR%%/\n%s",
		         o->broker_extra ? o->broker_extra : "");
	ck_assert_int_eq(test_broker_start(&lfx.broker, conf), 0);
	snprintf(lfx.uri, sizeof(lfx.uri), "tcp://127.0.0.1:%d", lfx.broker.port);
}

void lfx_teardown(void)
{
	for (int i = 0; i < KEYD_MAX; i++) {
		if (keyds[i] && keyds[i]->pid > 0)
			test_stop(keyds[i]->pid);
		keyds[i] = NULL;
	}
	test_broker_stop(&lfx.broker);
	test_broker_cleanup(&lfx.broker);
	for (int i = 0; i < LFX_AUTH_MAX; i++)
		veil_identity_free(&lfx.auth[i]);
	test_rmtree(lfx.dir);
}

void lfx_revoke(const char *line)
{
	size_t len = 0;
	char *was = test_file_read(lfx.revoked, &len);
	ck_assert_ptr_nonnull(was);
	size_t cap = len + strlen(line) + 2;
	char *text = malloc(cap);
	ck_assert_ptr_nonnull(text);
	snprintf(text, cap, "%s%s\n", was, line);
	/* Written beside and renamed: the plugin and keyd never read half. */
	char tmp[340];
	lfx_path(tmp, sizeof(tmp), "revoked.tmp");
	ck_assert_int_eq(test_write_file(tmp, text, 0644), 0);
	ck_assert_int_eq(rename(tmp, lfx.revoked), 0);
	free(text);
	free(was);
}

void lfx_revoke_credential(const uint8_t id[VEIL_CREDENTIAL_ID_BYTES])
{
	char hex[2 * VEIL_CREDENTIAL_ID_BYTES + 1], line[64];
	sodium_bin2hex(hex, sizeof(hex), id, VEIL_CREDENTIAL_ID_BYTES);
	snprintf(line, sizeof(line), "credential %s", hex);
	lfx_revoke(line);
}

void lfx_identity(const char *stem, const char *client_id, const char *roles, int a, unsigned how,
                  struct veil_credential *out)
{
	char key[400], cred[400];
	lfx_path(key, sizeof(key), stem);
	strcat(key, ".key");
	lfx_path(cred, sizeof(cred), stem);
	strcat(cred, ".cred");
	struct veil_identity *id = NULL;
	if (how & LFX_NEW_KEY) {
		unlink(key);
		how |= LFX_NEW_CRED;
	}
	if (access(key, F_OK) == 0) {
		ck_assert_int_eq(veil_identity_load(key, &id, NULL, 0), VEIL_OK);
	} else {
		ck_assert_int_eq(veil_identity_generate(&id), VEIL_OK);
		ck_assert_int_eq(veil_identity_save(id, key), VEIL_OK);
	}
	uint8_t c[VEIL_CREDENTIAL_MAX];
	size_t n = 0;
	if ((how & LFX_NEW_CRED) || access(cred, F_OK) != 0) {
		n = test_credential_make(lfx.auth[a], id, client_id, roles, 86400, c);
		unlink(cred);
		ck_assert_int_eq(veil_credential_save(c, n, cred), VEIL_OK);
	} else {
		ck_assert_int_eq(veil_credential_load(cred, c, sizeof(c), &n, NULL, 0), VEIL_OK);
	}
	veil_identity_free(&id);
	if (out)
		ck_assert_int_eq(veil_credential_parse(c, n, out), VEIL_OK);
}

/* ---- keyd ---------------------------------------------------------------- */

void lfx_keyd_new(struct lfx_keyd *k, const char *name, const char *settings)
{
	memset(k, 0, sizeof(*k));
	k->pid = -1;
	snprintf(k->name, sizeof(k->name), "%s", name);
	char stem[64], file[96], path[400];
	lfx_identity(name, "veil-keyd", "veil-keyd", 0, 0, NULL);
	snprintf(file, sizeof(file), "%s.conf", name);
	lfx_path(k->conf, sizeof(k->conf), file);
	snprintf(file, sizeof(file), "%s.log", name);
	lfx_path(k->log, sizeof(k->log), file);
	snprintf(file, sizeof(file), "%s.db", name);
	lfx_path(k->db, sizeof(k->db), file);
	snprintf(stem, sizeof(stem), "%s", name);
	char text[4096];
	ck_assert_int_lt(snprintf(text, sizeof(text),
	                          "broker %s\nclient_id veil-keyd\nidentity %s.key\ncredential %s.cred\n"
	                          "authorities %s\nacl_file %s\nrevocation_file %s\ndatabase %s.db\n"
	                          "storage_key %s.storage\nreissue_interval 1\n%s",
	                          lfx.uri, stem, stem, lfx.trusted, lfx.acl, lfx.revoked, stem, stem, settings),
	                 (int)sizeof(text));
	ck_assert_int_eq(test_write_file(k->conf, text, 0644), 0);
	snprintf(file, sizeof(file), "%s.init", name);
	lfx_path(path, sizeof(path), file);
	const char *argv[] = { env_bin("VEIL_KEYD"), "-c", k->conf, "--init", NULL };
	struct test_spawn o = { .out = path };
	int rc = test_wait_exit(test_spawn(argv, &o), 10000);
	if (rc != 0)
		test_file_dump("veil-keyd --init", path);
	ck_assert_int_eq(rc, 0);
}

/* The daemon to run: the test-only build with the crash hook
 * (veil-keyd-test-hooks) when env sets VEIL_KEYD_CRASH_AFTER, the one that
 * is installed otherwise. */
static const char *keyd_bin(const char *const *env)
{
	static const char hook[] = "VEIL_KEYD_CRASH_AFTER=";
	for (size_t i = 0; env && env[i]; i++)
		if (!strncmp(env[i], hook, sizeof(hook) - 1))
			return env_bin("VEIL_KEYD_HOOKS");
	return env_bin("VEIL_KEYD");
}

void lfx_keyd_start(struct lfx_keyd *k, const char *const *env)
{
	int before = test_file_count(k->log, "mqtt | subscribed");
	/* Appended to, not truncated: a restarted keyd's lines follow. */
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "exec \"$0\" \"$@\" 2>>'%s'", k->log);
	const char *sh[] = { "/bin/sh", "-c", cmd, keyd_bin(env), "-c", k->conf, "-d", NULL };
	struct test_spawn o = { .env = env };
	k->pid = test_spawn(sh, &o);
	int slot = 0;
	while (slot < KEYD_MAX && keyds[slot] && keyds[slot] != k)
		slot++;
	ck_assert_int_lt(slot, KEYD_MAX);
	keyds[slot] = k;
	if (!test_file_wait_count(k->log, "mqtt | subscribed", before + 1, 10000)) {
		test_file_dump(k->name, k->log);
		ck_abort_msg("%s did not subscribe", k->name);
	}
}

void lfx_keyd_stop(struct lfx_keyd *k)
{
	ck_assert_int_gt(k->pid, 0);
	kill(k->pid, SIGTERM);
	int rc = test_wait_exit(k->pid, 10000);
	k->pid = -1;
	if (rc != 0)
		test_file_dump(k->name, k->log);
	ck_assert_int_eq(rc, 0);
}

int lfx_keyd_exit(struct lfx_keyd *k, int base_ms)
{
	int rc = test_wait_exit(k->pid, base_ms);
	k->pid = -1;
	return rc;
}

int lfx_keyd_count(const struct lfx_keyd *k, const char *needle)
{
	return test_file_count(k->log, needle);
}

void lfx_keyd_wait(const struct lfx_keyd *k, const char *needle, int count, int base_ms)
{
	if (!test_file_wait_count(k->log, needle, count, base_ms)) {
		test_file_dump(k->name, k->log);
		test_file_dump("broker", lfx.broker.log);
		ck_abort_msg("%s never logged '%s' %d time(s)", k->name, needle, count);
	}
}

/* ---- key sets ------------------------------------------------------------- */

const struct lfx_key *lfx_keyset_find(const struct lfx_keyset *ks, uint32_t key_id)
{
	for (size_t i = 0; i < ks->n; i++)
		if (ks->k[i].key_id == key_id)
			return &ks->k[i];
	return NULL;
}

bool lfx_keys_file(const char *path, struct lfx_keyset *ks, uint64_t *version)
{
	size_t len = 0;
	char *text = test_file_read(path, &len);
	if (!text)
		return false;
	const uint8_t *b = (const uint8_t *)text;
	struct veil__grants *g = NULL;
	/* "VEILKEY2": version, the signing keyd's credential id, grants;
	 * "VEILKEYS" (before 1.0.0): version, grants. */
	size_t head = len >= 8 && !memcmp(b, "VEILKEY2", 8) ? 16 + VEIL_CREDENTIAL_ID_BYTES : 16;
	ck_assert_msg(len >= head + 2 && (head > 16 || !memcmp(b, "VEILKEYS", 8)) &&
	                      veil__grants_parse(b + head, len - head, &g) == VEIL_OK,
	              "%s is not a keys file", path);
	if (version)
		*version = veil__get_u64(b + 8);
	for (size_t i = 0; i < g->n; i++) {
		if (lfx_keyset_find(ks, g->g[i].key_id))
			continue;
		ck_assert_uint_lt(ks->n, LFX_KEYS_MAX);
		struct lfx_key *k = &ks->k[ks->n++];
		k->key_id = g->g[i].key_id;
		k->epoch = g->g[i].epoch;
		k->send_from = g->g[i].send_from;
		k->flags = g->g[i].flags;
		snprintf(k->scope, sizeof(k->scope), "%s", g->g[i].scope);
		memcpy(k->key, g->g[i].key, VEIL_KEY_BYTES);
	}
	veil__grants_free(&g);
	sodium_memzero(text, len);
	free(text);
	return true;
}

int lfx_open(const struct lfx_keyset *ks, const char *topic, const uint8_t *env, size_t len, char *pt, size_t cap,
             uint32_t *key_id)
{
	struct veil_envelope_view v;
	int rc = veil_envelope_parse(env, len, &v);
	if (rc != VEIL_OK)
		return rc;
	if (key_id)
		*key_id = v.h.key_id;
	const struct lfx_key *k = lfx_keyset_find(ks, v.h.key_id);
	if (!k)
		return VEIL_ERR_UNKNOWN_KEY;
	if (cap == 0 || v.ciphertext_len - VEIL_TAG_BYTES >= cap)
		return VEIL_ERR_INVAL;
	size_t n = 0;
	rc = veil_envelope_open(&v, topic, k->key, (uint8_t *)pt, cap - 1, &n);
	if (rc == VEIL_OK)
		pt[n] = '\0';
	return rc;
}
