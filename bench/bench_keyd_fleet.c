/* A fleet of key-service devices against Mosquitto and veil-keyd
 * (bench_keyd_fleet.h). */
#include "bench_keyd_fleet.h"

#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>
#include <sqlite3.h>

#include "bench_keyd_common.h"
#include "bench_stats.h"
#include "files.h"

size_t bench_keyd_fleet_acks(struct bench_keyd_fleet *f)
{
	FILE *fp = fopen(f->log, "r");
	if (!fp)
		return f->acks;
	char line[1024];
	if (fseek(fp, f->log_off, SEEK_SET) == 0) {
		while (fgets(line, sizeof(line), fp)) {
			size_t len = strlen(line);
			if (len == 0 || line[len - 1] != '\n')
				break; /* being written: read again next time */
			f->log_off += (long)len;
			f->acks += strstr(line, "ack | record | client=d") != NULL; /* the fleet's only */
			const char *p = strstr(line, "bundle | issue | ");
			if (p && (p = strstr(p, " bytes=")) != NULL)
				f->log_bundle_bytes += strtoull(p + 7, NULL, 10);
		}
	}
	fclose(fp);
	return f->acks;
}

double bench_keyd_fleet_wait_acks(struct bench_keyd_fleet *f, size_t want)
{
	double end = bench_now_s() + BENCH_KEYD_WAIT_S;
	while (bench_now_s() < end) {
		if (bench_keyd_fleet_acks(f) >= want)
			return bench_now_s();
		usleep(1000); /* the log is the event; a bench may poll it */
	}
	return -1;
}

bool bench_keyd_fleet_wait_flag(struct bench_keyd_fleet *f, const bool *flag)
{
	struct timespec dl;
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += (time_t)BENCH_KEYD_WAIT_S;
	pthread_mutex_lock(&f->lock);
	int rc = 0;
	while (!*flag && rc == 0)
		rc = pthread_cond_timedwait(&f->cond, &f->lock, &dl);
	bool ok = *flag;
	pthread_mutex_unlock(&f->lock);
	return ok;
}

