/* The key-service fixture (see keys_fixture.h). */
#define _GNU_SOURCE
#include "keys_fixture.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <MQTTAsync.h>
#include <MQTTClient.h>

#include "check_run.h"
#include "files.h"
#include "material.h"
#include "preload_fixture.h"
#include "proc.h"
#include "raw_mqtt.h"
#include "timing.h"

const char *const kfx_name[KFX_N] = { "veil_client", "veil_async", "preload MQTTClient", "preload MQTTAsync",
	                              "preload MQTTClient without callbacks" };
const char *const kfx_id[KFX_N] = { "fe-sync", "fe-async", "fe-psync", "fe-pasync", "fe-pnocb" };

struct kfx kfx_env;
static char self_exe[512];

/* The fleet's rules only: the plugin protects Veil's own topics itself. */
static const char ACL[] = "pattern readwrite,encrypted factory/%c/#\n"
                          "role dashboard\n"
                          "topic read factory/#\n";

/* <dir>/<name> */
static void in_dir(char *out, size_t cap, const char *name)
{
	ck_assert_int_lt(snprintf(out, cap, "%s/%s", kfx_env.dir, name), (int)cap);
}

static const char *env_bin(const char *name)
{
	const char *p = getenv(name);
	ck_assert_msg(p && *p, "%s not set (run through ctest)", name);
	return p;
}

/* ---- broker and keyd ---- */

/* The deployment's name of kfx_setup_audience, NULL for kfx_setup. */
static const char *kfx_audience;
/* Rules of kfx_setup_rules, before the fleet's. */
static const char *kfx_extra_rules;
static void kfx_setup_with(void);

void kfx_setup_audience(const char *audience)
{
	kfx_audience = audience;
	kfx_extra_rules = NULL;
	kfx_setup_with();
}

void kfx_setup(void)
{
	kfx_audience = NULL;
	kfx_extra_rules = NULL;
	kfx_setup_with();
}

void kfx_setup_rules(const char *extra_rules)
{
	kfx_audience = NULL;
	kfx_extra_rules = extra_rules;
	kfx_setup_with();
}

