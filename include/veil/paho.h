/*
 * libveil with Paho types: MQTT 5 properties and subscription options on
 * publish and subscribe. veil/client.h is complete without this header; a
 * program includes it (and Paho's headers with it) only when it needs
 * properties. The property lists are passed to Paho as they are (Paho copies
 * them); libveil adds none to a publish.
 */
#ifndef VEIL_PAHO_H
#define VEIL_PAHO_H

#include <MQTTClient.h>
#include <MQTTAsync.h>

#include "veil/client.h"

#ifdef __cplusplus
extern "C" {
#endif

/* veil_client_publish with MQTT 5 properties (NULL allowed). */
VEIL_EXPORT int veil_client_publish5(struct veil_client *c, const char *topic, const void *payload, size_t len,
                                     int qos, bool retained, MQTTProperties *props, int *token);
VEIL_EXPORT int veil_client_subscribe5(struct veil_client *c, const char *filter, int qos,
                                       MQTTSubscribe_options *opts, MQTTProperties *props);
VEIL_EXPORT int veil_async_publish5(struct veil_async *a, const char *topic, const void *payload, size_t len,
                                    int qos, bool retained, MQTTProperties *props, veil_done_cb done, void *ctx);
VEIL_EXPORT int veil_async_subscribe5(struct veil_async *a, const char *filter, int qos,
                                      MQTTSubscribe_options *opts, MQTTProperties *props, veil_done_cb done,
                                      void *ctx);

#ifdef __cplusplus
}
#endif
#endif