double bench_keyd_fleet_store_used(const struct bench_keyd_fleet *f)
{
	sqlite3 *db = NULL;
	double v[3] = { -1, -1, -1 };
	static const char *const q[3] = { "PRAGMA page_count", "PRAGMA freelist_count", "PRAGMA page_size" };
	if (sqlite3_open_v2(f->db, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
		for (size_t i = 0; i < 3; i++) {
			sqlite3_stmt *st = NULL;
			if (sqlite3_prepare_v2(db, q[i], -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
				v[i] = (double)sqlite3_column_int64(st, 0);
			sqlite3_finalize(st);
		}
	}
	sqlite3_close(db);
	return v[0] < 0 || v[1] < 0 || v[2] < 0 ? -1 : (v[0] - v[1]) * v[2];
}

/* ---- devices (Paho's callback thread) ------------------------------------ */

/* A request or acknowledgement with a fresh receive key (kept) and nonce. */
static int dev_send(struct bench_keyd_dev *v, uint8_t kind)
{
	struct veil__devmsg_params p = { .device = v->id, .credential = v->cred, .credential_len = v->cred_len,
		                         .client_id = v->c.client_id, .kind = kind, .version = v->held_version };
	uint8_t m[VEIL__DEVMSG_MAX];
	size_t n = 0;
	if (bench_keyd_devmsg(&p, v->rx, &v->n_rx, BENCH_KEYD_RX_MAX, v->nonce, &v->last_ts, m, sizeof(m), &n) != 0)
		return -1;
	if (kind == VEIL__KIND_ACK) {
		pthread_mutex_lock(&v->f->lock);
		v->f->ack_bytes += n;
		pthread_mutex_unlock(&v->f->lock);
	}
	MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
	return MQTTAsync_send(v->c_mqtt, v->topic_req, (int)n, m, 1, 0, &ro) == MQTTASYNC_SUCCESS ? 0 : -1;
}

/* Open a bundle as a device does (bench_keyd_bundle_open); the epoch to
 * seal with is kept. */
static int dev_open(struct bench_keyd_dev *v, const uint8_t *buf, size_t len)
{
	struct veil__grant send;
	bool has = false;
	int rc = bench_keyd_bundle_open(v->f->auth_pk, &v->c, v->rx, &v->n_rx, &v->held_version, v->nonce, buf, len,
	                                &send, &has);
	if (rc == VEIL_OK) {
		pthread_mutex_lock(&v->f->lock);
		if (v == &v->f->devs[0] && has && v->has_cur && send.key_id != v->cur.key_id)
			v->f->send_changes++;
		v->cur = send;
		v->has_cur = has;
		pthread_mutex_unlock(&v->f->lock);
	}
	sodium_memzero(&send, sizeof(send));
	return rc;
}

static int on_message(void *ctx, char *topic, int topic_len, MQTTAsync_message *m)
{
	struct bench_keyd_dev *v = ctx;
	(void)topic_len;
	if (m->payloadlen > 0) {
		pthread_mutex_lock(&v->f->lock);
		v->f->bundles++;
		v->f->bundle_bytes += (uint64_t)m->payloadlen;
		pthread_mutex_unlock(&v->f->lock);
	}
	int rc = m->payloadlen > 0 ? dev_open(v, m->payload, (size_t)m->payloadlen) : VEIL_ERR_INVAL;
	if (rc == VEIL_OK && dev_send(v, VEIL__KIND_ACK) != 0)
		rc = VEIL_ERR_MQTT;
	if (rc != VEIL_OK && rc != VEIL_ERR_OUTDATED) {
		pthread_mutex_lock(&v->f->lock);
		v->f->errors++;
		pthread_mutex_unlock(&v->f->lock);
	}
	MQTTAsync_freeMessage(&m);
	MQTTAsync_free(topic);
	return 1;
}

static void set_flag(struct bench_keyd_dev *v, bool *flag)
{
	pthread_mutex_lock(&v->f->lock);
	*flag = true;
	pthread_cond_broadcast(&v->f->cond);
	pthread_mutex_unlock(&v->f->lock);
}

static void on_lost(void *ctx, char *cause)
{
	struct bench_keyd_dev *v = ctx;
	(void)cause;
	pthread_mutex_lock(&v->f->lock);
	v->lost_at = bench_now_s();
	pthread_mutex_unlock(&v->f->lock);
	set_flag(v, &v->lost);
}

static void on_connected(void *ctx, MQTTAsync_successData *r)
{
	struct bench_keyd_dev *v = ctx;
	(void)r;
	set_flag(v, &v->up);
}

static void on_subscribed(void *ctx, MQTTAsync_successData *r)
{
	struct bench_keyd_dev *v = ctx;
	(void)r;
	set_flag(v, &v->subscribed);
}

static int dev_start(struct bench_keyd_fleet *f, struct bench_keyd_dev *v, size_t i)
{
	char cid[32], topic[64], pw[VEIL_PASSWORD_MAX];
	uint8_t tok[VEIL_TOKEN_MAX];
	size_t tl = 0;
	v->f = f;
	snprintf(cid, sizeof(cid), "d%zu", i);
	snprintf(v->topic_req, sizeof(v->topic_req), "%s%s", VEIL__TOPIC_REQ_PREFIX, cid);
	snprintf(topic, sizeof(topic), "%s%s", VEIL__TOPIC_BUNDLE_PREFIX, cid);
	if (veil_identity_generate(&v->id) != VEIL_OK ||
	    bench_keyd_credential(f->auth, v->id, cid, "fleet", v->cred, &v->cred_len) != VEIL_OK ||
	    veil_credential_parse(v->cred, v->cred_len, &v->c) != VEIL_OK ||
	    veil_token_create(v->id, v->cred, v->cred_len, cid, (uint64_t)time(NULL), tok, sizeof(tok), &tl) !=
	            VEIL_OK ||
	    veil_token_to_password(tok, tl, pw, sizeof(pw)) != VEIL_OK)
		return -1;
	if (MQTTAsync_create(&v->c_mqtt, f->uri, cid, MQTTCLIENT_PERSISTENCE_NONE, NULL) != MQTTASYNC_SUCCESS ||
	    MQTTAsync_setCallbacks(v->c_mqtt, v, on_lost, on_message, NULL) != MQTTASYNC_SUCCESS)
		return -1;
	MQTTAsync_connectOptions o = MQTTAsync_connectOptions_initializer;
	o.username = cid;
	o.password = pw;
	o.cleansession = 1;
	o.keepAliveInterval = 600;
	o.onSuccess = on_connected;
	o.context = v;
	int rc = MQTTAsync_connect(v->c_mqtt, &o) == MQTTASYNC_SUCCESS && bench_keyd_fleet_wait_flag(f, &v->up) ? 0 : -1;
	sodium_memzero(pw, sizeof(pw));
	if (rc != 0)
		return -1;
	MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
	ro.onSuccess = on_subscribed;
	ro.context = v;
	if (MQTTAsync_subscribe(v->c_mqtt, topic, 1, &ro) != MQTTASYNC_SUCCESS ||
	    !bench_keyd_fleet_wait_flag(f, &v->subscribed))
		return -1;
	return dev_send(v, VEIL__KIND_REQUEST);
}

/* ---- the fleet ----------------------------------------------------------- */

void bench_keyd_fleet_nofile(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

int bench_keyd_fleet_start(struct bench_keyd_fleet *f, size_t n, const char *plugin, const char *keyd_bin,
                           const char *keyd_conf)
{
	struct veil_identity *kid = NULL;
	char acl[320], conf[320], path[400], bconf[PATH_MAX + 1600], text[2048];
	uint8_t cred[VEIL_CREDENTIAL_MAX];
	memset(f, 0, sizeof(*f));
	f->n = n;
	f->keyd = -1;
	pthread_mutex_init(&f->lock, NULL);
	pthread_cond_init(&f->cond, NULL);
	if (test_mkdtemp_readable(f->dir, sizeof(f->dir)) != 0 || veil_identity_generate(&f->auth) != VEIL_OK ||
	    veil_identity_generate(&kid) != VEIL_OK) {
		veil_identity_free(&kid);
		return -1;
	}
	veil_identity_public(f->auth, f->auth_pk);
	snprintf(f->apub, sizeof(f->apub), "%s/authority.pub", f->dir);
	snprintf(acl, sizeof(acl), "%s/veil.acl", f->dir);
	snprintf(conf, sizeof(conf), "%s/keyd.conf", f->dir);
	snprintf(f->log, sizeof(f->log), "%s/keyd.log", f->dir);
	snprintf(f->db, sizeof(f->db), "%s/keyd.db", f->dir);
	snprintf(f->revoked, sizeof(f->revoked), "%s/revoked", f->dir);
	int rc = veil_public_key_save(f->auth_pk, f->apub) == VEIL_OK &&
	                         test_write_file(acl, "role fleet\ntopic readwrite,encrypted fleet/#\n", 0644) == 0 &&
	                         test_write_file(f->revoked, "", 0644) == 0
	                 ? 0
	                 : -1;
	if (snprintf(bconf, sizeof(bconf), "allow_anonymous false\nplugin %s\nplugin_opt_authority_file %s\n"
	                                   "plugin_opt_acl_file %s\nplugin_opt_revocation_file %s\n", plugin, f->apub,
	             acl, f->revoked) >= (int)sizeof(bconf))
		rc = -1;
	if (rc == 0)
		rc = test_broker_start(&f->br, bconf);
	size_t cl = 0;
	if (rc == 0 && bench_keyd_credential(f->auth, kid, "veil-keyd", "veil-keyd", cred, &cl) != VEIL_OK)
		rc = -1;
	snprintf(path, sizeof(path), "%s/keyd.key", f->dir);
	if (rc == 0 && veil_identity_save(kid, path) != VEIL_OK)
		rc = -1;
	snprintf(path, sizeof(path), "%s/keyd.cred", f->dir);
	if (rc == 0 && veil_credential_save(cred, cl, path) != VEIL_OK)
		rc = -1;
	veil_identity_free(&kid);
	if (snprintf(text, sizeof(text), "broker tcp://127.0.0.1:%d\nclient_id veil-keyd\nidentity keyd.key\n"
	                                 "credential keyd.cred\nauthorities authority.pub\nacl_file veil.acl\n"
	                                 "revocation_file revoked\ndatabase keyd.db\nstorage_key storage.key\n%s",
	             f->br.port, keyd_conf) >= (int)sizeof(text))
		rc = -1;
	if (rc == 0 && test_write_file(conf, text, 0644) != 0)
		rc = -1;
	const char *init[] = { keyd_bin, "-c", conf, "--init", NULL };
	if (rc == 0 && bench_keyd_wait_exit(bench_keyd_spawn(init, NULL)) != 0)
		rc = -1;
	const char *run[] = { keyd_bin, "-c", conf, NULL };
	if (rc == 0 &&
	    ((f->keyd = bench_keyd_spawn(run, f->log)) < 0 || !test_file_wait(f->log, "mqtt | subscribed", 10000)))
		rc = -1;
	snprintf(f->uri, sizeof(f->uri), "tcp://127.0.0.1:%d", f->br.port);
	f->devs = rc == 0 ? calloc(n, sizeof(*f->devs)) : NULL;
	if (!f->devs)
		rc = -1;
	for (size_t i = 0; rc == 0 && i < n; i++)
		rc = dev_start(f, &f->devs[i], i);
	return rc;
}

void bench_keyd_fleet_stop(struct bench_keyd_fleet *f)
{
	for (size_t i = 0; f->devs && i < f->n; i++) {
		struct bench_keyd_dev *v = &f->devs[i];
		if (v->c_mqtt) {
			MQTTAsync_disconnectOptions d = MQTTAsync_disconnectOptions_initializer;
			d.timeout = 100;
			MQTTAsync_disconnect(v->c_mqtt, &d);
			MQTTAsync_destroy(&v->c_mqtt);
		}
		for (size_t k = 0; k < v->n_rx; k++)
			veil__rxkey_free(&v->rx[k]);
		sodium_memzero(&v->cur, sizeof(v->cur));
		veil_identity_free(&v->id);
	}
	free(f->devs);
	f->devs = NULL;
	veil_identity_free(&f->auth);
	if (f->keyd > 0) {
		kill(f->keyd, SIGTERM);
		bench_keyd_wait_exit(f->keyd);
		f->keyd = -1;
	}
	test_broker_cleanup(&f->br);
	if (f->dir[0])
		test_rmtree(f->dir);
	f->dir[0] = '\0';
	pthread_cond_destroy(&f->cond);
	pthread_mutex_destroy(&f->lock);
}
