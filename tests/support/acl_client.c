/* The plugin-ACL fixture (see acl_client.h). */
#include "acl_client.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "veil/veil.h"
#include "material.h"
#include "timing.h"

static int on_msg(void *ctx, char *topic, int topic_len, MQTTClient_message *m)
{
	struct acl_pc *p = ctx;
	size_t tl = topic_len > 0 ? (size_t)topic_len : strlen(topic);
	pthread_mutex_lock(&p->mu);
	p->ntotal++;
	if (p->watch && strncmp(topic, p->watch, strlen(p->watch)) == 0)
		p->nwatch++;
	snprintf(p->last_topic, sizeof(p->last_topic), "%.*s", (int)tl, topic);
	if (p->nmsgs < ACL_PC_MAX_MSGS) {
		struct acl_pc_msg *e = &p->msgs[p->nmsgs++];
		snprintf(e->topic, sizeof(e->topic), "%.*s", (int)tl, topic);
		size_t pl = m->payloadlen > 0 ? (size_t)m->payloadlen : 0;
		if (pl >= sizeof(e->payload))
			pl = sizeof(e->payload) - 1;
		memcpy(e->payload, m->payload, pl);
		e->payload[pl] = '\0';
		e->retained = m->retained;
	}
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	MQTTClient_freeMessage(&m);
	MQTTClient_free(topic);
	return 1;
}

static void on_lost(void *ctx, char *cause)
{
	struct acl_pc *p = ctx;
	(void)cause;
	pthread_mutex_lock(&p->mu);
	p->lost = true;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
}

static void on_published(void *ctx, int dt, int packet_type, MQTTProperties *props, enum MQTTReasonCodes rc)
{
	struct acl_pc *p = ctx;
	(void)dt;
	(void)packet_type;
	(void)props;
	pthread_mutex_lock(&p->mu);
	p->acks++;
	p->last_rc = (int)rc;
	if ((int)rc >= 0x80)
		p->bad_acks++;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
}

int acl_pc_connect_will_delay(struct acl_pc *p, int port, const char *id, const char *user, const char *pass,
                              const char *will_topic, const void *will_payload, int will_len, int will_retain,
                              int will_delay)
{
	memset(p, 0, sizeof(*p));
	pthread_mutex_init(&p->mu, NULL);
	veil_cond_init(&p->cv);
	char uri[64];
	snprintf(uri, sizeof(uri), "tcp://127.0.0.1:%d", port);
	MQTTClient_createOptions co = MQTTClient_createOptions_initializer;
	co.MQTTVersion = MQTTVERSION_5;
	ck_assert_int_eq(MQTTClient_createWithOptions(&p->c, uri, id, MQTTCLIENT_PERSISTENCE_NONE, NULL, &co),
	                 MQTTCLIENT_SUCCESS);
	MQTTClient_setCallbacks(p->c, p, on_lost, on_msg, NULL);
	MQTTClient_setPublished(p->c, p, on_published);
	MQTTClient_connectOptions o = MQTTClient_connectOptions_initializer5;
	o.cleanstart = 1;
	o.keepAliveInterval = 30;
	o.connectTimeout = veil_test_ms(10000) / 1000;
	o.username = user;
	char pw[VEIL_PASSWORD_MAX];
	if (pass) {
		o.password = pass;
	} else if (user) {
		snprintf(pw, sizeof(pw), "pw-%s", user);
		o.password = pw;
	}
	MQTTClient_willOptions w = MQTTClient_willOptions_initializer;
	if (will_topic) {
		w.topicName = will_topic;
		w.payload.data = will_payload;
		w.payload.len = will_len;
		w.qos = 1;
		w.retained = will_retain;
		o.will = &w;
	}
	MQTTProperties props = MQTTProperties_initializer;
	MQTTProperties will_props = MQTTProperties_initializer;
	if (will_topic && will_delay > 0) {
		MQTTProperty d = { .identifier = MQTTPROPERTY_CODE_WILL_DELAY_INTERVAL };
		d.value.integer4 = (unsigned int)will_delay;
		ck_assert_int_eq(MQTTProperties_add(&will_props, &d), 0);
	}
	MQTTResponse r = MQTTClient_connect5(p->c, &o, &props, will_topic ? &will_props : NULL);
	int rc = r.reasonCode;
	MQTTResponse_free(r);
	MQTTProperties_free(&props);
	MQTTProperties_free(&will_props);
	return rc;
}