static void kfx_setup_with(void)
{
	struct kfx *k = &kfx_env;
	memset(k, 0, sizeof(*k));
	k->keyd = -1;
	ck_assert_int_eq(veil_init(), VEIL_OK);
	ck_assert_int_eq(test_mkdtemp_readable(k->dir, sizeof(k->dir)), 0);
	ck_assert_int_eq(veil_identity_generate(&k->authority), VEIL_OK);
	test_authority_save(k->authority, k->dir, k->authority_pub, sizeof(k->authority_pub));
	char acl[320], rev[320], bconf[2048], named[200] = "", keyd_named[200] = "";
	if (kfx_audience) {
		/* A deployment that takes version 2 tokens for its name only. */
		snprintf(named, sizeof(named), "plugin_opt_audience %s\nplugin_opt_token_v1 refuse\n", kfx_audience);
		snprintf(keyd_named, sizeof(keyd_named), "audience %s\n", kfx_audience);
	}
	in_dir(acl, sizeof(acl), "veil.acl");
	in_dir(rev, sizeof(rev), "revoked.txt");
	size_t rules_cap = sizeof(ACL) + (kfx_extra_rules ? strlen(kfx_extra_rules) : 0);
	char *rules = malloc(rules_cap);
	ck_assert_ptr_nonnull(rules);
	/* First: a pattern there applies to every client, not to a role block. */
	snprintf(rules, rules_cap, "%s%s", kfx_extra_rules ? kfx_extra_rules : "", ACL);
	ck_assert_int_eq(test_write_file(acl, rules, 0644), 0);
	free(rules);
	ck_assert_int_eq(test_write_file(rev, "# none\n", 0644), 0);
	snprintf(bconf, sizeof(bconf),
	         "allow_anonymous false\nplugin %s\nplugin_opt_authority_file %s\nplugin_opt_acl_file %s\n"
	         "plugin_opt_revocation_file %s\n%s",
	         test_plugin_path(), k->authority_pub, acl, rev, named);
	ck_assert_int_eq(test_broker_start(&k->broker, bconf), 0);
	snprintf(k->uri, sizeof(k->uri), "tcp://127.0.0.1:%d", k->broker.port);
	/* keyd: its own device with the role veil-keyd, a 5 s token window
	 * (so the scope's lead and grace may be 10 s), bundles re-issued after
	 * 1 s at most. */
	struct veil_identity *id = NULL;
	char path[400];
	test_device_save(k->authority, k->dir, "keyd", "veil-keyd");
	in_dir(path, sizeof(path), "keyd.key");
	ck_assert_int_eq(veil_identity_load(path, &id, NULL, 0), VEIL_OK);
	uint8_t cred[VEIL_CREDENTIAL_MAX];
	size_t n = test_credential_make(k->authority, id, "veil-keyd", "veil-keyd", 86400, cred);
	veil_identity_free(&id);
	in_dir(path, sizeof(path), "keyd.cred");
	ck_assert_int_eq(veil_credential_save(cred, n, path), VEIL_OK);
	in_dir(k->keyd_conf, sizeof(k->keyd_conf), "keyd.conf");
	in_dir(k->keyd_log, sizeof(k->keyd_log), "keyd.log");
	in_dir(k->db, sizeof(k->db), "keyd.db");
	char text[2048];
	snprintf(text, sizeof(text),
	         "broker %s\nclient_id veil-keyd\nidentity keyd.key\ncredential keyd.cred\nauthorities authority.pub\n"
	         "acl_file veil.acl\nrevocation_file revoked.txt\ndatabase keyd.db\nstorage_key storage.key\n"
	         "token_window 5\nreissue_interval 1\nrekey_grace 5\n%s"
	         "scope %s period 3600 lead 300 grace %d depth 2\n",
	         k->uri, keyd_named, KFX_SCOPE, KFX_GRACE_S);
	ck_assert_int_eq(test_write_file(k->keyd_conf, text, 0644), 0);
	in_dir(path, sizeof(path), "init.log");
	const char *argv[] = { env_bin("VEIL_KEYD"), "-c", k->keyd_conf, "--init", NULL };
	struct test_spawn o = { .out = path };
	int rc = test_wait_exit(test_spawn(argv, &o), 10000);
	if (rc != 0)
		test_file_dump("veil-keyd --init", path);
	ck_assert_int_eq(rc, 0);
}

void kfx_teardown(void)
{
	struct kfx *k = &kfx_env;
	if (k->keyd > 0)
		test_stop(k->keyd);
	k->keyd = -1;
	test_broker_stop(&k->broker);
	test_broker_cleanup(&k->broker);
	veil_identity_free(&k->authority);
	test_rmtree(k->dir);
}

void kfx_keyd_start(void)
{
	struct kfx *k = &kfx_env;
	int before = test_file_count(k->keyd_log, "mqtt | subscribed");
	const char *argv[] = { env_bin("VEIL_KEYD"), "-c", k->keyd_conf, "-d", NULL };
	/* Appended to, not truncated: a restarted keyd's lines follow the first one's. */
	char cmd[1200];
	snprintf(cmd, sizeof(cmd), "exec \"$0\" \"$@\" 2>>'%s'", k->keyd_log);
	const char *sh[] = { "/bin/sh", "-c", cmd, argv[0], argv[1], argv[2], argv[3], NULL };
	k->keyd = test_spawn(sh, NULL);
	if (!test_file_wait_count(k->keyd_log, "mqtt | subscribed", before + 1, 10000)) {
		test_file_dump("keyd", k->keyd_log);
		ck_abort_msg("keyd did not subscribe");
	}
}

void kfx_keyd_stop(void)
{
	struct kfx *k = &kfx_env;
	ck_assert_int_gt(k->keyd, 0);
	kill(k->keyd, SIGTERM);
	ck_assert_int_eq(test_wait_exit(k->keyd, 10000), 0);
	k->keyd = -1;
}

int kfx_keyd_count(const char *needle)
{
	return test_file_count(kfx_env.keyd_log, needle);
}

