/* The operator's console fixture (see ops_fixture.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <check.h>

#include "broker.h"
#include "material.h"
#include "ops_fixture.h"
#include "timing.h"

#define CONTROL_TOPIC "$CONTROL/veil/v1"
#define RESPONSE_TOPIC "$CONTROL/veil/v1/response"

void opsfx_path(const struct opsfx *f, const char *name, char *out, size_t cap)
{
	ck_assert_int_lt(snprintf(out, cap, "%s/%s", f->c.dir, name), (int)cap);
}

void opsfx_setup(struct opsfx *f, const char *extra)
{
	memset(f, 0, sizeof(*f));
	const char *plugin = test_plugin_path();
	ck_assert_msg(plugin != NULL, "VEIL_PLUGIN not set (run through ctest)");
	cfx_setup_files(&f->c);
	test_device_save_roles(f->c.authority, f->c.dir, "admin-1", "admin-1", "ops,veil-admin");
	test_device_save_roles(f->c.authority, f->c.dir, "admin-2", "admin-2", "veil-admin");
	test_device_save_roles(f->c.authority, f->c.dir, "dev-1", "dev-1", "sensor");
	test_device_save_roles(f->c.authority, f->c.dir, "dev-2", "dev-2", "sensor");
	ck_assert_int_eq(chmod(f->c.dir, 0755), 0);
	test_authority_save(f->c.authority, f->c.dir, f->auth_pub, sizeof(f->auth_pub));
	opsfx_path(f, "acl", f->acl, sizeof(f->acl));
	ck_assert_int_eq(test_write_file(f->acl, OPSFX_ACL, 0644), 0);
	char line[512];
	test_passwd_line(line, sizeof(line), OPSFX_METRICS_USER, OPSFX_METRICS_PASSWORD);
	opsfx_path(f, "passwd", f->passwd, sizeof(f->passwd));
	ck_assert_int_eq(test_write_file(f->passwd, line, 0600), 0);
	opsfx_path(f, "revoked", f->revoked, sizeof(f->revoked));
	ck_assert_int_eq(test_write_file(f->revoked, "# the operator's list\n", 0644), 0);
	opsfx_path(f, "state", f->state, sizeof(f->state));
	opsfx_path(f, "ctl.keyring", f->ctl_keyring, sizeof(f->ctl_keyring));
	ck_assert_int_eq(test_write_file(f->ctl_keyring, "policy $CONTROL/veil/v1/# plaintext\n", 0600), 0);
	int n = snprintf(f->extra, sizeof(f->extra),
	                 "plugin %s\n"
	                 "plugin_opt_authority_file %s\n"
	                 "plugin_opt_acl_file %s\n"
	                 "plugin_opt_password_file %s\n"
	                 "plugin_opt_revocation_file %s\n"
	                 "plugin_opt_state_dir %s\n"
	                 "plugin_opt_sys_interval 1\n"
	                 /* Password logins here test the API and the refusals'
	                  * counts, not the limits (docs/AUTH.md), whose verdicts
	                  * depend on time: a failed login would block its user and
	                  * address for 250 ms (alice logs in right after her
	                  * refusal and addPasswordUser's hash), and the default
	                  * 200 ms of Argon2id a second refuses a second login
	                  * "busy" when a slow or loaded machine needs more than
	                  * 100 ms a hash. A block of 1 ms has ended before the next
	                  * password login (after a refusal, the tests send admin
	                  * commands first); the budget is the most allowed, a
	                  * second of hashing a second. */
	                 "plugin_opt_backoff_base_ms 1\n"
	                 "plugin_opt_backoff_max_ms 1\n"
	                 "plugin_opt_password_ms_per_sec 1000\n"
	                 "%s",
	                 plugin, f->auth_pub, f->acl, f->passwd, f->revoked, f->state, extra ? extra : "");
	ck_assert_int_lt(n, (int)sizeof(f->extra));
	cfx_start(&f->c, f->extra);
	snprintf(f->port, sizeof(f->port), "%d", f->c.broker.port);
}

