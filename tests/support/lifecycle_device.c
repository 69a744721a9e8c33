/* The key lifecycle fixture's devices (libveil veil_async with the key
 * service) and its eavesdropper (a raw Paho client); see
 * lifecycle_fixture.h. */
#define _GNU_SOURCE
#include "lifecycle_fixture.h"

#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <MQTTAsync.h>
#include <sodium.h>

#include "veil/client.h"
#include "../../core/bundle.h"
#include "files.h"
#include "material.h"
#include "timing.h"

struct lfx_dev {
	char id[64], conf[320], state[320], keys[340], auth[320], uri[64];
	struct veil_credential cred;
	struct veil_async *a;
	struct veil_client_config *cfg;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct lfx_msg *msgs;
	size_t n, cap;
	size_t refused, by_err[VEIL_STATS_ERR_SLOTS];
	size_t applied, done_n, done_want;
	int done_rc;
	bool lost;
	struct lfx_keyset ever, held;
	uint64_t want_version, file_version; /* latest applied (its log line); last read from the keys file */
	char *log;
	size_t log_n, log_cap;
};

/* ---- callbacks (Paho's and libveil's threads) ---- */

/* The device writes its keys file behind, from its keeper thread, after it
 * logged that a bundle was applied, and acknowledges the version once the
 * file holds it. Each version the file comes to hold (read when it was
 * acknowledged, or when asked before that) is the device's newest key set
 * and joins every key it ever held. Versions are not monotonic: a device
 * forgets a version signed by a revoked keyd and takes a smaller one.
 * Caller holds d->lock. */
static void keys_read_locked(struct lfx_dev *d)
{
	struct lfx_keyset now = { 0 };
	uint64_t v = 0;
	if (lfx_keys_file(d->keys, &now, &v) && v != d->file_version) {
		d->held = now;
		d->file_version = v;
		for (size_t i = 0; i < now.n; i++)
			if (!lfx_keyset_find(&d->ever, now.k[i].key_id) && d->ever.n < LFX_KEYS_MAX)
				d->ever.k[d->ever.n++] = now.k[i];
	}
	sodium_memzero(&now, sizeof(now));
}

/* Caller holds d->lock; true once the file holds the latest applied version. */
static bool keys_catch_up_locked(struct lfx_dev *d)
{
	if (d->file_version != d->want_version)
		keys_read_locked(d);
	return d->file_version == d->want_version;
}

static bool keys_caught_up(struct lfx_dev *d)
{
	pthread_mutex_lock(&d->lock);
	bool r = keys_catch_up_locked(d);
	pthread_mutex_unlock(&d->lock);
	return r;
}

/* Before answering what the device holds: its keys file has caught up. */
static void keys_sync(struct lfx_dev *d)
{
	if (!VEIL_WAIT_UNTIL(keys_caught_up(d), 10000)) {
		lfx_dev_dump(d);
		ck_abort_msg("%s: the keys file never reached bundle version %llu", d->id,
		             (unsigned long long)d->want_version);
	}
}

static void dev_log(void *ctx, int level, const char *msg)
{
	struct lfx_dev *d = ctx;
	(void)level;
	pthread_mutex_lock(&d->lock);
	size_t n = strlen(msg);
	if (d->log_n + n + 2 > d->log_cap) {
		size_t cap = (d->log_cap + n + 2) * 2;
		char *p = realloc(d->log, cap);
		ck_assert_ptr_nonnull(p);
		d->log = p;
		d->log_cap = cap;
	}
	memcpy(d->log + d->log_n, msg, n);
	d->log_n += n;
	d->log[d->log_n++] = '\n';
	d->log[d->log_n] = '\0';
	/* Said once the keys are in use; the keys file (what an adversary
	 * holding the device has from now on) follows (keys_read_locked). */
	const char *bv = strstr(msg, "key service bundle version ");
	if (bv && strstr(msg, " applied: ")) {
		d->want_version = strtoull(bv + strlen("key service bundle version "), NULL, 10);
		(void)keys_catch_up_locked(d);
		d->applied++;
	}
	if (strstr(msg, "key service acknowledgement sent (holding version "))
		keys_read_locked(d); /* said once the version is on disk */
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->lock);
}

