/*
 * Shared by the plugin authentication tests (check_plugin_auth*.c): a temp
 * dir with an authority, a stranger authority and a device identity, the
 * password file (alice, bob) and an empty revocation list, a real broker
 * with mosquitto_veil.so, Paho MQTT 3.1.1/5 clients, and log waits.
 * Header-only so each test program stays one file in the glob.
 */
#ifndef CHECK_PLUGIN_AUTH_FIXTURE_H
#define CHECK_PLUGIN_AUTH_FIXTURE_H

#include <check.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <MQTTClient.h>
#include <sodium.h>

#include "veil/veil.h"
#include "broker.h"
#include "check_plugin_auth_raw.h"

/* The test programs link both Paho libraries (paho-mqtt3as and -3cs, see
 * tests/CMakeLists.txt); each keeps its own heap bookkeeping, and MQTT 5
 * property copies made by one are released by the other, which LeakSanitizer
 * reports as leaks inside Paho. Those (and only frames in Paho) are
 * suppressed; the plugin runs in the broker process, checked separately. */
__attribute__((visibility("default"), used)) const char *__lsan_default_suppressions(void);
__attribute__((visibility("default"), used)) const char *__lsan_default_suppressions(void)
{
	return "leak:libpaho-mqtt3as.so\nleak:libpaho-mqtt3cs.so\n";
}

/* CONNACK codes Mosquitto 2.0.11 sends for MOSQ_ERR_AUTH. */
#define V3_NOT_AUTHORIZED 5
#define V5_NOT_AUTHORIZED 135
#define V5_BAD_AUTH_METHOD 140

struct env {
	char dir[256];
	char authority_pub[300], passwd[300], revoked[300];
	struct veil_identity *authority, *stranger, *device;
	struct test_broker b;
	char uri[64];
	char log[300]; /* the broker's log (harness: log_dest file) */
};
static struct env E;

/* Readable by whichever user the broker runs as (the harness keeps the
 * test's user; a deployment would chown the files to mosquitto). */
static inline void write_or_die(const char *path, const char *text)
{
	ck_assert_int_eq(test_write_file(path, text, 0644), 0);
}

/* Credential for client_id signed by authority for device, valid until now + valid_s. */
static inline size_t make_cred(const struct veil_identity *authority, const struct veil_identity *device,
                        const char *client_id, int64_t valid_s, const char *roles, uint8_t *out)
{
	struct veil_credential c;
	memset(&c, 0, sizeof(c));
	veil_identity_public(device, c.device_pk);
	snprintf(c.client_id, sizeof(c.client_id), "%s", client_id);
	snprintf(c.roles, sizeof(c.roles), "%s", roles ? roles : "");
	uint64_t now = (uint64_t)time(NULL);
	c.issued_at = now - 3600;
	c.expires_at = (uint64_t)((int64_t)now + valid_s);
	size_t n = 0;
	ck_assert_int_eq(veil_credential_issue(authority, &c, out, VEIL_CREDENTIAL_MAX, &n), VEIL_OK);
	return n;
}

static inline size_t make_token(const uint8_t *cred, size_t cred_len, const char *client_id, int64_t skew_s,
                                uint8_t *tok)
{
	size_t n = 0;
	uint64_t t = (uint64_t)((int64_t)time(NULL) + skew_s);
	ck_assert_int_eq(veil_token_create(E.device, cred, cred_len, client_id, t, tok, VEIL_TOKEN_MAX, &n), VEIL_OK);
	return n;
}

/* The usual login: a fresh token for client_id from the trusted authority. */
static inline size_t good_token(const char *client_id, uint8_t *tok)
{
	uint8_t cred[VEIL_CREDENTIAL_MAX];
	size_t cl = make_cred(E.authority, E.device, client_id, 3600, "sensor", cred);
	return make_token(cred, cl, client_id, 0, tok);
}

static inline void to_password(const uint8_t *tok, size_t n, char *pw)
{
	ck_assert_int_eq(veil_token_to_password(tok, n, pw, VEIL_PASSWORD_MAX), VEIL_OK);
}