void opsfx_teardown(struct opsfx *f)
{
	cfx_teardown(&f->c);
}

static void open_with(struct opsfx *f, struct opsfx_session *s, bool subscribe, const char *keyring)
{
	cfx_sink_init(&s->sink);
	s->fo.o.version = VEIL_CLIENT_OPTIONS_VERSION;
	s->fo.o.server_uri = f->c.uri;
	s->fo.o.client_id = s->client_id;
	s->fo.o.mqtt_version = VEIL_MQTT_5;
	s->fo.o.keyring_path = keyring ? keyring : f->ctl_keyring;
	s->fo.o.key_service = VEIL_KEYS_OFF;
	s->fo.o.connect_timeout_s = veil_test_ms(10000) / 1000;
	ck_assert_int_eq(veil_client_new(&s->fo.o, &s->c), VEIL_OK);
	ck_assert_int_eq(veil_client_set_callbacks(s->c, &s->sink, cfx_on_message, cfx_on_refusal, cfx_on_lost), VEIL_OK);
	ck_assert_int_eq(veil_client_connect(s->c), VEIL_OK);
	if (subscribe)
		ck_assert_int_eq(opsfx_subscribe(s, RESPONSE_TOPIC), VEIL_OK);
}

static void open_device(struct opsfx *f, struct opsfx_session *s, const char *stem, bool subscribe,
                        const char *keyring)
{
	memset(s, 0, sizeof(*s));
	snprintf(s->client_id, sizeof(s->client_id), "%s", stem);
	snprintf(s->fo.key, sizeof(s->fo.key), "%s/%s.key", f->c.dir, stem);
	snprintf(s->fo.cred, sizeof(s->fo.cred), "%s/%s.cred", f->c.dir, stem);
	s->fo.o.identity_path = s->fo.key;
	s->fo.o.credential_path = s->fo.cred;
	s->fo.o.auth = VEIL_AUTH_TOKEN;
	open_with(f, s, subscribe, keyring);
}

void opsfx_open(struct opsfx *f, struct opsfx_session *s, const char *stem, bool subscribe)
{
	open_device(f, s, stem, subscribe, NULL);
}

void opsfx_open_keyring(struct opsfx *f, struct opsfx_session *s, const char *stem, const char *keyring)
{
	open_device(f, s, stem, false, keyring);
}

void opsfx_open_password(struct opsfx *f, struct opsfx_session *s, const char *user, const char *password)
{
	memset(s, 0, sizeof(*s));
	snprintf(s->client_id, sizeof(s->client_id), "%s", user);
	s->fo.o.auth = VEIL_AUTH_PASSWORD;
	s->fo.o.username = user;
	s->fo.o.password = password;
	open_with(f, s, false, NULL);
}

void opsfx_close(struct opsfx_session *s)
{
	if (s->c) {
		veil_client_disconnect(s->c, 1000);
		veil_client_free(&s->c);
	}
	cfx_sink_destroy(&s->sink);
}

int opsfx_subscribe(struct opsfx_session *s, const char *filter)
{
	return veil_client_subscribe(s->c, filter, 1);
}

int opsfx_publish(struct opsfx_session *s, const char *topic, const void *payload, size_t len, int *reason)
{
	int token = 0;
	*reason = 0;
	int rc = veil_client_publish(s->c, topic, payload, len, 1, false, &token);
	if (rc != VEIL_OK)
		return rc;
	return veil_client_wait(s->c, token, (unsigned long)veil_test_ms(10000), reason);
}

bool opsfx_connected(struct opsfx_session *s)
{
	return veil_client_is_connected(s->c);
}

bool opsfx_gone(struct opsfx_session *s, int base_ms)
{
	return cfx_wait(&s->sink, &s->sink.lost, 1, base_ms);
}