void kfx_keyd_wait(const char *needle, int count, int base_ms)
{
	if (!test_file_wait_count(kfx_env.keyd_log, needle, count, base_ms)) {
		test_file_dump("keyd", kfx_env.keyd_log);
		ck_abort_msg("keyd never logged '%s' %d times", needle, count);
	}
}

void kfx_rotate(const char *scope, const char *instance)
{
	char needle[300], out[400];
	snprintf(needle, sizeof(needle), "epoch | rotate | instance=%s ", instance ? instance : "");
	int before = instance ? kfx_keyd_count(needle) : 0;
	in_dir(out, sizeof(out), "rotate.out");
	const char *argv[] = { env_bin("VEIL_CLI"), "keys", "--db", kfx_env.db, "rotate", scope, NULL };
	struct test_spawn o = { .out = out };
	int rc = test_wait_exit(test_spawn(argv, &o), 10000);
	if (rc != 0)
		test_file_dump("veil keys rotate", out);
	ck_assert_int_eq(rc, 0);
	if (instance)
		kfx_keyd_wait(needle, before + 1, 10000);
}

void kfx_device(const char *id, const char *roles, char *conf, size_t cap)
{
	struct kfx *k = &kfx_env;
	test_device_save(k->authority, k->dir, id, id);
	char key[400], cred[400];
	ck_assert_int_lt(snprintf(key, sizeof(key), "%s/%s.key", k->dir, id), (int)sizeof(key));
	ck_assert_int_lt(snprintf(cred, sizeof(cred), "%s/%s.cred", k->dir, id), (int)sizeof(cred));
	if (roles) {
		struct veil_identity *dev = NULL;
		ck_assert_int_eq(veil_identity_load(key, &dev, NULL, 0), VEIL_OK);
		uint8_t c[VEIL_CREDENTIAL_MAX];
		size_t n = test_credential_make(k->authority, dev, id, roles, 86400, c);
		veil_identity_free(&dev);
		ck_assert_int_eq(veil_credential_save(c, n, cred), VEIL_OK);
	}
	ck_assert_int_lt(snprintf(conf, cap, "%s/%s.conf", k->dir, id), (int)cap);
	char text[4096];
	ck_assert_int_lt(snprintf(text, sizeof(text), "client_id %s\nidentity %s\ncredential %s\nauthorities %s\n"
	                          "state_dir %s/%s.state\n%s%s%s", id, key, cred, k->authority_pub, k->dir, id,
	                          kfx_audience ? "audience " : "", kfx_audience ? kfx_audience : "",
	                          kfx_audience ? "\n" : ""),
	                 (int)sizeof(text));
	ck_assert_int_eq(test_write_file(conf, text, 0600), 0);
}

int kfx_raw_connect(const char *id)
{
	char key[400], cred[400];
	ck_assert_int_lt(snprintf(key, sizeof(key), "%s/%s.key", kfx_env.dir, id), (int)sizeof(key));
	ck_assert_int_lt(snprintf(cred, sizeof(cred), "%s/%s.cred", kfx_env.dir, id), (int)sizeof(cred));
	char pw[VEIL_PASSWORD_MAX];
	test_token_password_files(key, cred, id, pw);
	struct raw_login l = { .version = 4, .client_id = id, .username = id, .password = pw };
	int fd = raw_connect_send(kfx_env.broker.port, &l);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(raw_connack(fd, 10000), 0);
	return fd;
}

uint8_t *kfx_raw_wait_publish(int fd, const char *topic, size_t *len)
{
	struct raw_packet *p = malloc(sizeof(*p));
	ck_assert_ptr_nonnull(p);
	struct raw_message m;
	do {
		ck_assert_msg(raw_read(fd, p, 10000) == 0, "no message on %s", topic);
	} while ((p->type & 0xf0) != RAW_PUBLISH || !raw_publish_parse(p, 4, &m) || strcmp(m.topic, topic) != 0);
	uint8_t *out = malloc(m.len ? m.len : 1);
	ck_assert_ptr_nonnull(out);
	memcpy(out, m.payload, m.len);
	*len = m.len;
	free(p);
	return out;
}

/* ---- libveil ---- */