static void dev_message(void *ctx, const struct veil_message *m)
{
	struct lfx_dev *d = ctx;
	pthread_mutex_lock(&d->lock);
	if (d->n == d->cap) {
		d->cap = d->cap ? 2 * d->cap : 256;
		d->msgs = realloc(d->msgs, d->cap * sizeof(*d->msgs));
		ck_assert_ptr_nonnull(d->msgs);
	}
	struct lfx_msg *k = &d->msgs[d->n++];
	snprintf(k->topic, sizeof(k->topic), "%s", m->topic);
	snprintf(k->payload, sizeof(k->payload), "%.*s", (int)m->len, (const char *)m->payload);
	k->key_id = m->key_id;
	k->is_signed = m->is_signed;
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->lock);
}

static void dev_refusal(void *ctx, const struct veil_refusal *r)
{
	struct lfx_dev *d = ctx;
	pthread_mutex_lock(&d->lock);
	d->refused++;
	if (r->err <= 0 && r->err > -VEIL_STATS_ERR_SLOTS)
		d->by_err[-r->err]++;
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->lock);
}

static void dev_lost(void *ctx, const char *cause)
{
	struct lfx_dev *d = ctx;
	(void)cause;
	pthread_mutex_lock(&d->lock);
	d->lost = true;
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->lock);
}

static void dev_done(void *ctx, int rc, int reason)
{
	struct lfx_dev *d = ctx;
	(void)reason;
	pthread_mutex_lock(&d->lock);
	d->done_rc = rc;
	d->done_n++;
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->lock);
}

static int done_wait(struct lfx_dev *d, int base_ms)
{
	if (!veil_cond_wait_count(&d->cond, &d->lock, &d->done_n, ++d->done_want, base_ms))
		return VEIL_ERR_TIMEOUT;
	pthread_mutex_lock(&d->lock);
	int rc = d->done_rc;
	pthread_mutex_unlock(&d->lock);
	return rc;
}

/* ---- devices ---- */

static void dev_client(struct lfx_dev *d)
{
	struct veil_client_options o;
	memset(&o, 0, sizeof(o));
	o.version = VEIL_CLIENT_OPTIONS_VERSION;
	o.server_uri = d->uri;
	/* MQTT 5 logs in with an Authentication Method, which only the plugin
	 * answers: a broker without it gets the password form. */
	o.mqtt_version = lfx.plugin && !strcmp(d->uri, lfx.uri) ? VEIL_MQTT_5 : VEIL_MQTT_311;
	o.connect_timeout_s = veil_test_ms(10000) / 1000;
	o.log = dev_log;
	o.log_ctx = d;
	char err[512] = "";
	ck_assert_msg(veil_client_config_load(d->conf, &o, &d->cfg, err, sizeof(err)) == VEIL_OK, "%s", err);
	int rc = veil_async_new(&o, &d->a);
	ck_assert_msg(rc == VEIL_OK, "%s: %s\n%s", d->id, veil_errname(rc), d->log ? d->log : "");
	veil_async_set_callbacks(d->a, d, dev_message, dev_refusal, dev_lost);
}

/* extra (may be NULL): lines appended to the client config. */
static void dev_files(struct lfx_dev *d, const struct lfx_dev_opts *o, const char *extra)
{
	snprintf(d->uri, sizeof(d->uri), "%s", o->uri ? o->uri : lfx.uri);
	lfx_identity(d->id, d->id, o->roles, o->authority, o->reissue ? LFX_NEW_CRED : 0, &d->cred);
	char name[96];
	snprintf(name, sizeof(name), "%s.authorities", d->id);
	lfx_authorities_file(name, o->trust ? o->trust : 1U, d->auth, sizeof(d->auth));
	char text[2048];
	ck_assert_int_lt(snprintf(text, sizeof(text), "client_id %s\nidentity %s/%s.key\ncredential %s/%s.cred\n"
	                          "authorities %s\nstate_dir %s\n%s", d->id, lfx.dir, d->id, lfx.dir, d->id, d->auth,
	                          d->state, extra ? extra : ""),
	                 (int)sizeof(text));
	ck_assert_int_eq(test_write_file(d->conf, text, 0600), 0);
}