static int login_with(struct opsfx *f, struct veil_client_options *o)
{
	o->version = VEIL_CLIENT_OPTIONS_VERSION;
	o->server_uri = f->c.uri;
	o->mqtt_version = VEIL_MQTT_5;
	o->keyring_path = f->ctl_keyring;
	o->key_service = VEIL_KEYS_OFF;
	o->connect_timeout_s = veil_test_ms(10000) / 1000;
	struct veil_client *c = NULL;
	ck_assert_int_eq(veil_client_new(o, &c), VEIL_OK);
	int rc = veil_client_connect(c);
	if (rc == VEIL_OK)
		veil_client_disconnect(c, 1000);
	veil_client_free(&c);
	return rc;
}

int opsfx_login_rc(struct opsfx *f, const char *stem)
{
	char key[512], cred[512];
	snprintf(key, sizeof(key), "%s/%s.key", f->c.dir, stem);
	snprintf(cred, sizeof(cred), "%s/%s.cred", f->c.dir, stem);
	struct veil_client_options o = { .client_id = stem, .identity_path = key, .credential_path = cred,
		                         .auth = VEIL_AUTH_TOKEN };
	return login_with(f, &o);
}

int opsfx_password_rc(struct opsfx *f, const char *user, const char *password)
{
	struct veil_client_options o = { .client_id = user, .auth = VEIL_AUTH_PASSWORD, .username = user,
		                         .password = password };
	return login_with(f, &o);
}

int opsfx_send(struct opsfx_session *s, const char *payload, size_t len, int *reason)
{
	return opsfx_publish(s, CONTROL_TOPIC, payload, len, reason);
}

cJSON *opsfx_call(struct opsfx_session *s, const char *payload)
{
	pthread_mutex_lock(&s->sink.lock);
	size_t n0 = s->sink.n;
	pthread_mutex_unlock(&s->sink.lock);
	int reason = 0;
	ck_assert_int_eq(opsfx_send(s, payload, strlen(payload), &reason), VEIL_OK);
	ck_assert_msg(cfx_wait(&s->sink, &s->sink.n, n0 + 1, 10000), "no response to %.200s", payload);
	const struct cfx_msg *m = &s->sink.msgs[n0];
	ck_assert_str_eq(m->topic, RESPONSE_TOPIC);
	ck_assert(m->plaintext);
	cJSON *t = cJSON_ParseWithLength((const char *)m->payload, m->len);
	ck_assert_msg(t != NULL, "response is not JSON: %.*s", (int)m->len, m->payload);
	return t;
}

const cJSON *opsfx_one(struct opsfx_session *s, const char *payload, cJSON **tree)
{
	*tree = opsfx_call(s, payload);
	const cJSON *arr = cJSON_GetObjectItemCaseSensitive(*tree, "responses");
	ck_assert_int_eq(cJSON_GetArraySize(arr), 1);
	return cJSON_GetArrayItem(arr, 0);
}

bool opsfx_no_response(struct opsfx_session *admin, size_t seen_before)
{
	cJSON *t = opsfx_call(admin, "{\"commands\":[{\"command\":\"getCounters\",\"correlationData\":\"marker\"}]}");
	const cJSON *r = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(t, "responses"), 0);
	bool marker = !strcmp(opsfx_str(r, "correlationData"), "marker");
	cJSON_Delete(t);
	pthread_mutex_lock(&admin->sink.lock);
	size_t n = admin->sink.n;
	pthread_mutex_unlock(&admin->sink.lock);
	/* The marker's response is the only one since seen_before. */
	return marker && n == seen_before + 1;
}

const char *opsfx_str(const cJSON *o, const char *name)
{
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, name);
	return cJSON_IsString(j) ? j->valuestring : "";
}

const char *opsfx_reason(const cJSON *resp)
{
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(resp, "error");
	return e ? opsfx_str(resp, "reason") : NULL;
}