int acl_pc_connect_will(struct acl_pc *p, int port, const char *id, const char *user, const char *pass,
                        const char *will_topic, const void *will_payload, int will_len, int will_retain)
{
	return acl_pc_connect_will_delay(p, port, id, user, pass, will_topic, will_payload, will_len, will_retain,
	                                 0);
}

int acl_pc_connect(struct acl_pc *p, int port, const char *id, const char *user)
{
	return acl_pc_connect_will(p, port, id, user, NULL, NULL, NULL, 0, 0);
}

int acl_pc_sub(struct acl_pc *p, const char *filter, int qos)
{
	MQTTSubscribe_options so = MQTTSubscribe_options_initializer;
	MQTTResponse r = MQTTClient_subscribe5(p->c, filter, qos, &so, NULL);
	int rc = r.reasonCode;
	MQTTResponse_free(r);
	return rc;
}

void acl_pc_sub_many(struct acl_pc *p, const char *const *filters, int n, bool no_local)
{
	int qos[32];
	MQTTSubscribe_options so[32];
	ck_assert_int_le(n, 32);
	for (int i = 0; i < n; i++) {
		qos[i] = 1;
		MQTTSubscribe_options init = MQTTSubscribe_options_initializer;
		so[i] = init;
		so[i].noLocal = no_local ? 1 : 0;
	}
	MQTTResponse r = MQTTClient_subscribeMany5(p->c, n, (char *const *)filters, qos, so, NULL);
	MQTTResponse_free(r);
}

int acl_pc_pub(struct acl_pc *p, const char *topic, const void *payload, int len, int qos, int retain)
{
	pthread_mutex_lock(&p->mu);
	int before = p->acks;
	pthread_mutex_unlock(&p->mu);
	MQTTClient_deliveryToken tok = 0;
	MQTTResponse r = MQTTClient_publish5(p->c, topic, len, payload, qos, retain, NULL, &tok);
	int rc = r.reasonCode;
	MQTTResponse_free(r);
	if (rc != MQTTCLIENT_SUCCESS || qos == 0)
		return rc;
	struct veil_deadline d = veil_deadline_in(5000);
	pthread_mutex_lock(&p->mu);
	while (p->acks == before && !p->lost && veil_cond_wait_until(&p->cv, &p->mu, &d))
		;
	rc = p->acks > before ? p->last_rc : -1;
	pthread_mutex_unlock(&p->mu);
	return rc;
}

int acl_pc_wait(struct acl_pc *p, int n, int base_ms)
{
	struct veil_deadline d = veil_deadline_in(base_ms);
	pthread_mutex_lock(&p->mu);
	while (p->nmsgs < n && veil_cond_wait_until(&p->cv, &p->mu, &d))
		;
	int got = p->nmsgs;
	pthread_mutex_unlock(&p->mu);
	return got;
}

static int count_locked(struct acl_pc *p, const char *topic)
{
	int k = 0;
	for (int i = 0; i < p->nmsgs; i++)
		k += !topic || strcmp(p->msgs[i].topic, topic) == 0;
	return k;
}

bool acl_pc_wait_topic(struct acl_pc *p, const char *topic, int n, int base_ms)
{
	struct veil_deadline d = veil_deadline_in(base_ms);
	pthread_mutex_lock(&p->mu);
	while (count_locked(p, topic) < n && veil_cond_wait_until(&p->cv, &p->mu, &d))
		;
	bool ok = count_locked(p, topic) >= n;
	pthread_mutex_unlock(&p->mu);
	return ok;
}