/* <dir>/<id>.conf, <dir>/<id>.state and its keys file. */
static void dev_paths(struct lfx_dev *d, const char *id)
{
	snprintf(d->id, sizeof(d->id), "%s", id);
	char name[96];
	snprintf(name, sizeof(name), "%s.conf", id);
	lfx_path(d->conf, sizeof(d->conf), name);
	snprintf(name, sizeof(name), "%s.state", id);
	lfx_path(d->state, sizeof(d->state), name);
	snprintf(d->keys, sizeof(d->keys), "%s/keys", d->state);
}

struct lfx_dev *lfx_dev_new(const char *id, const struct lfx_dev_opts *opts)
{
	static const struct lfx_dev_opts none;
	struct lfx_dev *d = calloc(1, sizeof(*d));
	ck_assert_ptr_nonnull(d);
	pthread_mutex_init(&d->lock, NULL);
	veil_cond_init(&d->cond);
	dev_paths(d, id);
	dev_files(d, opts ? opts : &none, NULL);
	dev_client(d);
	return d;
}

void lfx_dev_conf(const char *id, const struct lfx_dev_opts *opts, const char *extra, char *conf, size_t cap)
{
	static const struct lfx_dev_opts none;
	struct lfx_dev *d = calloc(1, sizeof(*d));
	ck_assert_ptr_nonnull(d);
	dev_paths(d, id);
	dev_files(d, opts ? opts : &none, extra);
	ck_assert_int_lt(snprintf(conf, cap, "%s", d->conf), (int)cap);
	free(d);
}

void lfx_fleet(struct lfx_dev **d, int n)
{
	const struct lfx_dev_opts o = { .roles = "fleet" };
	for (int i = 0; i < n; i++) {
		char id[32];
		snprintf(id, sizeof(id), "dev-%d", i);
		d[i] = lfx_dev_new(id, &o);
		ck_assert_int_eq(lfx_dev_connect(d[i]), VEIL_OK);
		ck_assert_int_eq(lfx_dev_sub(d[i], "fleet/#"), VEIL_OK);
	}
}

void lfx_dev_renew(struct lfx_dev *d, const struct lfx_dev_opts *opts)
{
	veil_async_free(&d->a);
	veil_client_config_free(&d->cfg);
	pthread_mutex_lock(&d->lock);
	d->lost = false;
	d->done_n = d->done_want = 0;
	pthread_mutex_unlock(&d->lock);
	static const struct lfx_dev_opts none;
	dev_files(d, opts ? opts : &none, NULL);
	dev_client(d);
}

int lfx_dev_connect(struct lfx_dev *d)
{
	int rc = veil_async_connect(d->a, dev_done, d);
	return rc == VEIL_OK ? done_wait(d, 60000) : rc;
}

int lfx_dev_sub(struct lfx_dev *d, const char *filter)
{
	int rc = veil_async_subscribe(d->a, filter, 1, dev_done, d);
	return rc == VEIL_OK ? done_wait(d, 10000) : rc;
}

int lfx_dev_pub(struct lfx_dev *d, const char *topic, const char *payload)
{
	int rc = veil_async_publish(d->a, topic, payload, strlen(payload), 1, false, dev_done, d);
	return rc == VEIL_OK ? done_wait(d, 10000) : rc;
}

const char *lfx_dev_id(const struct lfx_dev *d)
{
	return d->id;
}

const char *lfx_dev_state(const struct lfx_dev *d)
{
	return d->state;
}

const struct veil_credential *lfx_dev_cred(const struct lfx_dev *d)
{
	return &d->cred;
}

size_t lfx_dev_n_msgs(struct lfx_dev *d)
{
	pthread_mutex_lock(&d->lock);
	size_t n = d->n;
	pthread_mutex_unlock(&d->lock);
	return n;
}

