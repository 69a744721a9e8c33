/*
 * plain_sensor: an ordinary Eclipse Paho MQTTClient app with no Veil code at
 * all. Run as is it publishes in clear; run under
 * LD_PRELOAD=libveil_preload.so it publishes envelopes without being rebuilt.
 *
 *   plain_sensor <server-uri> <client-id> <topic> [count]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <MQTTClient.h>

int main(int argc, char **argv)
{
	if (argc < 4 || argc > 5) {
		fprintf(stderr, "usage: plain_sensor <server-uri> <client-id> <topic> [count]\n");
		return 2;
	}
	int count = argc > 4 ? atoi(argv[4]) : 5;
	MQTTClient client;
	int rc = MQTTClient_create(&client, argv[1], argv[2], MQTTCLIENT_PERSISTENCE_NONE, NULL);
	if (rc != MQTTCLIENT_SUCCESS) {
		fprintf(stderr, "plain_sensor: create: %s\n", MQTTClient_strerror(rc));
		return 1;
	}
	MQTTClient_connectOptions opts = MQTTClient_connectOptions_initializer;
	opts.keepAliveInterval = 20;
	opts.cleansession = 1;
	if ((rc = MQTTClient_connect(client, &opts)) != MQTTCLIENT_SUCCESS) {
		fprintf(stderr, "plain_sensor: connect: %d\n", rc);
		MQTTClient_destroy(&client);
		return 1;
	}
	for (int i = 0; rc == MQTTCLIENT_SUCCESS && i < count; i++) {
		char reading[64];
		snprintf(reading, sizeof(reading), "plain reading %d", i);
		MQTTClient_message msg = MQTTClient_message_initializer;
		msg.payload = reading;
		msg.payloadlen = (int)strlen(reading);
		msg.qos = 1;
		MQTTClient_deliveryToken token;
		rc = MQTTClient_publishMessage(client, argv[3], &msg, &token);
		if (rc == MQTTCLIENT_SUCCESS)
			rc = MQTTClient_waitForCompletion(client, token, 5000);
	}
	if (rc != MQTTCLIENT_SUCCESS)
		fprintf(stderr, "plain_sensor: publish: %d\n", rc);
	MQTTClient_disconnect(client, 1000);
	MQTTClient_destroy(&client);
	return rc == MQTTCLIENT_SUCCESS ? 0 : 1;
}
