/*
 * The plugin's metrics through real components: $SYS/broker/veil counts
 * exactly the refusals this test causes (logins by reason, ACL denials,
 * envelope refusals) and the clients by role; then end to end the way an
 * operator runs it: Debian's prometheus-mqtt-exporter with the shipped
 * docs/metrics/mqtt-exporter.yaml reads those topics, a real prometheus
 * scrapes it with docs/metrics/prometheus-veil.yml, and a PromQL query over
 * prometheus's HTTP API returns the number of refused logins caused here.
 * Both programs run on free 127.0.0.1 ports with their own files and are
 * stopped by PID.
 */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <MQTTClient.h>
#include <cjson/cJSON.h>

#include "veil/veil.h"
#include "broker.h"
#include "check_run.h"
#include "files.h"
#include "ops_fixture.h"
#include "proc.h"
#include "timing.h"

static struct opsfx F;

/* ---- a $SYS reader: plain Paho, the metrics user ---- */

#define MAX_TOPICS 512

struct reader {
	MQTTClient c;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	char topic[MAX_TOPICS][96];
	char value[MAX_TOPICS][32];
	size_t n;
	unsigned updates;
};

static int on_message(void *ctx, char *topic, int topic_len, MQTTClient_message *m)
{
	struct reader *r = ctx;
	(void)topic_len;
	pthread_mutex_lock(&r->lock);
	size_t i = 0;
	while (i < r->n && strcmp(r->topic[i], topic) != 0)
		i++;
	if (i < MAX_TOPICS) {
		if (i == r->n) {
			snprintf(r->topic[i], sizeof(r->topic[0]), "%s", topic);
			r->n++;
		}
		snprintf(r->value[i], sizeof(r->value[0]), "%.*s", m->payloadlen, (const char *)m->payload);
	}
	r->updates++;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
	MQTTClient_freeMessage(&m);
	MQTTClient_free(topic);
	return 1;
}

static void reader_open(struct reader *r)
{
	memset(r, 0, sizeof(*r));
	pthread_mutex_init(&r->lock, NULL);
	veil_cond_init(&r->cond);
	ck_assert_int_eq(MQTTClient_create(&r->c, F.c.uri, OPSFX_METRICS_USER, MQTTCLIENT_PERSISTENCE_NONE, NULL),
	                 MQTTCLIENT_SUCCESS);
	ck_assert_int_eq(MQTTClient_setCallbacks(r->c, r, NULL, on_message, NULL), MQTTCLIENT_SUCCESS);
	MQTTClient_connectOptions o = MQTTClient_connectOptions_initializer;
	o.username = OPSFX_METRICS_USER;
	o.password = OPSFX_METRICS_PASSWORD;
	o.MQTTVersion = MQTTVERSION_3_1_1;
	ck_assert_int_eq(MQTTClient_connect(r->c, &o), MQTTCLIENT_SUCCESS);
	ck_assert_int_eq(MQTTClient_subscribe(r->c, "$SYS/broker/veil/#", 0), MQTTCLIENT_SUCCESS);
}

static void reader_close(struct reader *r)
{
	MQTTClient_disconnect(r->c, 1000);
	MQTTClient_destroy(&r->c);
	pthread_cond_destroy(&r->cond);
	pthread_mutex_destroy(&r->lock);
}

/* The latest value of $SYS/broker/veil/<name> as a number (-1: none yet). */
static long long value_locked(struct reader *r, const char *name)
{
	char topic[128];
	snprintf(topic, sizeof(topic), "$SYS/broker/veil/%s", name);
	for (size_t i = 0; i < r->n; i++) {
		if (!strcmp(r->topic[i], topic))
			return strtoll(r->value[i], NULL, 10);
	}
	return -1;
}

/* The sum of every $SYS/broker/veil/<family>/... value. */
static long long family_sum_locked(struct reader *r, const char *family)
{
	char prefix[128];
	snprintf(prefix, sizeof(prefix), "$SYS/broker/veil/%s/", family);
	long long sum = 0;
	for (size_t i = 0; i < r->n; i++) {
		if (!strncmp(r->topic[i], prefix, strlen(prefix)))
			sum += strtoll(r->value[i], NULL, 10);
	}
	return sum;
}

/* Wait until the published value is want (the plugin publishes each second). */
static bool wait_value(struct reader *r, const char *name, long long want)
{
	struct veil_deadline d = veil_deadline_in(5000);
	pthread_mutex_lock(&r->lock);
	long long v;
	while ((v = value_locked(r, name)) != want && veil_cond_wait_until(&r->cond, &r->lock, &d))
		;
	pthread_mutex_unlock(&r->lock);
	if (v != want)
		fprintf(stderr, "%s: %lld, want %lld\n", name, v, want);
	return v == want;
}

