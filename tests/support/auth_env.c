/* The plugin-authentication fixture (see auth_env.h). */
#include "auth_env.h"

#include <check.h>
#include <stdio.h>
#include <string.h>

#include "material.h"
#include "proc.h"
#include "raw_mqtt.h"
#include "timing.h"

struct auth_env auth_env;

void auth_env_write(const char *path, const char *text)
{
	ck_assert_int_eq(test_write_file(path, text, 0644), 0);
}

void auth_env_path(char *out, size_t cap, const char *name)
{
	ck_assert_int_lt(snprintf(out, cap, "%s/%s", auth_env.dir, name), (int)cap);
}

void auth_env_prepare(void)
{
	struct auth_env *e = &auth_env;
	memset(e, 0, sizeof(*e));
	ck_assert_int_eq(veil_init(), VEIL_OK);
	ck_assert_int_eq(test_mkdtemp_readable(e->dir, sizeof(e->dir)), 0);
	ck_assert_int_eq(veil_identity_generate(&e->authority), VEIL_OK);
	ck_assert_int_eq(veil_identity_generate(&e->stranger), VEIL_OK);
	ck_assert_int_eq(veil_identity_generate(&e->device), VEIL_OK);
	test_authority_save(e->authority, e->dir, e->authority_pub, sizeof(e->authority_pub));
	auth_env_path(e->passwd, sizeof(e->passwd), "passwd");
	char l1[256], l2[256], text[600];
	test_passwd_line(l1, sizeof(l1), "alice", "wonderland");
	test_passwd_line(l2, sizeof(l2), "bob", "builder");
	snprintf(text, sizeof(text), "# users\n%s%s", l1, l2);
	auth_env_write(e->passwd, text);
	auth_env_path(e->revoked, sizeof(e->revoked), "revoked");
	auth_env_write(e->revoked, "# nothing revoked yet\n");
}

void auth_env_launch(const char *extra)
{
	struct auth_env *e = &auth_env;
	const char *plugin = test_plugin_path();
	ck_assert_msg(plugin != NULL, "VEIL_PLUGIN not set (run through ctest)");
	char conf[4096];
	int len = snprintf(conf, sizeof(conf),
	                   "allow_anonymous false\n"
	                   "plugin %s\n"
	                   "plugin_opt_authority_file %s\n"
	                   "plugin_opt_password_file %s\n"
	                   "plugin_opt_revocation_file %s\n"
	                   "%s",
	                   plugin, e->authority_pub, e->passwd, e->revoked, extra ? extra : "");
	ck_assert_int_lt(len, (int)sizeof(conf));
	ck_assert_int_eq(test_broker_start(&e->b, conf), 0);
	snprintf(e->uri, sizeof(e->uri), "tcp://127.0.0.1:%d", e->b.port);
}

void auth_env_start(const char *extra)
{
	auth_env_prepare();
	auth_env_launch(extra);
}

void auth_env_start_acl(const char *rules, const char *extra)
{
	char acl[300], conf[2048];
	auth_env_prepare();
	auth_env_path(acl, sizeof(acl), "acl");
	auth_env_write(acl, rules);
	ck_assert_int_lt(snprintf(conf, sizeof(conf), "plugin_opt_acl_file %s\n%s", acl, extra ? extra : ""),
	                 (int)sizeof(conf));
	auth_env_launch(conf);
}

void auth_env_mosquitto_passwd(char *out, size_t cap, const char *user, const char *password)
{
	auth_env_path(out, cap, "mosquitto.passwd");
	const char *argv[] = { "mosquitto_passwd", "-b", "-c", out, user, password, NULL };
	struct test_spawn o = { 0 };
	ck_assert_int_eq(test_wait_exit(test_spawn(argv, &o), 10000), 0);
}

void auth_env_stop(void)
{
	struct auth_env *e = &auth_env;
	test_broker_stop(&e->b);
	test_broker_cleanup(&e->b);
	veil_identity_free(&e->authority);
	veil_identity_free(&e->stranger);
	veil_identity_free(&e->device);
	ck_assert_int_eq(test_rmtree(e->dir), 0);
}

size_t auth_token(const struct veil_identity *authority, const char *client_id, const char *roles, int64_t skew_s,
                  uint8_t tok[VEIL_TOKEN_MAX])
{
	uint8_t cred[VEIL_CREDENTIAL_MAX];
	size_t cl = test_credential_make(authority, auth_env.device, client_id, roles, 3600, cred);
	return test_token_make(auth_env.device, cred, cl, client_id, skew_s, tok);
}

size_t auth_good_token(const char *client_id, uint8_t tok[VEIL_TOKEN_MAX])
{
	return auth_token(auth_env.authority, client_id, "sensor", 0, tok);
}

