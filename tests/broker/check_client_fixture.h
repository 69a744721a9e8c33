/*
 * Shared by the libveil integration tests (check_client*.c): a temp dir with
 * an authority, device identities and credentials made with the core API, a
 * keyring file (mode 0600), a plain broker, a collector for what libveil
 * delivers or refuses, and a plain Paho "eavesdropper" on '#'. Header-only so
 * each test program stays one file in the glob.
 */
#ifndef CHECK_CLIENT_FIXTURE_H
#define CHECK_CLIENT_FIXTURE_H

#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>
#include <MQTTClient.h>

#include "veil/veil.h"
#include "veil/client.h"
#include "broker.h"

#define FX_MAX_MSGS 64
/* Not every test program uses every helper. */
#define FX_FN static __attribute__((unused))

struct fx {
	char dir[256];
	char uri[64];
	struct test_broker broker;
	struct veil_identity *authority;
	uint8_t k_sensors[VEIL_KEY_BYTES], k_secure[VEIL_KEY_BYTES];
	char keyring[300];           /* receiver/sender keyring */
	char keyring_nosign[300];    /* same keys, 'secure/#' without the signed policy */
};

FX_FN void fx_b64(char *out, size_t cap, const uint8_t *in, size_t n)
{
	sodium_bin2base64(out, cap, in, n, sodium_base64_VARIANT_ORIGINAL);
}

FX_FN void fx_write_keyring(struct fx *f, const char *path, bool secure_signed)
{
	uint8_t apk[VEIL_PK_BYTES];
	veil_identity_public(f->authority, apk);
	char a64[64], k1[64], k2[64], text[1024];
	fx_b64(a64, sizeof(a64), apk, sizeof(apk));
	fx_b64(k1, sizeof(k1), f->k_sensors, sizeof(f->k_sensors));
	fx_b64(k2, sizeof(k2), f->k_secure, sizeof(f->k_secure));
	snprintf(text, sizeof(text),
	         "authority %s\n"
	         "key sensors/# 1 %s send\n"
	         "key secure/# 2 %s send\n"
	         "%s"
	         "policy public/# plaintext\n",
	         a64, k1, k2, secure_signed ? "policy secure/# signed\n" : "");
	ck_assert_int_eq(test_write_file(path, text, 0600), 0);
}

/* Identity and credential for client_id: <dir>/<stem>.key and <dir>/<stem>.cred. */
FX_FN void fx_device_as(struct fx *f, const char *stem, const char *client_id)
{
	struct veil_identity *id = NULL;
	ck_assert_int_eq(veil_identity_generate(&id), VEIL_OK);
	char path[400];
	snprintf(path, sizeof(path), "%s/%s.key", f->dir, stem);
	ck_assert_int_eq(veil_identity_save(id, path), VEIL_OK);
	struct veil_credential c;
	memset(&c, 0, sizeof(c));
	veil_identity_public(id, c.device_pk);
	snprintf(c.client_id, sizeof(c.client_id), "%s", client_id);
	c.issued_at = (uint64_t)time(NULL) - 60;
	c.expires_at = (uint64_t)time(NULL) + 3600;
	uint8_t cred[VEIL_CREDENTIAL_MAX];
	size_t n = 0;
	ck_assert_int_eq(veil_credential_issue(f->authority, &c, cred, sizeof(cred), &n), VEIL_OK);
	snprintf(path, sizeof(path), "%s/%s.cred", f->dir, stem);
	ck_assert_int_eq(veil_credential_save(cred, n, path), VEIL_OK);
	veil_identity_free(&id);
}

FX_FN void fx_device(struct fx *f, const char *client_id)
{
	fx_device_as(f, client_id, client_id);
}

/* Files only; the caller starts a broker with fx_start. */
FX_FN void fx_setup_files(struct fx *f)
{
	memset(f, 0, sizeof(*f));
	ck_assert_int_eq(veil_init(), VEIL_OK);
	ck_assert_int_eq(test_mkdtemp(f->dir, sizeof(f->dir)), 0);
	ck_assert_int_eq(veil_identity_generate(&f->authority), VEIL_OK);
	veil_topic_key_generate(f->k_sensors);
	veil_topic_key_generate(f->k_secure);
	snprintf(f->keyring, sizeof(f->keyring), "%s/keyring", f->dir);
	snprintf(f->keyring_nosign, sizeof(f->keyring_nosign), "%s/keyring-nosign", f->dir);
	fx_write_keyring(f, f->keyring, true);
	fx_write_keyring(f, f->keyring_nosign, false);
}