static inline void hash_line(char *out, size_t cap, const char *user, const char *pw)
{
	char h[crypto_pwhash_STRBYTES];
	ck_assert_int_eq(crypto_pwhash_str(h, pw, strlen(pw), crypto_pwhash_OPSLIMIT_INTERACTIVE,
	                                   crypto_pwhash_MEMLIMIT_INTERACTIVE),
	                 0);
	snprintf(out, cap, "%s:%s\n", user, h);
}

static inline void env_start(const char *extra)
{
	memset(&E, 0, sizeof(E));
	ck_assert_int_eq(veil_init(), VEIL_OK);
	ck_assert_int_eq(test_mkdtemp(E.dir, sizeof(E.dir)), 0);
	ck_assert_int_eq(chmod(E.dir, 0755), 0);
	ck_assert_int_eq(veil_identity_generate(&E.authority), VEIL_OK);
	ck_assert_int_eq(veil_identity_generate(&E.stranger), VEIL_OK);
	ck_assert_int_eq(veil_identity_generate(&E.device), VEIL_OK);
	uint8_t pk[VEIL_PK_BYTES];
	veil_identity_public(E.authority, pk);
	snprintf(E.authority_pub, sizeof(E.authority_pub), "%s/authority.pub", E.dir);
	ck_assert_int_eq(veil_public_key_save(pk, E.authority_pub), VEIL_OK);
	ck_assert_int_eq(chmod(E.authority_pub, 0644), 0);
	snprintf(E.passwd, sizeof(E.passwd), "%s/passwd", E.dir);
	char l1[256], l2[256], text[600];
	hash_line(l1, sizeof(l1), "alice", "wonderland");
	hash_line(l2, sizeof(l2), "bob", "builder");
	snprintf(text, sizeof(text), "# users\n%s%s", l1, l2);
	write_or_die(E.passwd, text);
	snprintf(E.revoked, sizeof(E.revoked), "%s/revoked", E.dir);
	write_or_die(E.revoked, "# nothing revoked yet\n");
	char conf[2048];
	snprintf(conf, sizeof(conf),
	         "allow_anonymous false\n"
	         "plugin %s\n"
	         "plugin_opt_authority_file %s\n"
	         "plugin_opt_password_file %s\n"
	         "plugin_opt_revocation_file %s\n"
	         "%s",
	         test_plugin_path(), E.authority_pub, E.passwd, E.revoked, extra ? extra : "");
	ck_assert_int_eq(test_broker_start(&E.b, conf), 0);
	snprintf(E.log, sizeof(E.log), "%s", E.b.log);
	snprintf(E.uri, sizeof(E.uri), "tcp://127.0.0.1:%d", E.b.port);
}

static inline void env_stop(void)
{
	test_broker_stop(&E.b);
	test_broker_cleanup(&E.b);
	veil_identity_free(&E.authority);
	veil_identity_free(&E.stranger);
	veil_identity_free(&E.device);
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", E.dir);
	ck_assert_int_eq(system(cmd), 0);
}

/* ---- Paho clients ---- */

struct pc {
	MQTTClient c;
	atomic_int lost;
};

static inline void on_lost(void *ctx, char *cause)
{
	(void)cause;
	atomic_store(&((struct pc *)ctx)->lost, 1);
}

static inline int on_msg(void *ctx, char *topic, int tlen, MQTTClient_message *m)
{
	(void)ctx;
	(void)tlen;
	MQTTClient_freeMessage(&m);
	MQTTClient_free(topic);
	return 1;
}

static inline void pc_create(struct pc *p, const char *cid, int version)
{
	memset(p, 0, sizeof(*p));
	MQTTClient_createOptions co = MQTTClient_createOptions_initializer;
	co.MQTTVersion = version;
	ck_assert_int_eq(MQTTClient_createWithOptions(&p->c, E.uri, cid, MQTTCLIENT_PERSISTENCE_NONE, NULL, &co),
	                 MQTTCLIENT_SUCCESS);
	ck_assert_int_eq(MQTTClient_setCallbacks(p->c, p, on_lost, on_msg, NULL), MQTTCLIENT_SUCCESS);
}

/* MQTT 3.1.1 CONNECT; returns the CONNACK code (0 = accepted). */
static inline int pc_connect3(struct pc *p, const char *cid, const char *user, const char *pw)
{
	pc_create(p, cid, MQTTVERSION_3_1_1);
	MQTTClient_connectOptions o = MQTTClient_connectOptions_initializer;
	o.MQTTVersion = MQTTVERSION_3_1_1;
	o.cleansession = 1;
	o.username = user;
	o.password = pw;
	o.connectTimeout = 5;
	return MQTTClient_connect(p->c, &o);
}