struct kfx_lv {
	struct veil_client *c;
	struct veil_async *a;
	struct veil_client_config *cfg;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct kfx_msg *msgs;
	size_t n, cap;
	size_t refused, by_err[VEIL_STATS_ERR_SLOTS];
	char log[32768];
	size_t log_n;
	size_t done_n, done_want;
	int done_rc;
};

static void lv_log(void *ctx, int level, const char *msg)
{
	struct kfx_lv *l = ctx;
	(void)level;
	pthread_mutex_lock(&l->lock);
	int n = snprintf(l->log + l->log_n, sizeof(l->log) - l->log_n, "%s\n", msg);
	if (n > 0 && (size_t)n < sizeof(l->log) - l->log_n)
		l->log_n += (size_t)n;
	pthread_cond_broadcast(&l->cond);
	pthread_mutex_unlock(&l->lock);
}

static void lv_message(void *ctx, const struct veil_message *m)
{
	struct kfx_lv *l = ctx;
	pthread_mutex_lock(&l->lock);
	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 256;
		l->msgs = realloc(l->msgs, l->cap * sizeof(*l->msgs));
		ck_assert_ptr_nonnull(l->msgs);
	}
	struct kfx_msg *k = &l->msgs[l->n++];
	snprintf(k->topic, sizeof(k->topic), "%s", m->topic);
	snprintf(k->payload, sizeof(k->payload), "%.*s", (int)m->len, (const char *)m->payload);
	snprintf(k->sender, sizeof(k->sender), "%s", m->sender_client_id);
	k->key_id = m->key_id;
	k->seq = m->seq;
	pthread_cond_broadcast(&l->cond);
	pthread_mutex_unlock(&l->lock);
}

static void lv_refusal(void *ctx, const struct veil_refusal *r)
{
	struct kfx_lv *l = ctx;
	pthread_mutex_lock(&l->lock);
	l->refused++;
	if (r->err <= 0 && r->err > -VEIL_STATS_ERR_SLOTS)
		l->by_err[-r->err]++;
	pthread_cond_broadcast(&l->cond);
	pthread_mutex_unlock(&l->lock);
}

static void lv_done(void *ctx, int rc, int reason)
{
	struct kfx_lv *l = ctx;
	(void)reason;
	pthread_mutex_lock(&l->lock);
	l->done_rc = rc;
	l->done_n++;
	pthread_cond_broadcast(&l->cond);
	pthread_mutex_unlock(&l->lock);
}

/* The next async completion's result (the connect's may wait for keys). */
static int lv_done_wait(struct kfx_lv *l, int base_ms)
{
	ck_assert_msg(veil_cond_wait_count(&l->cond, &l->lock, &l->done_n, ++l->done_want, base_ms),
	              "no completion from veil_async");
	pthread_mutex_lock(&l->lock);
	int rc = l->done_rc;
	pthread_mutex_unlock(&l->lock);
	return rc;
}

struct kfx_lv *kfx_lv_new(enum kfx_fe fe, const char *conf, const struct kfx_lv_opts *opts)
{
	static const struct kfx_lv_opts none;
	if (!opts)
		opts = &none;
	struct kfx_lv *l = calloc(1, sizeof(*l));
	ck_assert_ptr_nonnull(l);
	pthread_mutex_init(&l->lock, NULL);
	veil_cond_init(&l->cond);
	struct veil_client_options o;
	memset(&o, 0, sizeof(o));
	o.version = VEIL_CLIENT_OPTIONS_VERSION;
	o.server_uri = kfx_env.uri;
	o.mqtt_version = VEIL_MQTT_5;
	o.connect_timeout_s = opts->connect_timeout_s ? opts->connect_timeout_s : veil_test_ms(10000) / 1000;
	o.persistent_session = opts->persistent;
	o.will_topic = opts->will_topic;
	o.will_payload = opts->will_payload;
	o.will_len = opts->will_payload ? strlen(opts->will_payload) : 0;
	o.will_qos = 1;
	o.log = lv_log;
	o.log_ctx = l;
	char err[512] = "";
	ck_assert_msg(veil_client_config_load(conf, &o, &l->cfg, err, sizeof(err)) == VEIL_OK, "%s", err);
	ck_assert_msg(opts->keyring == (o.keyring_path != NULL), "%s %s a keyring file", conf,
	              opts->keyring ? "does not name" : "names");
	int rc = fe == KFX_SYNC ? veil_client_new(&o, &l->c) : veil_async_new(&o, &l->a);
	ck_assert_msg(rc == VEIL_OK, "%s: %s\n%s", kfx_name[fe], veil_errname(rc), l->log);
	if (l->c)
		veil_client_set_callbacks(l->c, l, lv_message, lv_refusal, NULL);
	else
		veil_async_set_callbacks(l->a, l, lv_message, lv_refusal, NULL);
	return l;
}