FX_FN void fx_start(struct fx *f, const char *conf)
{
	ck_assert_int_eq(test_broker_start(&f->broker, conf), 0);
	snprintf(f->uri, sizeof(f->uri), "tcp://127.0.0.1:%d", f->broker.port);
}

/* Files and a plain broker (no Veil plugin: libveil alone). */
FX_FN void fx_setup(struct fx *f)
{
	fx_setup_files(f);
	fx_start(f, "allow_anonymous true\n");
}

FX_FN void fx_teardown(struct fx *f)
{
	test_broker_stop(&f->broker);
	test_broker_cleanup(&f->broker);
	veil_identity_free(&f->authority);
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cleanup of %s failed\n", f->dir);
}

/* Options for client_id with its own files; state dir <dir>/<state>. */
struct fx_opts {
	struct veil_client_options o;
	char key[400], cred[400], state[400];
};

FX_FN void fx_options(struct fx *f, struct fx_opts *fo, const char *client_id, int mqtt_version,
                       const char *state)
{
	memset(fo, 0, sizeof(*fo));
	snprintf(fo->key, sizeof(fo->key), "%s/%s.key", f->dir, client_id);
	snprintf(fo->cred, sizeof(fo->cred), "%s/%s.cred", f->dir, client_id);
	fo->o.version = VEIL_CLIENT_OPTIONS_VERSION;
	fo->o.server_uri = f->uri;
	fo->o.client_id = client_id;
	fo->o.mqtt_version = mqtt_version;
	fo->o.identity_path = fo->key;
	fo->o.credential_path = fo->cred;
	fo->o.keyring_path = f->keyring;
	/* A plain broker refuses an MQTT 5 Authentication Method it has no plugin
	 * for; MQTT 3.1.1 carries the token as a password it ignores. */
	fo->o.auth = mqtt_version == VEIL_MQTT_5 ? VEIL_AUTH_NONE : VEIL_AUTH_TOKEN;
	if (state) {
		snprintf(fo->state, sizeof(fo->state), "%s/%s", f->dir, state);
		fo->o.state_dir = fo->state;
	}
}

/* ---- what a libveil client delivered or refused ---- */

struct fx_msg {
	char topic[128];
	uint8_t payload[8192];
	size_t len;
	int qos;
	bool retained, is_signed, plaintext;
	char sender_hex[17];
	char sender_client_id[VEIL_CLIENT_ID_MAX + 1];
	uint64_t seq;
	char user_prop[64];          /* "key=value" of the first MQTT 5 user property */
};

struct fx_sink {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct fx_msg msgs[FX_MAX_MSGS];
	size_t n;
	int refused[FX_MAX_MSGS];
	char refused_topic[FX_MAX_MSGS][128];
	size_t n_refused;
	size_t lost;
};

FX_FN void fx_sink_init(struct fx_sink *s)
{
	memset(s, 0, sizeof(*s));
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cond, NULL);
}

FX_FN void fx_sink_destroy(struct fx_sink *s)
{
	pthread_cond_destroy(&s->cond);
	pthread_mutex_destroy(&s->lock);
}