/* MQTT 5 CONNECT, with the Veil auth method when tok is set. */
static inline int pc_connect5(struct pc *p, const char *cid, const char *user, const char *pw, const char *method,
                       const uint8_t *tok, size_t tok_len)
{
	pc_create(p, cid, MQTTVERSION_5);
	MQTTClient_connectOptions o = MQTTClient_connectOptions_initializer5;
	o.cleanstart = 1;
	o.username = user;
	o.password = pw;
	o.connectTimeout = 5;
	MQTTProperties props = MQTTProperties_initializer;
	if (method) {
		MQTTProperty m;
		memset(&m, 0, sizeof(m));
		m.identifier = MQTTPROPERTY_CODE_AUTHENTICATION_METHOD;
		m.value.data.data = (char *)method;
		m.value.data.len = (int)strlen(method);
		ck_assert_int_eq(MQTTProperties_add(&props, &m), 0);
		if (tok) {
			MQTTProperty d;
			memset(&d, 0, sizeof(d));
			d.identifier = MQTTPROPERTY_CODE_AUTHENTICATION_DATA;
			d.value.data.data = (char *)tok;
			d.value.data.len = (int)tok_len;
			ck_assert_int_eq(MQTTProperties_add(&props, &d), 0);
		}
	}
	MQTTResponse r = MQTTClient_connect5(p->c, &o, &props, NULL);
	int rc = r.reasonCode;
	MQTTResponse_free(r);
	MQTTProperties_free(&props);
	return rc;
}

static inline void pc_close(struct pc *p)
{
	if (!p->c)
		return;
	if (MQTTClient_isConnected(p->c))
		MQTTClient_disconnect(p->c, 1000);
	MQTTClient_destroy(&p->c);
}

/* One-shot helpers: connect, close, return the code. Paho occasionally
 * reports a refused CONNECT as a bare failure (-1) when the broker closes
 * right after its CONNACK; such an attempt is retried once (with a fresh
 * token where one is needed), so every assertion is on a real CONNACK code. */
static inline int login3(const char *cid, const char *user, const char *pw)
{
	int rc = -1;
	for (int attempt = 0; attempt < 2 && rc == -1; attempt++) {
		struct pc p;
		rc = pc_connect3(&p, cid, user, pw);
		pc_close(&p);
	}
	return rc;
}

static inline int login5_token(const char *cid, const uint8_t *tok, size_t n)
{
	struct pc p;
	int rc = pc_connect5(&p, cid, NULL, NULL, VEIL_AUTH_METHOD, tok, n);
	pc_close(&p);
	return rc;
}

static inline int login5(const char *cid, const char *user, const char *pw)
{
	int rc = -1;
	for (int attempt = 0; attempt < 2 && rc == -1; attempt++) {
		struct pc p;
		rc = pc_connect5(&p, cid, user, pw, NULL, NULL, 0);
		pc_close(&p);
	}
	return rc;
}

/* Wait until the broker drops p (true) or timeout_ms passes (false). */
static inline bool pc_wait_lost(struct pc *p, int timeout_ms)
{
	for (int t = 0; t < timeout_ms; t += 50) {
		if (atomic_load(&p->lost) || !MQTTClient_isConnected(p->c))
			return true;
		usleep(50 * 1000);
	}
	return false;
}

static inline bool log_has(const char *needle)
{
	FILE *f = fopen(E.log, "r");
	if (!f)
		return false;
	char line[4096];
	bool found = false;
	while (!found && fgets(line, sizeof(line), f))
		found = strstr(line, needle) != NULL;
	fclose(f);
	return found;
}

static inline bool log_wait(const char *needle, int timeout_ms)
{
	for (int t = 0; t <= timeout_ms; t += 50) {
		if (log_has(needle))
			return true;
		usleep(50 * 1000);
	}
	return false;
}

static inline void expect_log(const char *needle)
{
	ck_assert_msg(log_wait(needle, 5000), "broker log lacks '%s'", needle);
}

#endif
