/*
 * sensor: publishes readings through libveil. The app hands plaintext to
 * veil_client_publish; the broker and the wire only ever see envelopes.
 *
 *   sensor <server-uri> <client-config> [topic] [count]
 *
 * The client config file names the identity, credential, keyring and state
 * dir (docs/SHIM.md). Exit status 0 when every reading was delivered.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "veil/veil.h"
#include "veil/client.h"

static void log_line(void *ctx, int level, const char *msg)
{
	(void)ctx;
	if (level <= VEIL_LOG_WARNING)
		fprintf(stderr, "sensor: %s\n", msg);
}

int main(int argc, char **argv)
{
	if (argc < 3 || argc > 5) {
		fprintf(stderr, "usage: sensor <server-uri> <client-config> [topic] [count]\n");
		return 2;
	}
	const char *topic = argc > 3 ? argv[3] : "sensors/room1/temp";
	int count = argc > 4 ? atoi(argv[4]) : 5;

	struct veil_client_options o;
	memset(&o, 0, sizeof(o));
	o.version = VEIL_CLIENT_OPTIONS_VERSION;
	o.server_uri = argv[1];
	o.mqtt_version = VEIL_MQTT_5;
	o.log = log_line;
	struct veil_client_config *cfg = NULL;
	char err[512] = "";
	if (veil_client_config_load(argv[2], &o, &cfg, err, sizeof(err)) != VEIL_OK) {
		fprintf(stderr, "sensor: %s\n", err);
		return 1;
	}
	struct veil_client *c = NULL;
	int rc = veil_client_new(&o, &c);
	veil_client_config_free(&cfg); /* the client has loaded everything it needs */
	if (rc == VEIL_OK)
		rc = veil_client_connect(c);
	for (int i = 0; rc == VEIL_OK && i < count; i++) {
		char reading[64];
		snprintf(reading, sizeof(reading), "reading %d: %.1f C", i, 20.0 + i * 0.5);
		int token = 0;
		rc = veil_client_publish(c, topic, reading, strlen(reading), 1, false, &token);
		if (rc == VEIL_OK)
			rc = veil_client_wait(c, token, 5000, NULL);
	}
	if (rc != VEIL_OK)
		fprintf(stderr, "sensor: %s (%s)\n", veil_strerror(rc), veil_errname(rc));
	if (c)
		veil_client_disconnect(c, 1000);
	veil_client_free(&c);
	return rc == VEIL_OK ? 0 : 1;
}
