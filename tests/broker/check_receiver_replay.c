/*
 * Receivers' replay protection against a compromised broker (issue 17,
 * item 3), through libveil and through libveil_preload.so under Debian's
 * unmodified paho_cs_sub. The broker is a plain Mosquitto (it checks
 * nothing, as a compromised one would), and the attacker also holds the
 * unsigned topic key of sensors/# (key 1). The keyring (client_fixture.h)
 * also has secure/# (key 2), signed.
 *
 * In order, on one connection of the attacker (so in this order at the
 * receiver):
 *  1. an honest unsigned sender whose sequence started an hour ago (its
 *     counter began at the clock, in microseconds, an hour earlier);
 *  2. a signed command on secure/valve: delivered, and recorded;
 *  3. 4,100 envelopes under key 1 with forged sender ids: the first fill
 *     key 1's replay partition (4,096 windows with the honest sender's),
 *     the rest are refused (replay-state-full); nothing is evicted;
 *  4. the recorded command again: refused as a replay;
 *  5. the honest sender's next message: delivered (no floor was derived
 *     from anything);
 *  6. a new signed sender on key 2 whose sequence also started an hour ago:
 *     delivered (key 1's flood does not touch key 2's partition);
 *  7. a new sender under the full key 1: refused (replay-state-full);
 *  8. the signed sender's next message: the marker that all came through.
 * Envelopes are sealed with the core API, which sets the sequences.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "veil/veil.h"
#include "veil/client.h"
#include "check_run.h"
#include "client_fixture.h"
#include "material.h"
#include "preload_fixture.h"
#include "proc.h"
#include "raw_mqtt.h"
#include "timing.h"

#define FORGED 4100
#define PER_KEY VEIL_REPLAY_DEFAULT_PER_KEY
#define HOUR_US (3600ULL * 1000000ULL)

static struct cfx F;

/* A sender made with the core API: identity, sender id, credential. */
struct sender {
	struct test_device d;
	uint64_t seq;
};

static uint64_t clock_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000ULL + (uint64_t)ts.tv_nsec / 1000U;
}

/* Seal text for topic; signed senders sign with their credential. */
static size_t seal(const uint8_t *key, uint32_t key_id, const uint8_t sender[VEIL_SENDER_ID_BYTES], uint64_t seq,
                   const struct test_device *signer, const char *topic, const char *text, uint8_t *out, size_t cap)
{
	struct veil_seal_params p = { .key = key, .key_id = key_id, .seq = seq };
	memcpy(p.sender, sender, VEIL_SENDER_ID_BYTES);
	if (signer) {
		p.signer = signer->id;
		p.credential = signer->cred;
		p.credential_len = signer->cred_len;
	}
	size_t n = 0;
	ck_assert_int_eq(veil_envelope_seal(&p, topic, (const uint8_t *)text, strlen(text), out, cap, &n), VEIL_OK);
	return n;
}

/* The attacker's connection to the broker (raw MQTT 3.1.1, anonymous):
 * QoS 1, each PUBACK awaited, so the receiver gets them in this order. */
struct mallory {
	int fd;
	uint16_t pid;
};

static void mallory_connect(struct mallory *m)
{
	struct raw_login l = { .version = 4, .client_id = "mallory" };
	int code = -1;
	m->fd = raw_login_keep(F.broker.port, &l, 5000, &code);
	ck_assert_msg(m->fd >= 0, "mallory: CONNACK %d", code);
	m->pid = 0;
}

static void mallory_publish(struct mallory *m, const char *topic, const uint8_t *env, size_t n)
{
	m->pid = (uint16_t)(m->pid % 65535U + 1U);
	ck_assert(raw_publish(m->fd, 4, topic, env, n, 1, m->pid, 5000));
}

static void send_as(struct mallory *mallory, struct sender *s, const uint8_t *key, uint32_t key_id, bool sign,
                    const char *topic, const char *text)
{
	uint8_t env[2048];
	size_t n = seal(key, key_id, s->d.sender, s->seq++, sign ? &s->d : NULL, topic, text, env, sizeof(env));
	mallory_publish(mallory, topic, env, n);
}

/* What the run must show at the receiver. */
struct expect {
	char command[64], honest[64], signed_new[64], marker[64];
	size_t delivered;     /* messages delivered to the app */
	size_t full;          /* refused replay-state-full */
};