FX_FN void fx_on_message(void *ctx, const struct veil_message *m)
{
	struct fx_sink *s = ctx;
	pthread_mutex_lock(&s->lock);
	if (s->n < FX_MAX_MSGS) {
		struct fx_msg *d = &s->msgs[s->n++];
		snprintf(d->topic, sizeof(d->topic), "%s", m->topic);
		d->len = m->len < sizeof(d->payload) ? m->len : sizeof(d->payload);
		memcpy(d->payload, m->payload, d->len);
		d->qos = m->qos;
		d->retained = m->retained;
		d->is_signed = m->is_signed;
		d->plaintext = m->plaintext;
		snprintf(d->sender_hex, sizeof(d->sender_hex), "%s", m->sender_hex);
		snprintf(d->sender_client_id, sizeof(d->sender_client_id), "%s", m->sender_client_id);
		d->seq = m->seq;
		if (m->properties) {
			for (int i = 0; i < m->properties->count; i++) {
				MQTTProperty *p = &m->properties->array[i];
				if (p->identifier == MQTTPROPERTY_CODE_USER_PROPERTY) {
					snprintf(d->user_prop, sizeof(d->user_prop), "%.*s=%.*s", p->value.data.len,
					         p->value.data.data, p->value.value.len, p->value.value.data);
					break;
				}
			}
		}
	}
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

FX_FN void fx_on_refusal(void *ctx, const struct veil_refusal *r)
{
	struct fx_sink *s = ctx;
	pthread_mutex_lock(&s->lock);
	if (s->n_refused < FX_MAX_MSGS) {
		snprintf(s->refused_topic[s->n_refused], sizeof(s->refused_topic[0]), "%s", r->topic);
		s->refused[s->n_refused++] = r->err;
	}
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

FX_FN void fx_on_lost(void *ctx, const char *cause)
{
	struct fx_sink *s = ctx;
	(void)cause;
	pthread_mutex_lock(&s->lock);
	s->lost++;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

/* Wait until *counter >= want (messages, refusals, losses); false on timeout. */
FX_FN bool fx_wait(struct fx_sink *s, const size_t *counter, size_t want, int timeout_ms)
{
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += timeout_ms / 1000;
	until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&s->lock);
	int rc = 0;
	while (*counter < want && rc == 0)
		rc = pthread_cond_timedwait(&s->cond, &s->lock, &until);
	bool ok = *counter >= want;
	pthread_mutex_unlock(&s->lock);
	return ok;
}

FX_FN void fx_sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

/* ---- a plain Paho client: eavesdropper and broker-side replayer ---- */

struct fx_plain {
	MQTTClient mc;
	pthread_mutex_t lock;
	uint8_t *payload[FX_MAX_MSGS];
	size_t len[FX_MAX_MSGS];
	char topic[FX_MAX_MSGS][128];
	size_t n;
};

FX_FN int fx_plain_arrived(void *ctx, char *topic, int topic_len, MQTTClient_message *m)
{
	struct fx_plain *p = ctx;
	(void)topic_len;
	pthread_mutex_lock(&p->lock);
	if (p->n < FX_MAX_MSGS) {
		p->payload[p->n] = malloc((size_t)m->payloadlen + 1);
		memcpy(p->payload[p->n], m->payload, (size_t)m->payloadlen);
		p->len[p->n] = (size_t)m->payloadlen;
		snprintf(p->topic[p->n], sizeof(p->topic[0]), "%s", topic);
		p->n++;
	}
	pthread_mutex_unlock(&p->lock);
	MQTTClient_freeMessage(&m);
	MQTTClient_free(topic);
	return 1;
}

FX_FN void fx_plain_lost(void *ctx, char *cause)
{
	(void)ctx;
	(void)cause;
}

FX_FN void fx_plain_connect(struct fx *f, struct fx_plain *p, const char *client_id, const char *sub)
{
	memset(p, 0, sizeof(*p));
	pthread_mutex_init(&p->lock, NULL);
	ck_assert_int_eq(MQTTClient_create(&p->mc, f->uri, client_id, MQTTCLIENT_PERSISTENCE_NONE, NULL), 0);
	ck_assert_int_eq(MQTTClient_setCallbacks(p->mc, p, fx_plain_lost, fx_plain_arrived, NULL), 0);
	MQTTClient_connectOptions o = MQTTClient_connectOptions_initializer;
	ck_assert_int_eq(MQTTClient_connect(p->mc, &o), MQTTCLIENT_SUCCESS);
	if (sub) {
		int rc = MQTTClient_subscribe(p->mc, sub, 1);
		ck_assert_msg(rc >= 0 && rc <= 2, "plain subscribe rc %d", rc);
	}
}

FX_FN void fx_plain_publish(struct fx_plain *p, const char *topic, const void *payload, size_t len)
{
	MQTTClient_deliveryToken dt;
	ck_assert_int_eq(MQTTClient_publish(p->mc, topic, (int)len, payload, 1, 0, &dt), MQTTCLIENT_SUCCESS);
	ck_assert_int_eq(MQTTClient_waitForCompletion(p->mc, dt, 5000), MQTTCLIENT_SUCCESS);
}

FX_FN size_t fx_plain_count(struct fx_plain *p)
{
	pthread_mutex_lock(&p->lock);
	size_t n = p->n;
	pthread_mutex_unlock(&p->lock);
	return n;
}

/* True if any captured payload contains needle. */
FX_FN bool fx_plain_saw(struct fx_plain *p, const void *needle, size_t len)
{
	bool saw = false;
	pthread_mutex_lock(&p->lock);
	for (size_t i = 0; i < p->n && !saw; i++)
		saw = p->len[i] >= len && memmem(p->payload[i], p->len[i], needle, len) != NULL;
	pthread_mutex_unlock(&p->lock);
	return saw;
}

FX_FN void fx_plain_close(struct fx_plain *p)
{
	if (MQTTClient_isConnected(p->mc))
		MQTTClient_disconnect(p->mc, 1000);
	MQTTClient_destroy(&p->mc);
	for (size_t i = 0; i < p->n; i++)
		free(p->payload[i]);
	pthread_mutex_destroy(&p->lock);
}

#endif