/* After the values settled: the family's sum, unchanged over two more publications. */
static long long settled_sum(struct reader *r, const char *family)
{
	pthread_mutex_lock(&r->lock);
	unsigned seen = r->updates;
	long long before = family_sum_locked(r, family);
	pthread_mutex_unlock(&r->lock);
	/* Two whole publications more (every topic twice): nothing moved. */
	struct veil_deadline d = veil_deadline_in(5000);
	pthread_mutex_lock(&r->lock);
	while (r->updates < seen + 2 * (unsigned)r->n && veil_cond_wait_until(&r->cond, &r->lock, &d))
		;
	long long sum = family_sum_locked(r, family);
	pthread_mutex_unlock(&r->lock);
	ck_assert_int_eq(sum, before);
	return sum;
}

/* ---- what the test causes ---- */

/* A CONNECT with Paho alone (MQTT 3.1.1): the CONNACK code. */
static int paho_login(const char *client_id, const char *user, const char *password)
{
	MQTTClient c;
	ck_assert_int_eq(MQTTClient_create(&c, F.c.uri, client_id, MQTTCLIENT_PERSISTENCE_NONE, NULL), MQTTCLIENT_SUCCESS);
	MQTTClient_connectOptions o = MQTTClient_connectOptions_initializer;
	o.username = user;
	o.password = password;
	/* Exactly 3.1.1: Paho's default would try again as 3.1 after a refusal,
	 * a second CONNECT (and a second refusal) per attempt. */
	o.MQTTVersion = MQTTVERSION_3_1_1;
	int rc = MQTTClient_connect(c, &o);
	if (rc == MQTTCLIENT_SUCCESS)
		MQTTClient_disconnect(c, 1000);
	MQTTClient_destroy(&c);
	return rc;
}

/* refused anonymous logins + refused revoked-client logins: the total. */
static int cause_refused_logins(int anonymous, int revoked)
{
	char id[32];
	for (int i = 0; i < anonymous; i++) {
		snprintf(id, sizeof(id), "auto-probe-%d", i);
		ck_assert_int_eq(paho_login(id, NULL, NULL), 5); /* not authorized */
	}
	for (int i = 0; i < revoked; i++)
		ck_assert_int_eq(opsfx_login_rc(&F, "dev-2"), VEIL_ERR_AUTH);
	return anonymous + revoked;
}

static void revoke_dev2(void)
{
	ck_assert_int_eq(test_write_file(F.revoked, "client dev-2\n", 0644), 0);
	ck_assert(test_broker_log_wait(&F.c.broker, "file=revocation entries=1", 5000));
}

static void setup(void)
{
	opsfx_setup(&F, NULL);
}

static void teardown(void)
{
	opsfx_teardown(&F);
}

START_TEST(sys_counts_exactly)
{
	struct reader r;
	reader_open(&r);
	/* Published from the start: every documented reason at 0. */
	ck_assert(wait_value(&r, "logins_refused/bad-password", 0));
	ck_assert(wait_value(&r, "logins_accepted/password", 1)); /* the reader itself */
	revoke_dev2();
	int refused = cause_refused_logins(3, 2);
	/* Two subscriptions the rules refuse, one plaintext PUBLISH on a
	 * protected topic, one device online with its role. */
	struct opsfx_session dev;
	opsfx_open(&F, &dev, "dev-1", false);
	ck_assert_int_eq(opsfx_subscribe(&dev, "secret/#"), VEIL_ERR_AUTH);
	ck_assert_int_eq(opsfx_subscribe(&dev, "sensors/dev-2/#"), VEIL_ERR_AUTH);
	opsfx_close(&dev);
	/* The same device again, its keyring saying plaintext where the rules
	 * say encrypted: libveil sends in clear, the broker refuses. */
	char clear[512];
	opsfx_path(&F, "clear.keyring", clear, sizeof(clear));
	ck_assert_int_eq(test_write_file(clear, "policy sensors/# plaintext\n", 0600), 0);
	opsfx_open_keyring(&F, &dev, "dev-1", clear);
	int reason = 0;
	ck_assert_int_eq(opsfx_publish(&dev, "sensors/dev-1/t", "21.5", 4, &reason), VEIL_ERR_AUTH);
	ck_assert_int_eq(reason, 0x87);

	ck_assert(wait_value(&r, "logins_refused/anonymous", 3));
	ck_assert(wait_value(&r, "logins_refused/revoked-client", 2));
	ck_assert(wait_value(&r, "acl_denied/rules", 2));
	ck_assert(wait_value(&r, "envelope_refused/not-envelope", 1));
	ck_assert(wait_value(&r, "clients_by_role/sensor", 1));
	ck_assert(wait_value(&r, "clients_by_login/credential", 1));
	ck_assert(wait_value(&r, "logins_accepted/credential", 2));
	/* Exactly: nothing else was refused, in any family. */
	ck_assert_int_eq(settled_sum(&r, "logins_refused"), refused);
	ck_assert_int_eq(settled_sum(&r, "acl_denied"), 2);
	ck_assert_int_eq(settled_sum(&r, "envelope_refused"), 1);
	ck_assert_int_eq(settled_sum(&r, "kicks"), 0);
	/* Gauges follow: the device leaves. */
	opsfx_close(&dev);
	ck_assert(wait_value(&r, "clients_by_role/sensor", 0));
	/* The counts are the audit lines', one for one. */
	ck_assert_int_eq(test_file_count(F.c.broker.log, "reason=anonymous"), 3);
	ck_assert_int_eq(test_file_count(F.c.broker.log, "reason=revoked-client"), 2);
	reader_close(&r);
}
END_TEST

