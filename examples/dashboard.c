/*
 * dashboard: subscribes through libveil and prints what it receives. Only
 * verified plaintext reaches on_message; anything tampered, replayed, moved
 * to another topic or sent in clear on a protected topic goes to on_refusal.
 *
 *   dashboard <server-uri> <client-config> <filter> [count]
 *
 * Prints "<topic> <sender> <payload>" per message and exits after count
 * messages (default: run until interrupted).
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "veil/veil.h"
#include "veil/client.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int received;
static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static void on_message(void *ctx, const struct veil_message *m)
{
	(void)ctx;
	pthread_mutex_lock(&lock);
	printf("%s %s%s%s %.*s\n", m->topic, m->plaintext ? "(clear)" : m->sender_hex, m->is_signed ? " signed:" : "",
	       m->is_signed ? m->sender_client_id : "", (int)m->len, (const char *)m->payload);
	fflush(stdout);
	received++;
	pthread_mutex_unlock(&lock);
}

static void on_refusal(void *ctx, const struct veil_refusal *r)
{
	(void)ctx;
	fprintf(stderr, "dashboard: refused message on %s: %s\n", r->topic, veil_errname(r->err));
}

int main(int argc, char **argv)
{
	if (argc < 4 || argc > 5) {
		fprintf(stderr, "usage: dashboard <server-uri> <client-config> <filter> [count]\n");
		return 2;
	}
	int count = argc > 4 ? atoi(argv[4]) : 0;
	struct veil_client_options o;
	memset(&o, 0, sizeof(o));
	o.version = VEIL_CLIENT_OPTIONS_VERSION;
	o.server_uri = argv[1];
	o.mqtt_version = VEIL_MQTT_5;
	struct veil_client_config *cfg = NULL;
	char err[512] = "";
	if (veil_client_config_load(argv[2], &o, &cfg, err, sizeof(err)) != VEIL_OK) {
		fprintf(stderr, "dashboard: %s\n", err);
		return 1;
	}
	struct veil_client *c = NULL;
	int rc = veil_client_new(&o, &c);
	veil_client_config_free(&cfg);
	if (rc == VEIL_OK)
		rc = veil_client_set_callbacks(c, NULL, on_message, on_refusal, NULL);
	if (rc == VEIL_OK)
		rc = veil_client_connect(c);
	if (rc == VEIL_OK)
		rc = veil_client_subscribe(c, argv[3], 1);
	if (rc != VEIL_OK) {
		fprintf(stderr, "dashboard: %s (%s)\n", veil_strerror(rc), veil_errname(rc));
		veil_client_free(&c);
		return 1;
	}
	/* Tell a supervising script we are subscribed. */
	fprintf(stderr, "dashboard: subscribed to %s\n", argv[3]);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	for (;;) {
		pthread_mutex_lock(&lock);
		bool done = count > 0 && received >= count;
		pthread_mutex_unlock(&lock);
		if (done || stop || !veil_client_is_connected(c))
			break;
		usleep(20000);
	}
	struct veil_client_stats st;
	veil_client_stats(c, &st);
	fprintf(stderr, "dashboard: delivered %llu, refused %llu\n", (unsigned long long)st.delivered,
	        (unsigned long long)st.refused);
	veil_client_disconnect(c, 1000);
	veil_client_free(&c);
	return 0;
}