int kfx_lv_connect(struct kfx_lv *l, uint64_t *ms)
{
	uint64_t t0 = veil_test_now_ms();
	int rc;
	if (l->c) {
		rc = veil_client_connect(l->c);
	} else {
		rc = veil_async_connect(l->a, lv_done, l);
		if (rc == VEIL_OK)
			rc = lv_done_wait(l, 60000);
	}
	if (ms)
		*ms = veil_test_now_ms() - t0;
	return rc;
}

void kfx_lv_start_connect(struct kfx_lv *l)
{
	ck_assert_ptr_nonnull(l->a);
	ck_assert_int_eq(veil_async_connect(l->a, lv_done, l), VEIL_OK);
	l->done_want++; /* its completion is not waited for */
}

int kfx_lv_subscribe(struct kfx_lv *l, const char *filter)
{
	if (l->c)
		return veil_client_subscribe(l->c, filter, 1);
	int rc = veil_async_subscribe(l->a, filter, 1, lv_done, l);
	return rc == VEIL_OK ? lv_done_wait(l, 10000) : rc;
}

int kfx_lv_publish(struct kfx_lv *l, const char *topic, const char *payload)
{
	int rc;
	if (l->c) {
		int tok = 0;
		rc = veil_client_publish(l->c, topic, payload, strlen(payload), 1, false, &tok);
		if (rc == VEIL_OK)
			rc = veil_client_wait(l->c, tok, (unsigned long)veil_test_ms(10000), NULL);
	} else {
		rc = veil_async_publish(l->a, topic, payload, strlen(payload), 1, false, lv_done, l);
		if (rc == VEIL_OK)
			rc = lv_done_wait(l, 10000);
	}
	return rc;
}

static bool has_msg(struct kfx_lv *l, const char *payload, struct kfx_msg *out)
{
	for (size_t i = 0; i < l->n; i++) {
		if (!strcmp(l->msgs[i].payload, payload)) {
			if (out)
				*out = l->msgs[i];
			return true;
		}
	}
	return false;
}

bool kfx_lv_wait_msg(struct kfx_lv *l, const char *payload, struct kfx_msg *out, int base_ms)
{
	struct veil_deadline d = veil_deadline_in(base_ms);
	pthread_mutex_lock(&l->lock);
	while (!has_msg(l, payload, out) && veil_cond_wait_until(&l->cond, &l->lock, &d))
		;
	bool got = has_msg(l, payload, out);
	pthread_mutex_unlock(&l->lock);
	return got;
}

size_t kfx_lv_count(struct kfx_lv *l, const char *payload)
{
	size_t n = 0;
	pthread_mutex_lock(&l->lock);
	for (size_t i = 0; i < l->n; i++)
		n += !strcmp(l->msgs[i].payload, payload);
	pthread_mutex_unlock(&l->lock);
	return n;
}

bool kfx_lv_wait_refused(struct kfx_lv *l, int err, size_t count, int base_ms)
{
	return veil_cond_wait_count(&l->cond, &l->lock, &l->by_err[-err], count, base_ms);
}

size_t kfx_lv_refused(struct kfx_lv *l)
{
	pthread_mutex_lock(&l->lock);
	size_t n = l->refused;
	pthread_mutex_unlock(&l->lock);
	return n;
}

bool kfx_lv_logged(struct kfx_lv *l, const char *needle)
{
	pthread_mutex_lock(&l->lock);
	bool seen = strstr(l->log, needle) != NULL;
	pthread_mutex_unlock(&l->lock);
	return seen;
}