/* ---- prometheus ---- */

static char *read_doc(const char *name)
{
	char path[512];
	size_t len = 0;
	snprintf(path, sizeof(path), "%s/docs/metrics/%s", VEIL_SOURCE_DIR, name);
	char *t = test_file_read(path, &len);
	ck_assert_msg(t != NULL, "%s missing", path);
	return t;
}

/* s with every `from` replaced by `to` (malloc'd); from must occur. */
static char *replace(char *s, const char *from, const char *to)
{
	ck_assert_msg(strstr(s, from), "'%s' not in the shipped config", from);
	size_t cap = strlen(s) * 2 + strlen(to) * 8 + 1;
	char *out = malloc(cap), *o = out;
	ck_assert_ptr_nonnull(out);
	for (const char *p = s, *hit; *p; p = hit + strlen(from)) {
		if (!(hit = strstr(p, from))) {
			o += snprintf(o, cap - (size_t)(o - out), "%s", p);
			break;
		}
		o += snprintf(o, cap - (size_t)(o - out), "%.*s%s", (int)(hit - p), p, to);
	}
	free(s);
	return out;
}

/* GET http://127.0.0.1:port/path; the body (malloc'd) or NULL. */
static char *http_get(int port, const char *path)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_ge(fd, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		close(fd);
		return NULL;
	}
	char req[1024];
	int n = snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", path);
	ck_assert_int_eq(write(fd, req, (size_t)n), n);
	size_t cap = 1 << 20, len = 0;
	char *buf = malloc(cap);
	ssize_t got;
	while (len < cap - 1 && (got = read(fd, buf + len, cap - 1 - len)) > 0)
		len += (size_t)got;
	close(fd);
	buf[len] = '\0';
	char *body = strstr(buf, "\r\n\r\n");
	char *out = body ? strdup(body + 4) : NULL;
	free(buf);
	return out;
}

/* A PromQL instant query: the value of its only sample, or -1. */
static double promql(int port, const char *query)
{
	char path[1024] = "/api/v1/query?query=";
	size_t o = strlen(path);
	for (const unsigned char *p = (const unsigned char *)query; *p && o + 4 < sizeof(path); p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_')
			path[o++] = (char)*p;
		else
			o += (size_t)snprintf(path + o, sizeof(path) - o, "%%%02X", *p);
	}
	path[o] = '\0';
	char *body = http_get(port, path);
	cJSON *t = body ? cJSON_Parse(body) : NULL;
	free(body);
	const cJSON *result = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(t, "data"), "result");
	double v = -1;
	if (cJSON_GetArraySize(result) == 1) {
		const cJSON *val = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(result, 0), "value"), 1);
		if (cJSON_IsString(val))
			v = strtod(val->valuestring, NULL);
	}
	cJSON_Delete(t);
	return v;
}

static bool promql_is(int port, const char *query, double want)
{
	double v = -1;
	bool ok = VEIL_WAIT_UNTIL((v = promql(port, query)) == want, 60000);
	if (!ok)
		fprintf(stderr, "PromQL %s = %g, want %g\n", query, v, want);
	return ok;
}

