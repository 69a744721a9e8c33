/*
 * Shared by the plugin ACL integration tests (check_plugin_acl*.c): a real
 * Paho MQTTClient (MQTT 5) that records what it receives, the PUBACK and
 * SUBACK reason codes the broker returns, and broker configs for the
 * plugin and for Mosquitto's built-in acl_file. Header-only so each test
 * program stays one file in the glob.
 */
#ifndef CHECK_PLUGIN_ACL_FIXTURE_H
#define CHECK_PLUGIN_ACL_FIXTURE_H

#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include <MQTTClient.h>
#include <sodium.h>

#include "veil/veil.h"
#include "veil/identity.h"
#include "broker.h"

#define PC_MAX_MSGS 512

/* LeakSanitizer (ASan builds): Paho C 1.3.11's MQTTClient_connect5 leaks its
 * copy of the CONNACK properties (MQTTProperties_copy) in this client's
 * usage. Paho has no frame pointers, so the default unwinder only sees the
 * library: allocations made inside Paho (third-party test client code, not
 * Veil's) are suppressed for these test programs only. */
__attribute__((visibility("default"))) const char *__lsan_default_suppressions(void);
__attribute__((visibility("default"))) const char *__lsan_default_suppressions(void)
{
	return "leak:MQTTProperties_copy\nleak:libpaho-mqtt3\n";
}

struct pc_msg {
	char topic[128];
	char payload[64];
	int retained;
};

struct pc {
	MQTTClient c;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct pc_msg msgs[PC_MAX_MSGS];
	int nmsgs;
	int acks;           /* PUBACKs received */
	int last_rc;        /* reason code of the last PUBACK */
	int bad_acks;       /* PUBACKs with a reason >= 0x80 */
	bool lost;
	int ntotal;         /* every message received, even past PC_MAX_MSGS */
	const char *watch;  /* topic prefix counted in nwatch (may be NULL) */
	int nwatch;
};

static void pc_sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