/* Caller holds l->lock. */
static size_t log_count(const struct kfx_lv *l, const char *needle)
{
	size_t n = 0;
	for (const char *p = l->log; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

size_t kfx_lv_log_count(struct kfx_lv *l, const char *needle)
{
	pthread_mutex_lock(&l->lock);
	size_t n = log_count(l, needle);
	pthread_mutex_unlock(&l->lock);
	return n;
}

bool kfx_lv_wait_log(struct kfx_lv *l, const char *needle, size_t count, int base_ms)
{
	struct veil_deadline d = veil_deadline_in(base_ms);
	pthread_mutex_lock(&l->lock);
	while (log_count(l, needle) < count && veil_cond_wait_until(&l->cond, &l->lock, &d))
		;
	bool ok = log_count(l, needle) >= count;
	pthread_mutex_unlock(&l->lock);
	return ok;
}

void kfx_lv_dump(struct kfx_lv *l, const char *what)
{
	pthread_mutex_lock(&l->lock);
	fprintf(stderr, "---- %s's log ----\n%s---- end ----\n", what, l->log);
	pthread_mutex_unlock(&l->lock);
}

int kfx_lv_wait_keys(struct kfx_lv *l, int base_ms)
{
	unsigned long ms = (unsigned long)veil_test_ms(base_ms);
	return l->c ? veil_client_wait_keys(l->c, ms) : veil_async_wait_keys(l->a, ms);
}

void kfx_lv_free(struct kfx_lv *l)
{
	veil_client_free(&l->c);
	veil_async_free(&l->a);
	veil_client_config_free(&l->cfg);
	free(l->msgs);
	pthread_cond_destroy(&l->cond);
	pthread_mutex_destroy(&l->lock);
	free(l);
}

/* ---- the preload's programs ---- */

static void app_start(struct kfx_app *a, enum kfx_fe fe, const char *kind, const char *conf, const char *topic,
                      int connect_timeout_s)
{
	static unsigned n;
	memset(a, 0, sizeof(*a));
	a->fe = fe;
	ck_assert_int_lt(snprintf(a->out, sizeof(a->out), "%s/app-%s-%u.out", kfx_env.dir, kfx_id[fe], ++n),
	                 (int)sizeof(a->out));
	ck_assert_int_lt(snprintf(a->fifo, sizeof(a->fifo), "%s/app-%s-%u.fifo", kfx_env.dir, kfx_id[fe], n),
	                 (int)sizeof(a->fifo));
	ck_assert_int_eq(mkfifo(a->fifo, 0600), 0);
	char port[16], timeout[16];
	snprintf(port, sizeof(port), "%d", kfx_env.broker.port);
	snprintf(timeout, sizeof(timeout), "%d", connect_timeout_s);
	const char *argv[] = { self_exe, "--app", kind, port, topic, timeout, a->fifo, NULL };
	a->pid = preload_spawn(argv, true, conf, a->out);
	/* The writing end opens once the program opened the reading end. */
	a->fd = -1;
	ck_assert_msg(VEIL_WAIT_UNTIL((a->fd = open(a->fifo, O_WRONLY | O_NONBLOCK)) >= 0, 20000),
	              "%s never opened its command FIFO", kfx_name[fe]);
	bool up = test_file_wait(a->out, "connect rc=", 60000);
	if (!up || !test_file_has(a->out, "connect rc=0\n"))
		test_file_dump(kfx_name[fe], a->out);
	ck_assert_msg(up && test_file_has(a->out, "connect rc=0\n"), "%s did not connect", kfx_name[fe]);
}

void kfx_app_start(struct kfx_app *a, enum kfx_fe fe, const char *conf, const char *topic, int connect_timeout_s)
{
	app_start(a, fe, fe == KFX_PSYNC ? "sync" : fe == KFX_PNOCB ? "nocb" : "async", conf, topic,
	          connect_timeout_s);
}

void kfx_app_start_async_nowait(struct kfx_app *a, const char *conf, const char *topic, int connect_timeout_s)
{
	app_start(a, KFX_PASYNC, "async-nowait", conf, topic, connect_timeout_s);
}

int kfx_app_pub(struct kfx_app *a, const char *payload)
{
	char cmd[256], needle[300];
	int n = snprintf(cmd, sizeof(cmd), "pub %s\n", payload);
	ck_assert(n > 0 && (size_t)n < sizeof(cmd));
	ck_assert_int_eq(write(a->fd, cmd, (size_t)n), n);
	snprintf(needle, sizeof(needle), "pub %s rc=", payload);
	if (!test_file_wait(a->out, needle, 20000)) {
		test_file_dump(kfx_name[a->fe], a->out);
		ck_abort_msg("%s never reported its publish of %s", kfx_name[a->fe], payload);
	}
	size_t len = 0;
	char *t = test_file_read(a->out, &len);
	ck_assert_ptr_nonnull(t);
	const char *p = strstr(t, needle);
	ck_assert_ptr_nonnull(p);
	char *end = NULL;
	long rc = strtol(p + strlen(needle), &end, 10);
	ck_assert_ptr_ne(end, p + strlen(needle));
	free(t);
	return (int)rc;
}

void kfx_app_stop(struct kfx_app *a)
{
	static const char quit[] = "quit\n";
	ck_assert_int_eq(write(a->fd, quit, sizeof(quit) - 1), (ssize_t)(sizeof(quit) - 1));
	close(a->fd);
	int rc = test_wait_exit(a->pid, 20000);
	if (rc != 0)
		test_file_dump(kfx_name[a->fe], a->out);
	ck_assert_msg(rc == 0, "%s exited %d", kfx_name[a->fe], rc);
	unlink(a->fifo);
}

/* ---- the programs themselves: plain Paho, no Veil code ---- */

static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int connect_rc;   /* MQTTAsync: 1 while waiting */
	int pub_rc;
	bool connected_cb;
} P = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 1, 1, false };