START_TEST(prometheus_end_to_end)
{
	const char *prometheus = getenv("VEIL_PROMETHEUS"), *exporter = getenv("VEIL_MQTT_EXPORTER");
	ck_assert_msg(prometheus && exporter, "VEIL_PROMETHEUS, VEIL_MQTT_EXPORTER not set (run through ctest)");
	int exp_port = test_free_port(), prom_port = test_free_port();
	char port[32], cfg[512], tsdb[512], log_e[512], log_p[512];
	/* The shipped exporter config, pointed at this broker. */
	char *yaml = read_doc("mqtt-exporter.yaml");
	snprintf(port, sizeof(port), "tcp://127.0.0.1:%d", F.c.broker.port);
	yaml = replace(yaml, "tcp://127.0.0.1:1883", port);
	yaml = replace(yaml, "CHANGE-ME", OPSFX_METRICS_PASSWORD);
	opsfx_path(&F, "mqtt-exporter.yaml", cfg, sizeof(cfg));
	ck_assert_int_eq(test_write_file(cfg, yaml, 0600), 0);
	free(yaml);
	snprintf(port, sizeof(port), "%d", exp_port);
	opsfx_path(&F, "exporter.log", log_e, sizeof(log_e));
	const char *eargv[] = { exporter, "-config", cfg, "-listen-address", "127.0.0.1", "-listen-port", port, NULL };
	struct test_spawn eo = { .out = log_e };
	pid_t epid = test_spawn(eargv, &eo);
	/* The shipped scrape job, pointed at the exporter, every second. */
	char *job = read_doc("prometheus-veil.yml");
	snprintf(port, sizeof(port), "127.0.0.1:%d", exp_port);
	job = replace(job, "127.0.0.1:9641", port);
	job = replace(job, "scrape_interval: 10s", "scrape_interval: 1s");
	size_t n = strlen(job) + 200;
	char *prom_yml = malloc(n);
	ck_assert_ptr_nonnull(prom_yml);
	snprintf(prom_yml, n, "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n%s", job);
	free(job);
	opsfx_path(&F, "prometheus.yml", cfg, sizeof(cfg));
	ck_assert_int_eq(test_write_file(cfg, prom_yml, 0600), 0);
	free(prom_yml);
	opsfx_path(&F, "tsdb", tsdb, sizeof(tsdb));
	char a_cfg[600], a_tsdb[600], a_listen[64];
	snprintf(a_cfg, sizeof(a_cfg), "--config.file=%s", cfg);
	snprintf(a_tsdb, sizeof(a_tsdb), "--storage.tsdb.path=%s", tsdb);
	snprintf(a_listen, sizeof(a_listen), "--web.listen-address=127.0.0.1:%d", prom_port);
	opsfx_path(&F, "prometheus.log", log_p, sizeof(log_p));
	const char *pargv[] = { prometheus, a_cfg, a_tsdb, a_listen, NULL };
	struct test_spawn po = { .out = log_p };
	pid_t ppid = test_spawn(pargv, &po);

	/* The exporter is subscribed once the broker logged its login. */
	ck_assert_msg(test_broker_log_wait(&F.c.broker, "method=password user=prometheus", 20000), "exporter did not log in");
	ck_assert(promql_is(prom_port, "veil_logins_refused_total{reason=\"anonymous\"}", 0));
	uint64_t t0 = veil_test_now_ms();
	revoke_dev2();
	int refused = cause_refused_logins(4, 3);
	ck_assert(promql_is(prom_port, "sum(veil_logins_refused_total)", refused));
	printf("FIGURE prometheus_refusals_visible ms=%llu (sys_interval 1 s, scrape 1 s)\n",
	       (unsigned long long)(veil_test_now_ms() - t0));
	ck_assert(promql_is(prom_port, "veil_logins_refused_total{reason=\"anonymous\"}", 4));
	ck_assert(promql_is(prom_port, "veil_logins_refused_total{reason=\"revoked-client\"}", 3));
	ck_assert(promql_is(prom_port, "veil_logins_accepted_total{method=\"password\"}", 1));
	ck_assert(promql_is(prom_port, "veil_file_loads_total{file=\"revocation\"}", 2));
	ck_assert(promql_is(prom_port, "count(veil_logins_refused_total{sensor!=\"\"})", -1)); /* relabelled */
	test_stop(ppid);
	test_stop(epid);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("plugin_metrics");
	TCase *tc = veil_tcase("metrics", 120);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, sys_counts_exactly);
	tcase_add_test(tc, prometheus_end_to_end);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return veil_check_run(suite());
}