struct lfx_msg lfx_dev_msg(struct lfx_dev *d, size_t i)
{
	pthread_mutex_lock(&d->lock);
	ck_assert_uint_lt(i, d->n);
	struct lfx_msg m = d->msgs[i];
	pthread_mutex_unlock(&d->lock);
	return m;
}

static size_t count_locked(const struct lfx_dev *d, const char *payload)
{
	size_t n = 0;
	for (size_t i = 0; i < d->n; i++)
		n += !strcmp(d->msgs[i].payload, payload);
	return n;
}

size_t lfx_dev_count(struct lfx_dev *d, const char *payload)
{
	pthread_mutex_lock(&d->lock);
	size_t n = count_locked(d, payload);
	pthread_mutex_unlock(&d->lock);
	return n;
}

bool lfx_dev_wait_msg(struct lfx_dev *d, const char *payload, int base_ms)
{
	struct veil_deadline dl = veil_deadline_in(base_ms);
	pthread_mutex_lock(&d->lock);
	while (!count_locked(d, payload) && veil_cond_wait_until(&d->cond, &d->lock, &dl))
		;
	bool got = count_locked(d, payload) > 0;
	pthread_mutex_unlock(&d->lock);
	return got;
}

size_t lfx_dev_refused(struct lfx_dev *d, int err)
{
	pthread_mutex_lock(&d->lock);
	size_t n = err ? d->by_err[-err] : d->refused;
	pthread_mutex_unlock(&d->lock);
	return n;
}

bool lfx_dev_wait_refused(struct lfx_dev *d, int err, size_t count, int base_ms)
{
	return veil_cond_wait_count(&d->cond, &d->lock, err ? &d->by_err[-err] : &d->refused, count, base_ms);
}

size_t lfx_dev_applied(struct lfx_dev *d)
{
	pthread_mutex_lock(&d->lock);
	size_t n = d->applied;
	pthread_mutex_unlock(&d->lock);
	return n;
}

bool lfx_dev_wait_applied(struct lfx_dev *d, size_t count, int base_ms)
{
	return veil_cond_wait_count(&d->cond, &d->lock, &d->applied, count, base_ms);
}

void lfx_dev_ever(struct lfx_dev *d, struct lfx_keyset *out)
{
	keys_sync(d);
	pthread_mutex_lock(&d->lock);
	*out = d->ever;
	pthread_mutex_unlock(&d->lock);
}

void lfx_dev_held(struct lfx_dev *d, struct lfx_keyset *out)
{
	keys_sync(d);
	pthread_mutex_lock(&d->lock);
	*out = d->held;
	pthread_mutex_unlock(&d->lock);
}

static const struct lfx_key *rekey_locked(const struct lfx_dev *d, const struct lfx_keyset *old)
{
	for (size_t i = 0; i < d->held.n; i++)
		if ((d->held.k[i].flags & VEIL__GRANT_SUPERSEDES) && !lfx_keyset_find(old, d->held.k[i].key_id))
			return &d->held.k[i];
	return NULL;
}

static bool rekeyed_locked(const struct lfx_dev *d, const struct lfx_keyset *old)
{
	return rekey_locked(d, old) != NULL;
}

bool lfx_dev_rekeyed(struct lfx_dev *d, const struct lfx_keyset *old)
{
	keys_sync(d);
	pthread_mutex_lock(&d->lock);
	bool r = rekeyed_locked(d, old);
	pthread_mutex_unlock(&d->lock);
	return r;
}

bool lfx_dev_rekey_epoch(struct lfx_dev *d, const struct lfx_keyset *old, struct lfx_key *out)
{
	keys_sync(d);
	pthread_mutex_lock(&d->lock);
	const struct lfx_key *k = rekey_locked(d, old);
	if (k)
		*out = *k;
	pthread_mutex_unlock(&d->lock);
	return k != NULL;
}

bool lfx_dev_wait_rekeyed(struct lfx_dev *d, const struct lfx_keyset *old, int base_ms)
{
	return VEIL_WAIT_UNTIL(lfx_dev_rekeyed(d, old), base_ms);
}