bool acl_pc_wait_last(struct acl_pc *p, const char *topic, int base_ms)
{
	struct veil_deadline d = veil_deadline_in(base_ms);
	pthread_mutex_lock(&p->mu);
	while (strcmp(p->last_topic, topic) != 0 && veil_cond_wait_until(&p->cv, &p->mu, &d))
		;
	bool ok = strcmp(p->last_topic, topic) == 0;
	pthread_mutex_unlock(&p->mu);
	return ok;
}

void acl_pc_sync(struct acl_pc *p)
{
	/* Any answer is a round trip: the filter may be refused (0x87). */
	int rc = acl_pc_sub(p, "veil-test/sync", 0);
	ck_assert_msg(rc >= 0, "no SUBACK for the sync round trip (rc %d)", rc);
}

int acl_pc_count(struct acl_pc *p, const char *topic)
{
	pthread_mutex_lock(&p->mu);
	int k = count_locked(p, topic);
	pthread_mutex_unlock(&p->mu);
	return k;
}

void acl_pc_close(struct acl_pc *p)
{
	if (!p->c)
		return;
	if (MQTTClient_isConnected(p->c))
		MQTTClient_disconnect(p->c, 100);
	MQTTClient_destroy(&p->c);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cv);
}

/* ---- env ---- */

void acl_env_init(struct acl_env *e, const char *const *users)
{
	ck_assert_int_eq(veil_init(), VEIL_OK);
	memset(e, 0, sizeof(*e));
	ck_assert_int_eq(test_mkdtemp_readable(e->dir, sizeof(e->dir)), 0);
	ck_assert_int_eq(veil_identity_generate(&e->authority), VEIL_OK);
	test_authority_save(e->authority, e->dir, e->authority_pub, sizeof(e->authority_pub));
	enum { CAP = 64 * 1024 };
	char *text = calloc(1, CAP);
	ck_assert_ptr_nonnull(text);
	size_t len = 0;
	for (size_t i = 0; users[i]; i++) {
		char pw[200];
		snprintf(pw, sizeof(pw), "pw-%s", users[i]);
		test_passwd_line(text + len, CAP - len, users[i], pw);
		len += strlen(text + len);
	}
	snprintf(e->passwd, sizeof(e->passwd), "%s/passwd", e->dir);
	ck_assert_int_eq(test_write_file(e->passwd, text, 0644), 0);
	free(text);
}

void acl_env_free(struct acl_env *e)
{
	veil_identity_free(&e->authority);
	test_rmtree(e->dir);
}

void acl_env_start_plugin(struct acl_env *e, struct test_broker *b, const char *acl_path, const char *extra)
{
	const char *plugin = test_plugin_path();
	ck_assert_msg(plugin != NULL, "VEIL_PLUGIN not set (run through ctest)");
	char conf[2048];
	snprintf(conf, sizeof(conf),
	         "allow_anonymous true\n"
	         "plugin %s\n"
	         "plugin_opt_allow_anonymous true\n"
	         "plugin_opt_authority_file %s\n"
	         "plugin_opt_password_file %s\n"
	         "plugin_opt_password_hashes_per_sec 1000\n"
	         "plugin_opt_acl_file %s\n"
	         "%s",
	         plugin, e->authority_pub, e->passwd, acl_path, extra ? extra : "");
	ck_assert_int_eq(test_broker_start(b, conf), 0);
}

void acl_start_builtin(struct test_broker *b, const char *acl_path)
{
	char conf[1024];
	snprintf(conf, sizeof(conf), "allow_anonymous true\nacl_file %s\n", acl_path);
	ck_assert_int_eq(test_broker_start(b, conf), 0);
}