int auth_raw_keep5(const char *client_id, const char *roles, bool persistent, uint32_t expiry)
{
	uint8_t tok[VEIL_TOKEN_MAX];
	size_t n = auth_token(auth_env.authority, client_id, roles, 0, tok);
	struct raw_login l = { .version = 5, .client_id = client_id, .auth_method = VEIL_AUTH_METHOD,
		               .auth_data = tok, .auth_data_len = n, .persistent = persistent,
		               .session_expiry = expiry };
	int code = -1;
	int fd = raw_login_keep(auth_env.b.port, &l, 5000, &code);
	ck_assert_msg(fd >= 0, "%s: CONNACK %d", client_id, code);
	return fd;
}

/* ---- Paho clients ---- */

static void on_lost(void *ctx, char *cause)
{
	(void)cause;
	atomic_store(&((struct auth_pc *)ctx)->lost, 1);
}

static int on_msg(void *ctx, char *topic, int tlen, MQTTClient_message *m)
{
	(void)ctx;
	(void)tlen;
	MQTTClient_freeMessage(&m);
	MQTTClient_free(topic);
	return 1;
}

void auth_pc_create(struct auth_pc *p, const char *cid, int version)
{
	memset(p, 0, sizeof(*p));
	p->version = version;
	MQTTClient_createOptions co = MQTTClient_createOptions_initializer;
	co.MQTTVersion = version;
	ck_assert_int_eq(
	        MQTTClient_createWithOptions(&p->c, auth_env.uri, cid, MQTTCLIENT_PERSISTENCE_NONE, NULL, &co),
	        MQTTCLIENT_SUCCESS);
	ck_assert_int_eq(MQTTClient_setCallbacks(p->c, p, on_lost, on_msg, NULL), MQTTCLIENT_SUCCESS);
}

static int connect_timeout_s(void)
{
	return veil_test_ms(5000) / 1000;
}

int auth_pc_connect3(struct auth_pc *p, const char *cid, const char *user, const char *pw)
{
	auth_pc_create(p, cid, MQTTVERSION_3_1_1);
	MQTTClient_connectOptions o = MQTTClient_connectOptions_initializer;
	o.MQTTVersion = MQTTVERSION_3_1_1;
	o.cleansession = 1;
	o.username = user;
	o.password = pw;
	o.connectTimeout = connect_timeout_s();
	return MQTTClient_connect(p->c, &o);
}

int auth_pc_connect5(struct auth_pc *p, const char *cid, const char *user, const char *pw, const char *method,
                     const uint8_t *tok, size_t tok_len)
{
	auth_pc_create(p, cid, MQTTVERSION_5);
	MQTTClient_connectOptions o = MQTTClient_connectOptions_initializer5;
	o.cleanstart = 1;
	o.username = user;
	o.password = pw;
	o.connectTimeout = connect_timeout_s();
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

void auth_pc_close(struct auth_pc *p)
{
	if (!p->c)
		return;
	if (MQTTClient_isConnected(p->c))
		MQTTClient_disconnect(p->c, 1000);
	MQTTClient_destroy(&p->c);
}

bool auth_pc_wait_lost(struct auth_pc *p, int base_ms)
{
	return VEIL_WAIT_UNTIL(atomic_load(&p->lost) || !MQTTClient_isConnected(p->c), base_ms);
}

bool auth_pc_alive(struct auth_pc *p)
{
	if (atomic_load(&p->lost) || !MQTTClient_isConnected(p->c))
		return false;
	/* Any SUBACK answers (these brokers have no ACL: refused, 0x80/0x87). */
	if (p->version == MQTTVERSION_5) {
		MQTTSubscribe_options so = MQTTSubscribe_options_initializer;
		MQTTResponse r = MQTTClient_subscribe5(p->c, "veil-test/alive", 0, &so, NULL);
		int rc = r.reasonCode;
		MQTTResponse_free(r);
		return rc >= 0 && !atomic_load(&p->lost);
	}
	int rc = MQTTClient_subscribe(p->c, "veil-test/alive", 0);
	return rc >= 0 && !atomic_load(&p->lost);
}

int auth_login3(const char *cid, const char *user, const char *pw)
{
	int rc = -1;
	for (int attempt = 0; attempt < 2 && rc == -1; attempt++) {
		struct auth_pc p;
		rc = auth_pc_connect3(&p, cid, user, pw);
		auth_pc_close(&p);
	}
	return rc;
}

int auth_login5(const char *cid, const char *user, const char *pw)
{
	int rc = -1;
	for (int attempt = 0; attempt < 2 && rc == -1; attempt++) {
		struct auth_pc p;
		rc = auth_pc_connect5(&p, cid, user, pw, NULL, NULL, 0);
		auth_pc_close(&p);
	}
	return rc;
}

int auth_login5_token(const char *cid, const uint8_t *tok, size_t n)
{
	struct auth_pc p;
	int rc = auth_pc_connect5(&p, cid, NULL, NULL, VEIL_AUTH_METHOD, tok, n);
	auth_pc_close(&p);
	return rc;
}

bool auth_log_has(const char *needle)
{
	return test_broker_log_contains(&auth_env.b, needle);
}

void auth_expect_log(const char *needle)
{
	ck_assert_msg(test_broker_log_wait(&auth_env.b, needle, 5000), "broker log lacks '%s'", needle);
}