/* The whole attack of the file comment, published by mallory. */
static void attack(struct mallory *mallory, struct expect *x)
{
	uint64_t now = clock_us();
	struct sender honest = { .seq = now - HOUR_US }, ctl = { .seq = now }, ctl2 = { .seq = now - HOUR_US },
	              late = { .seq = now };
	test_device_new(&honest.d, F.authority, "honest-1", NULL);
	test_device_new(&ctl.d, F.authority, "ctl-1", "controller");
	test_device_new(&ctl2.d, F.authority, "ctl-2", "controller");
	test_device_new(&late.d, F.authority, "late-1", NULL);
	uint32_t r = randombytes_random();
	snprintf(x->command, sizeof(x->command), "valve=open-%08x", r);
	snprintf(x->honest, sizeof(x->honest), "honest-later-%08x", r);
	snprintf(x->signed_new, sizeof(x->signed_new), "ctl2-command-%08x", r);
	snprintf(x->marker, sizeof(x->marker), "marker-%08x", r);

	send_as(mallory, &honest, F.k_sensors, 1, false, "sensors/h", "honest-early");       /* 1 */
	uint8_t cmd[2048];
	size_t cmd_len = seal(F.k_secure, 2, ctl.d.sender, ctl.seq++, &ctl.d, "secure/valve", x->command, cmd,
	                      sizeof(cmd));
	mallory_publish(mallory, "secure/valve", cmd, cmd_len);                              /* 2 */
	for (int i = 0; i < FORGED; i++) {                                                      /* 3 */
		struct sender forged = { .seq = UINT64_MAX >> 1 };
		randombytes_buf(forged.d.sender, sizeof(forged.d.sender));
		send_as(mallory, &forged, F.k_sensors, 1, false, "sensors/x", "forged");
	}
	mallory_publish(mallory, "secure/valve", cmd, cmd_len);                              /* 4 */
	send_as(mallory, &honest, F.k_sensors, 1, false, "sensors/h", x->honest);              /* 5 */
	send_as(mallory, &ctl2, F.k_secure, 2, true, "secure/valve", x->signed_new);           /* 6 */
	send_as(mallory, &late, F.k_sensors, 1, false, "sensors/l", "late-sender");            /* 7 */
	send_as(mallory, &ctl, F.k_secure, 2, true, "secure/valve", x->marker);                /* 8 */
	/* Key 1 holds the honest sender and PER_KEY - 1 forged windows. */
	size_t forged_in = PER_KEY - 1;
	x->full = (FORGED - forged_in) + 1;
	x->delivered = 1 + 1 + forged_in + 1 + 1 + 1;
	test_device_free(&honest.d);
	test_device_free(&ctl.d);
	test_device_free(&ctl2.d);
	test_device_free(&late.d);
}

static void setup(void)
{
	cfx_setup_files(&F);
	/* Nothing dropped by the broker's queue limit: the receiver must see
	 * every message the attacker sends. */
	cfx_start(&F, "allow_anonymous true\nmax_queued_messages 0\n");
	cfx_device(&F, "dash-1");
}

static void teardown(void)
{
	cfx_teardown(&F);
}