static void p_set(int *field, int v)
{
	pthread_mutex_lock(&P.lock);
	*field = v;
	pthread_cond_broadcast(&P.cond);
	pthread_mutex_unlock(&P.lock);
}

static int p_wait(int *field, int base_ms)
{
	struct veil_deadline d = veil_deadline_in(base_ms);
	pthread_mutex_lock(&P.lock);
	while (*field == 1 && veil_cond_wait_until(&P.cond, &P.lock, &d))
		;
	int v = *field;
	*field = 1;
	pthread_mutex_unlock(&P.lock);
	return v;
}

static void a_conn_ok(void *ctx, MQTTAsync_successData *d)
{
	(void)ctx;
	printf("onSuccess\n");
	/* The preload hands over a copy of Paho's data. */
	p_set(&P.connect_rc, d && d->alt.connect.serverURI ? 0 : -100);
}

static void a_conn_fail(void *ctx, MQTTAsync_failureData *d)
{
	(void)ctx;
	p_set(&P.connect_rc, d && d->code ? d->code : -1);
}

static void a_connected(void *ctx, char *cause)
{
	(void)ctx;
	(void)cause;
	__atomic_store_n(&P.connected_cb, true, __ATOMIC_RELEASE);
}

static void a_pub_ok(void *ctx, MQTTAsync_successData *d)
{
	(void)ctx;
	(void)d;
	p_set(&P.pub_rc, 0);
}

static void a_pub_fail(void *ctx, MQTTAsync_failureData *d)
{
	(void)ctx;
	p_set(&P.pub_rc, d && d->code ? d->code : -1);
}

static int c_arrived(void *ctx, char *topic, int tlen, MQTTClient_message *m)
{
	(void)ctx;
	(void)tlen;
	MQTTClient_freeMessage(&m);
	MQTTClient_free(topic);
	return 1;
}

/* argv: --app sync|nocb|async|async-nowait PORT TOPIC CONNECT_TIMEOUT FIFO
 * (async-nowait: reports its connect call, not its completion) */