static size_t log_count_locked(const struct lfx_dev *d, const char *needle)
{
	size_t n = 0;
	for (const char *p = d->log; p && (p = strstr(p, needle)) != NULL; p += strlen(needle))
		n++;
	return n;
}

size_t lfx_dev_log_count(struct lfx_dev *d, const char *needle)
{
	pthread_mutex_lock(&d->lock);
	size_t n = log_count_locked(d, needle);
	pthread_mutex_unlock(&d->lock);
	return n;
}

bool lfx_dev_wait_log(struct lfx_dev *d, const char *needle, size_t count, int base_ms)
{
	struct veil_deadline dl = veil_deadline_in(base_ms);
	pthread_mutex_lock(&d->lock);
	while (log_count_locked(d, needle) < count && veil_cond_wait_until(&d->cond, &d->lock, &dl))
		;
	bool r = log_count_locked(d, needle) >= count;
	pthread_mutex_unlock(&d->lock);
	return r;
}

void lfx_dev_dump(struct lfx_dev *d)
{
	pthread_mutex_lock(&d->lock);
	fprintf(stderr, "---- %s's log ----\n%s---- end ----\n", d->id, d->log ? d->log : "");
	pthread_mutex_unlock(&d->lock);
}

bool lfx_dev_connected(struct lfx_dev *d)
{
	return veil_async_is_connected(d->a);
}

uint64_t lfx_dev_connects(struct lfx_dev *d)
{
	struct veil_client_stats st = VEIL_STATS_INIT;
	veil_async_stats(d->a, &st);
	return st.connects;
}

bool lfx_dev_wait_lost(struct lfx_dev *d, int base_ms)
{
	struct veil_deadline dl = veil_deadline_in(base_ms);
	pthread_mutex_lock(&d->lock);
	while (!d->lost && veil_cond_wait_until(&d->cond, &d->lock, &dl))
		;
	bool r = d->lost;
	pthread_mutex_unlock(&d->lock);
	return r;
}

void lfx_dev_free(struct lfx_dev *d)
{
	if (!d)
		return;
	veil_async_free(&d->a);
	veil_client_config_free(&d->cfg);
	free(d->msgs);
	free(d->log);
	sodium_memzero(&d->ever, sizeof(d->ever));
	sodium_memzero(&d->held, sizeof(d->held));
	pthread_cond_destroy(&d->cond);
	pthread_mutex_destroy(&d->lock);
	free(d);
}

/* ---- the eavesdropper ---- */

struct lfx_cap {
	MQTTAsync c;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct lfx_cap_msg **msgs;
	size_t n, cap, done_n;
	int done_rc;
};

static int cap_arrived(void *ctx, char *topic, int topic_len, MQTTAsync_message *m)
{
	struct lfx_cap *c = ctx;
	struct lfx_cap_msg *k = calloc(1, sizeof(*k));
	ck_assert_ptr_nonnull(k);
	snprintf(k->topic, sizeof(k->topic), "%.*s", topic_len > 0 ? topic_len : (int)strlen(topic), topic);
	k->len = m->payloadlen > 0 ? (size_t)m->payloadlen : 0;
	k->payload = malloc(k->len + 1);
	ck_assert_ptr_nonnull(k->payload);
	if (k->len)
		memcpy(k->payload, m->payload, k->len);
	pthread_mutex_lock(&c->lock);
	if (c->n == c->cap) {
		c->cap = c->cap ? 2 * c->cap : 1024;
		c->msgs = realloc(c->msgs, c->cap * sizeof(*c->msgs));
		ck_assert_ptr_nonnull(c->msgs);
	}
	c->msgs[c->n++] = k;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
	MQTTAsync_freeMessage(&m);
	MQTTAsync_free(topic);
	return 1;
}

static void cap_ok(void *ctx, MQTTAsync_successData *r)
{
	struct lfx_cap *c = ctx;
	(void)r;
	pthread_mutex_lock(&c->lock);
	c->done_rc = 0;
	c->done_n++;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
}

static void cap_fail(void *ctx, MQTTAsync_failureData *r)
{
	struct lfx_cap *c = ctx;
	pthread_mutex_lock(&c->lock);
	c->done_rc = r && r->code ? r->code : -1;
	c->done_n++;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
}