START_TEST(test_libveil_replay_not_evicted)
{
	struct cfx_opts so;
	cfx_options(&F, &so, "dash-1", VEIL_MQTT_311, NULL);
	struct cfx_sink sink;
	cfx_sink_init(&sink);
	struct veil_client *sub = NULL;
	ck_assert_int_eq(veil_client_new(&so.o, &sub), VEIL_OK);
	ck_assert_int_eq(veil_client_set_callbacks(sub, &sink, cfx_on_message, cfx_on_refusal, cfx_on_lost), VEIL_OK);
	ck_assert_int_eq(veil_client_connect(sub), VEIL_OK);
	ck_assert_int_eq(veil_client_subscribe(sub, "sensors/#", 1), VEIL_OK);
	ck_assert_int_eq(veil_client_subscribe(sub, "secure/#", 1), VEIL_OK);
	struct mallory mallory;
	mallory_connect(&mallory);

	struct expect x;
	attack(&mallory, &x);
	/* Everything before the marker has been handled when it arrives. */
	ck_assert_msg(cfx_wait(&sink, &sink.total, x.delivered, 30000), "delivered %zu of %zu", sink.total,
	              x.delivered);
	struct veil_client_stats st = VEIL_STATS_INIT;
	veil_client_stats(sub, &st);
	fprintf(stderr, "check_receiver_replay: libveil delivered=%llu refused=%llu replay=%llu replay-state-full=%llu\n",
	        (unsigned long long)st.delivered, (unsigned long long)st.refused,
	        (unsigned long long)st.refused_by_err[-VEIL_ERR_REPLAY],
	        (unsigned long long)st.refused_by_err[-VEIL_ERR_REPLAY_FULL]);
	ck_assert_msg(st.refused_by_err[-VEIL_ERR_REPLAY] == 1, "the recorded signed command was not refused as a replay");
	ck_assert_uint_eq(st.refused_by_err[-VEIL_ERR_REPLAY_FULL], x.full);
	ck_assert_uint_eq(st.refused, 1 + x.full);
	ck_assert_uint_eq(st.delivered, x.delivered);
	/* The first messages are kept by the sink: the command once, signed. */
	size_t commands = 0;
	for (size_t i = 0; i < sink.n; i++) {
		if (sink.msgs[i].len == strlen(x.command) && !memcmp(sink.msgs[i].payload, x.command, sink.msgs[i].len)) {
			commands++;
			ck_assert(sink.msgs[i].is_signed);
			ck_assert_str_eq(sink.msgs[i].sender_client_id, "ctl-1");
		}
	}
	ck_assert_uint_eq(commands, 1);
	ck_assert_uint_eq(sink.n_refused, 1 + x.full);
	veil_client_free(&sub);
	close(mallory.fd);
	cfx_sink_destroy(&sink);
}
END_TEST

START_TEST(test_preload_replay_not_evicted)
{
	char conf[400], out[400], port[16], line[700];
	cfx_device_as(&F, "rsub", "dev-rsub");
	snprintf(conf, sizeof(conf), "%s/rsub.conf", F.dir);
	snprintf(line, sizeof(line), "identity rsub.key\ncredential rsub.cred\nkeyring %s\n", F.keyring);
	ck_assert_int_eq(test_write_file(conf, line, 0644), 0);
	snprintf(out, sizeof(out), "%s/rsub.out", F.dir);
	snprintf(port, sizeof(port), "%d", F.broker.port);
	const char *argv[] = { "paho_cs_sub", "-t", "#", "-q", "1", "-h", "127.0.0.1", "-p", port, NULL };
	pid_t sub = preload_spawn(argv, true, conf, out);
	bool subscribed = test_file_wait(F.broker.log, "Sending SUBACK to dev-rsub", 15000);
	if (!subscribed)
		test_file_dump("paho_cs_sub", out);
	ck_assert_msg(subscribed, "the preloaded subscriber never subscribed");
	struct mallory mallory;
	mallory_connect(&mallory);

	struct expect x;
	attack(&mallory, &x);
	bool done = test_file_wait(out, x.marker, 30000);
	test_stop(sub);
	close(mallory.fd);
	if (!done)
		test_file_dump("paho_cs_sub", out);
	ck_assert_msg(done, "the marker never reached the preloaded app");
	ck_assert_msg(test_file_count(out, x.command) == 1, "the recorded signed command reached the app %d times",
	              test_file_count(out, x.command));
	ck_assert_int_eq(test_file_count(out, "(replay)"), 1);
	ck_assert_int_eq(test_file_count(out, "(replay-state-full)"), (int)x.full);
	ck_assert(test_file_has(out, x.honest));
	ck_assert(test_file_has(out, x.signed_new));
	ck_assert(!test_file_has(out, "late-sender"));
	ck_assert_int_eq(test_file_count(out, "forged"), PER_KEY - 1);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("receiver_replay");
	/* 4,100-odd QoS 1 publishes, each waiting for its PUBACK, then the
	 * receiver's work; the preloaded app starts slowly in sanitizer builds. */
	TCase *t = veil_tcase("replay_partitions", 60);
	tcase_add_checked_fixture(t, setup, teardown);
	tcase_add_test(t, test_libveil_replay_not_evicted);
	tcase_add_test(t, test_preload_replay_not_evicted);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	return veil_check_run(suite());
}