static int pc_on_msg(void *ctx, char *topic, int topic_len, MQTTClient_message *m)
{
	struct pc *p = ctx;
	pthread_mutex_lock(&p->mu);
	p->ntotal++;
	if (p->watch && strncmp(topic, p->watch, strlen(p->watch)) == 0)
		p->nwatch++;
	if (p->nmsgs < PC_MAX_MSGS) {
		struct pc_msg *e = &p->msgs[p->nmsgs++];
		size_t tl = topic_len > 0 ? (size_t)topic_len : strlen(topic);
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

static void pc_on_lost(void *ctx, char *cause)
{
	struct pc *p = ctx;
	(void)cause;
	pthread_mutex_lock(&p->mu);
	p->lost = true;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
}

static void pc_on_published(void *ctx, int dt, int packet_type, MQTTProperties *props, enum MQTTReasonCodes rc)
{
	struct pc *p = ctx;
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

/* Connect with MQTT 5. user may be NULL; pass NULL means "pw-<user>".
 * will_topic (may be NULL) sets a QoS 1 Will, sent will_delay seconds after
 * the connection ends (MQTT 5 Will Delay Interval; 0: at once). Returns the
 * CONNACK reason code (0 = accepted). */
__attribute__((unused)) static int pc_connect_will_delay(struct pc *p, int port, const char *id, const char *user,
                                                         const char *pass, const char *will_topic,
                                                         const void *will_payload, int will_len, int will_retain,
                                                         int will_delay)
{
	memset(p, 0, sizeof(*p));
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	char uri[64];
	snprintf(uri, sizeof(uri), "tcp://127.0.0.1:%d", port);
	MQTTClient_createOptions co = MQTTClient_createOptions_initializer;
	co.MQTTVersion = MQTTVERSION_5;
	ck_assert_int_eq(MQTTClient_createWithOptions(&p->c, uri, id, MQTTCLIENT_PERSISTENCE_NONE, NULL, &co),
	                 MQTTCLIENT_SUCCESS);
	MQTTClient_setCallbacks(p->c, p, pc_on_lost, pc_on_msg, NULL);
	MQTTClient_setPublished(p->c, p, pc_on_published);
	MQTTClient_connectOptions o = MQTTClient_connectOptions_initializer5;
	o.cleanstart = 1;
	o.keepAliveInterval = 30;
	o.username = user;
	/* Users log in with the plugin's password file (see pa_env_init). */
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

__attribute__((unused)) static int pc_connect_will(struct pc *p, int port, const char *id, const char *user,
                                                   const char *pass, const char *will_topic,
                                                   const void *will_payload, int will_len, int will_retain)
{
	return pc_connect_will_delay(p, port, id, user, pass, will_topic, will_payload, will_len, will_retain, 0);
}

static int pc_connect(struct pc *p, int port, const char *id, const char *user)
{
	return pc_connect_will(p, port, id, user, NULL, NULL, NULL, 0, 0);
}

/* SUBACK reason: 0/1/2 granted QoS, >= 0x80 refused. */
static int pc_sub(struct pc *p, const char *filter, int qos)
{
	MQTTSubscribe_options so = MQTTSubscribe_options_initializer;
	MQTTResponse r = MQTTClient_subscribe5(p->c, filter, qos, &so, NULL);
	int rc = r.reasonCode;
	MQTTResponse_free(r);
	return rc;
}

/* Subscribe to n filters in one SUBSCRIBE (one round trip); no_local: do
 * not receive our own publications. */
__attribute__((unused)) static void pc_sub_many(struct pc *p, const char *const *filters, int n, bool no_local)
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

/* Publish; for QoS 1 wait for the PUBACK and return its reason code. */
static int pc_pub(struct pc *p, const char *topic, const void *payload, int len, int qos, int retain)
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
	pthread_mutex_lock(&p->mu);
	struct timespec dl;
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += 5;
	while (p->acks == before && !p->lost)
		if (pthread_cond_timedwait(&p->cv, &p->mu, &dl) != 0)
			break;
	rc = p->acks > before ? p->last_rc : -1;
	pthread_mutex_unlock(&p->mu);
	return rc;
}

/* Wait until at least n messages arrived or timeout_ms passed; returns count. */
static int pc_wait(struct pc *p, int n, int timeout_ms)
{
	pthread_mutex_lock(&p->mu);
	struct timespec dl;
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += timeout_ms / 1000;
	dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (dl.tv_nsec >= 1000000000L) {
		dl.tv_sec++;
		dl.tv_nsec -= 1000000000L;
	}
	while (p->nmsgs < n)
		if (pthread_cond_timedwait(&p->cv, &p->mu, &dl) != 0)
			break;
	int got = p->nmsgs;
	pthread_mutex_unlock(&p->mu);
	return got;
}

static int pc_count(struct pc *p, const char *topic)
{
	int k = 0;
	pthread_mutex_lock(&p->mu);
	for (int i = 0; i < p->nmsgs; i++)
		k += !topic || strcmp(p->msgs[i].topic, topic) == 0;
	pthread_mutex_unlock(&p->mu);
	return k;
}

static void pc_close(struct pc *p)
{
	if (!p->c)
		return;
	if (MQTTClient_isConnected(p->c))
		MQTTClient_disconnect(p->c, 100);
	MQTTClient_destroy(&p->c);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cv);
}

/* Files the plugin's authentication needs: an authority (for credential
 * logins), and a password file where every user has password "pw-<user>"
 * (cheap Argon2id parameters: the tests measure the ACL, not the hash). */
struct pa_env {
	char dir[256];
	char passwd[300];
	char authority_pub[300];
	struct veil_identity *authority;
};

static void pa_mkdir(char *dir, size_t cap);

static void pa_env_init(struct pa_env *e, const char *const *users)
{
	ck_assert_int_eq(veil_init(), VEIL_OK);
	memset(e, 0, sizeof(*e));
	pa_mkdir(e->dir, sizeof(e->dir));
	ck_assert_int_eq(veil_identity_generate(&e->authority), VEIL_OK);
	uint8_t pk[VEIL_PK_BYTES];
	veil_identity_public(e->authority, pk);
	snprintf(e->authority_pub, sizeof(e->authority_pub), "%s/authority.pub", e->dir);
	ck_assert_int_eq(veil_public_key_save(pk, e->authority_pub), VEIL_OK);
	ck_assert_int_eq(chmod(e->authority_pub, 0644), 0);
	char *text = calloc(1, 64 * 1024);
	size_t len = 0;
	for (size_t i = 0; users[i]; i++) {
		char pw[200], h[crypto_pwhash_STRBYTES];
		snprintf(pw, sizeof(pw), "pw-%s", users[i]);
		ck_assert_int_eq(crypto_pwhash_str(h, pw, strlen(pw), crypto_pwhash_OPSLIMIT_MIN,
		                                   crypto_pwhash_MEMLIMIT_MIN), 0);
		len += (size_t)snprintf(text + len, 64 * 1024 - len, "%s:%s\n", users[i], h);
	}
	snprintf(e->passwd, sizeof(e->passwd), "%s/passwd", e->dir);
	ck_assert_int_eq(test_write_file(e->passwd, text, 0644), 0);
	free(text);
}

static void pa_env_free(struct pa_env *e)
{
	veil_identity_free(&e->authority);
	char cmd[400];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", e->dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", e->dir);
}

/* Broker with the plugin (authentication + the rules file acl_path);
 * anonymous clients are allowed by the plugin, users log in with the
 * password file, devices with credential tokens. extra is appended. */
static void pa_start_plugin(struct pa_env *e, struct test_broker *b, const char *acl_path, const char *extra)
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

/* A temp dir the broker can read after it drops root privileges. */
static void pa_mkdir(char *dir, size_t cap)
{
	ck_assert_int_eq(test_mkdtemp(dir, cap), 0);
	ck_assert_int_eq(chmod(dir, 0755), 0);
}

__attribute__((unused)) static void pa_start_builtin(struct test_broker *b, const char *acl_path)
{
	char conf[1024];
	snprintf(conf, sizeof(conf), "allow_anonymous true\nacl_file %s\n", acl_path);
	ck_assert_int_eq(test_broker_start(b, conf), 0);
}

#endif