static int cap_wait(struct lfx_cap *c, size_t want)
{
	ck_assert_msg(veil_cond_wait_count(&c->cond, &c->lock, &c->done_n, want, 10000), "no answer from the broker");
	pthread_mutex_lock(&c->lock);
	int rc = c->done_rc;
	pthread_mutex_unlock(&c->lock);
	return rc;
}

struct lfx_cap *lfx_cap_start(const char *client_id, const char *roles, const char *const *filters, size_t n)
{
	struct lfx_cap *c = calloc(1, sizeof(*c));
	ck_assert_ptr_nonnull(c);
	pthread_mutex_init(&c->lock, NULL);
	veil_cond_init(&c->cond);
	lfx_identity(client_id, client_id, roles, 0, 0, NULL);
	char key[400], cred[400];
	lfx_path(key, sizeof(key), client_id);
	strcat(key, ".key");
	lfx_path(cred, sizeof(cred), client_id);
	strcat(cred, ".cred");
	char pw[VEIL_PASSWORD_MAX];
	test_token_password_files(key, cred, client_id, pw);
	ck_assert_int_eq(MQTTAsync_create(&c->c, lfx.uri, client_id, MQTTCLIENT_PERSISTENCE_NONE, NULL), MQTTASYNC_SUCCESS);
	ck_assert_int_eq(MQTTAsync_setCallbacks(c->c, c, NULL, cap_arrived, NULL), MQTTASYNC_SUCCESS);
	MQTTAsync_connectOptions o = MQTTAsync_connectOptions_initializer;
	o.username = client_id;
	o.password = pw;
	o.cleansession = 1;
	o.onSuccess = cap_ok;
	o.onFailure = cap_fail;
	o.context = c;
	ck_assert_int_eq(MQTTAsync_connect(c->c, &o), MQTTASYNC_SUCCESS);
	ck_assert_int_eq(cap_wait(c, 1), 0);
	for (size_t i = 0; i < n; i++) {
		MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
		ro.onSuccess = cap_ok;
		ro.onFailure = cap_fail;
		ro.context = c;
		ck_assert_int_eq(MQTTAsync_subscribe(c->c, filters[i], 1, &ro), MQTTASYNC_SUCCESS);
		ck_assert_int_eq(cap_wait(c, 2 + i), 0);
	}
	return c;
}

size_t lfx_cap_n(struct lfx_cap *c)
{
	pthread_mutex_lock(&c->lock);
	size_t n = c->n;
	pthread_mutex_unlock(&c->lock);
	return n;
}

const struct lfx_cap_msg *lfx_cap_get(struct lfx_cap *c, size_t i)
{
	pthread_mutex_lock(&c->lock);
	ck_assert_uint_lt(i, c->n);
	const struct lfx_cap_msg *m = c->msgs[i];
	pthread_mutex_unlock(&c->lock);
	return m;
}

int lfx_cap_publish(struct lfx_cap *c, const char *topic, const uint8_t *buf, size_t len, bool retained)
{
	pthread_mutex_lock(&c->lock);
	size_t want = c->done_n + 1;
	pthread_mutex_unlock(&c->lock);
	MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
	ro.onSuccess = cap_ok;
	ro.onFailure = cap_fail;
	ro.context = c;
	int rc = MQTTAsync_send(c->c, topic, (int)len, buf, 1, retained, &ro);
	return rc == MQTTASYNC_SUCCESS ? cap_wait(c, want) : rc;
}

void lfx_cap_free(struct lfx_cap *c)
{
	if (!c)
		return;
	MQTTAsync_disconnectOptions d = MQTTAsync_disconnectOptions_initializer;
	d.timeout = 1000;
	MQTTAsync_disconnect(c->c, &d);
	MQTTAsync_destroy(&c->c);
	for (size_t i = 0; i < c->n; i++) {
		free(c->msgs[i]->payload);
		free(c->msgs[i]);
	}
	free(c->msgs);
	pthread_cond_destroy(&c->cond);
	pthread_mutex_destroy(&c->lock);
	free(c);
}
