/* The libveil client fixture (see client_fixture.h). */
#define _GNU_SOURCE /* memmem */
#include "client_fixture.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "material.h"
#include "timing.h"

void cfx_write_keyring(struct cfx *f, const char *path, bool secure_signed)
{
	uint8_t apk[VEIL_PK_BYTES];
	veil_identity_public(f->authority, apk);
	char a64[64], k1[64], k2[64], text[1024];
	test_b64(a64, sizeof(a64), apk, sizeof(apk));
	test_b64(k1, sizeof(k1), f->k_sensors, sizeof(f->k_sensors));
	test_b64(k2, sizeof(k2), f->k_secure, sizeof(f->k_secure));
	snprintf(text, sizeof(text),
	         "authority %s\n"
	         "key sensors/# 1 %s send\n"
	         "key secure/# 2 %s send\n"
	         "%s"
	         "policy public/# plaintext\n",
	         a64, k1, k2, secure_signed ? "policy secure/# signed\n" : "");
	ck_assert_int_eq(test_write_file(path, text, 0600), 0);
}

void cfx_device_as(struct cfx *f, const char *stem, const char *client_id)
{
	test_device_save(f->authority, f->dir, stem, client_id);
}

void cfx_device(struct cfx *f, const char *client_id)
{
	cfx_device_as(f, client_id, client_id);
}

void cfx_setup_files(struct cfx *f)
{
	memset(f, 0, sizeof(*f));
	ck_assert_int_eq(veil_init(), VEIL_OK);
	ck_assert_int_eq(test_mkdtemp(f->dir, sizeof(f->dir)), 0);
	ck_assert_int_eq(veil_identity_generate(&f->authority), VEIL_OK);
	veil_topic_key_generate(f->k_sensors);
	veil_topic_key_generate(f->k_secure);
	snprintf(f->keyring, sizeof(f->keyring), "%s/keyring", f->dir);
	snprintf(f->keyring_nosign, sizeof(f->keyring_nosign), "%s/keyring-nosign", f->dir);
	cfx_write_keyring(f, f->keyring, true);
	cfx_write_keyring(f, f->keyring_nosign, false);
}

void cfx_start(struct cfx *f, const char *conf)
{
	ck_assert_int_eq(test_broker_start(&f->broker, conf), 0);
	snprintf(f->uri, sizeof(f->uri), "tcp://127.0.0.1:%d", f->broker.port);
}

void cfx_setup(struct cfx *f)
{
	cfx_setup_files(f);
	cfx_start(f, "allow_anonymous true\n");
}

void cfx_teardown(struct cfx *f)
{
	test_broker_stop(&f->broker);
	test_broker_cleanup(&f->broker);
	veil_identity_free(&f->authority);
	sodium_memzero(f->k_sensors, sizeof(f->k_sensors));
	sodium_memzero(f->k_secure, sizeof(f->k_secure));
	test_rmtree(f->dir);
}

void cfx_options(struct cfx *f, struct cfx_opts *fo, const char *client_id, int mqtt_version, const char *state)
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
	fo->o.connect_timeout_s = veil_test_ms(10000) / 1000;
	/* A plain broker refuses an MQTT 5 Authentication Method it has no plugin
	 * for; MQTT 3.1.1 carries the token as a password it ignores. */
	fo->o.auth = mqtt_version == VEIL_MQTT_5 ? VEIL_AUTH_NONE : VEIL_AUTH_TOKEN;
	if (state) {
		snprintf(fo->state, sizeof(fo->state), "%s/%s", f->dir, state);
		fo->o.state_dir = fo->state;
	}
}

/* ---- sink ---- */

void cfx_sink_init(struct cfx_sink *s)
{
	memset(s, 0, sizeof(*s));
	pthread_mutex_init(&s->lock, NULL);
	veil_cond_init(&s->cond);
}

void cfx_sink_destroy(struct cfx_sink *s)
{
	pthread_cond_destroy(&s->cond);
	pthread_mutex_destroy(&s->lock);
}