static int app_main(int argc, char **argv)
{
	if (argc != 7)
		return 64;
	setvbuf(stdout, NULL, _IOLBF, 0);
	veil_cond_init(&P.cond);
	const char *kind = argv[2], *topic = argv[4];
	bool nowait = !strcmp(kind, "async-nowait");
	bool as = !strcmp(kind, "async") || nowait, cb = !strcmp(kind, "sync");
	char uri[64];
	snprintf(uri, sizeof(uri), "tcp://127.0.0.1:%s", argv[3]);
	int timeout = atoi(argv[5]);
	MQTTClient c = NULL;
	MQTTAsync a = NULL;
	int rc = as ? MQTTAsync_create(&a, uri, "app", MQTTCLIENT_PERSISTENCE_NONE, NULL)
	            : MQTTClient_create(&c, uri, "app", MQTTCLIENT_PERSISTENCE_NONE, NULL);
	if (rc != 0) {
		printf("create rc=%d\n", rc);
		return 2;
	}
	if (cb)
		rc = MQTTClient_setCallbacks(c, NULL, NULL, c_arrived, NULL);
	if (as) {
		rc = MQTTAsync_setConnected(a, NULL, a_connected);
		MQTTAsync_connectOptions o = MQTTAsync_connectOptions_initializer;
		o.MQTTVersion = MQTTVERSION_3_1_1;
		o.connectTimeout = timeout;
		o.onSuccess = a_conn_ok;
		o.onFailure = a_conn_fail;
		if (rc == 0 && (rc = MQTTAsync_connect(a, &o)) == 0 && !nowait)
			rc = p_wait(&P.connect_rc, 120000);
		/* setConnected's callback comes right after onSuccess. */
		if (rc == 0 && !nowait && !VEIL_WAIT_UNTIL(__atomic_load_n(&P.connected_cb, __ATOMIC_ACQUIRE), 5000))
			rc = -101;
	} else if (rc == 0) {
		MQTTClient_connectOptions o = MQTTClient_connectOptions_initializer;
		o.MQTTVersion = MQTTVERSION_3_1_1;
		o.connectTimeout = timeout;
		rc = MQTTClient_connect(c, &o);
	}
	printf("connect rc=%d\n", rc);
	FILE *cmds = fopen(argv[6], "r");
	if (!cmds)
		return 3;
	char line[256];
	while (rc == 0 && fgets(line, sizeof(line), cmds)) {
		line[strcspn(line, "\n")] = '\0';
		if (!strcmp(line, "quit"))
			break;
		if (strncmp(line, "pub ", 4) != 0)
			continue;
		const char *pt = line + 4;
		int prc;
		if (as) {
			MQTTAsync_responseOptions r = MQTTAsync_responseOptions_initializer;
			r.onSuccess = a_pub_ok;
			r.onFailure = a_pub_fail;
			prc = MQTTAsync_send(a, topic, (int)strlen(pt), pt, 1, 0, &r);
			if (prc == 0)
				prc = p_wait(&P.pub_rc, 10000);
		} else {
			MQTTClient_deliveryToken dt = 0;
			prc = MQTTClient_publish(c, topic, (int)strlen(pt), pt, 1, 0, &dt);
			if (prc == 0)
				prc = MQTTClient_waitForCompletion(c, dt, (unsigned long)veil_test_ms(10000));
		}
		printf("pub %s rc=%d\n", pt, prc);
	}
	fclose(cmds);
	if (as) {
		if (MQTTAsync_isConnected(a))
			MQTTAsync_disconnect(a, NULL);
		MQTTAsync_destroy(&a);
	} else {
		if (MQTTClient_isConnected(c))
			MQTTClient_disconnect(c, 1000);
		MQTTClient_destroy(&c);
	}
	return rc == 0 ? 0 : 4;
}

int kfx_run(int argc, char **argv, Suite *(*suite)(void))
{
	int app = kfx_main(argc, argv);
	return app >= 0 ? app : veil_check_run(suite());
}

int kfx_main(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "--app"))
		return app_main(argc, argv);
	ssize_t n = readlink("/proc/self/exe", self_exe, sizeof(self_exe) - 1U);
	if (n <= 0)
		return EXIT_FAILURE;
	self_exe[n] = '\0';
	return -1;
}