void cfx_on_message(void *ctx, const struct veil_message *m)
{
	struct cfx_sink *s = ctx;
	pthread_mutex_lock(&s->lock);
	s->total++;
	if (s->n < CFX_MAX_MSGS) {
		struct cfx_msg *d = &s->msgs[s->n++];
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

void cfx_on_refusal(void *ctx, const struct veil_refusal *r)
{
	struct cfx_sink *s = ctx;
	pthread_mutex_lock(&s->lock);
	if (s->n_refused < CFX_MAX_MSGS) {
		snprintf(s->refused_topic[s->n_refused], sizeof(s->refused_topic[0]), "%s", r->topic);
		s->refused[s->n_refused++] = r->err;
	}
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

void cfx_on_lost(void *ctx, const char *cause)
{
	struct cfx_sink *s = ctx;
	pthread_mutex_lock(&s->lock);
	snprintf(s->lost_cause, sizeof(s->lost_cause), "%s", cause ? cause : "");
	s->lost++;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

bool cfx_wait(struct cfx_sink *s, const size_t *counter, size_t want, int base_ms)
{
	return veil_cond_wait_count(&s->cond, &s->lock, counter, want, base_ms);
}

/* ---- plain Paho client ---- */

static int plain_arrived(void *ctx, char *topic, int topic_len, MQTTClient_message *m)
{
	struct cfx_plain *p = ctx;
	(void)topic_len;
	pthread_mutex_lock(&p->lock);
	if (p->n < CFX_MAX_MSGS) {
		p->payload[p->n] = malloc((size_t)m->payloadlen + 1);
		if (p->payload[p->n]) {
			memcpy(p->payload[p->n], m->payload, (size_t)m->payloadlen);
			p->len[p->n] = (size_t)m->payloadlen;
			snprintf(p->topic[p->n], sizeof(p->topic[0]), "%s", topic);
			p->n++;
		}
	}
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
	MQTTClient_freeMessage(&m);
	MQTTClient_free(topic);
	return 1;
}

static void plain_lost(void *ctx, char *cause)
{
	(void)ctx;
	(void)cause;
}

void cfx_plain_connect(struct cfx *f, struct cfx_plain *p, const char *client_id, const char *sub)
{
	memset(p, 0, sizeof(*p));
	pthread_mutex_init(&p->lock, NULL);
	veil_cond_init(&p->cond);
	ck_assert_int_eq(MQTTClient_create(&p->mc, f->uri, client_id, MQTTCLIENT_PERSISTENCE_NONE, NULL), 0);
	ck_assert_int_eq(MQTTClient_setCallbacks(p->mc, p, plain_lost, plain_arrived, NULL), 0);
	MQTTClient_connectOptions o = MQTTClient_connectOptions_initializer;
	ck_assert_int_eq(MQTTClient_connect(p->mc, &o), MQTTCLIENT_SUCCESS);
	if (sub) {
		int rc = MQTTClient_subscribe(p->mc, sub, 1);
		ck_assert_msg(rc >= 0 && rc <= 2, "plain subscribe rc %d", rc);
	}
}

void cfx_plain_publish(struct cfx_plain *p, const char *topic, const void *payload, size_t len)
{
	MQTTClient_deliveryToken dt;
	ck_assert_int_eq(MQTTClient_publish(p->mc, topic, (int)len, payload, 1, 0, &dt), MQTTCLIENT_SUCCESS);
	ck_assert_int_eq(MQTTClient_waitForCompletion(p->mc, dt, (unsigned long)veil_test_ms(5000)),
	                 MQTTCLIENT_SUCCESS);
}

size_t cfx_plain_count(struct cfx_plain *p)
{
	pthread_mutex_lock(&p->lock);
	size_t n = p->n;
	pthread_mutex_unlock(&p->lock);
	return n;
}

bool cfx_plain_wait(struct cfx_plain *p, size_t n, int base_ms)
{
	return veil_cond_wait_count(&p->cond, &p->lock, &p->n, n, base_ms);
}

bool cfx_plain_saw(struct cfx_plain *p, const void *needle, size_t len)
{
	bool saw = false;
	pthread_mutex_lock(&p->lock);
	for (size_t i = 0; i < p->n && !saw; i++)
		saw = p->len[i] >= len && memmem(p->payload[i], p->len[i], needle, len) != NULL;
	pthread_mutex_unlock(&p->lock);
	return saw;
}

void cfx_plain_close(struct cfx_plain *p)
{
	if (MQTTClient_isConnected(p->mc))
		MQTTClient_disconnect(p->mc, 1000);
	MQTTClient_destroy(&p->mc);
	for (size_t i = 0; i < p->n; i++)
		free(p->payload[i]);
	pthread_cond_destroy(&p->cond);
	pthread_mutex_destroy(&p->lock);
}

void cfx_done_init(struct cfx_done *d)
{
	memset(d, 0, sizeof(*d));
	pthread_mutex_init(&d->lock, NULL);
	veil_cond_init(&d->cond);
}

void cfx_on_done(void *ctx, int rc, int reason_code)
{
	struct cfx_done *d = ctx;
	pthread_mutex_lock(&d->lock);
	d->n++;
	if (rc == VEIL_OK)
		d->n_ok++;
	d->rc = rc;
	d->reason = reason_code;
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->lock);
}

bool cfx_done_wait(struct cfx_done *d, size_t want, int base_ms)
{
	return veil_cond_wait_count(&d->cond, &d->lock, &d->n, want, base_ms);
}
