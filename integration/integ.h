/*
 * What integ_client.c (pub/sub) and integ_load.c (load generator) share:
 * the device options every mode takes and small time helpers.
 */
#ifndef VEIL_INTEG_H
#define VEIL_INTEG_H

#include <stdbool.h>
#include <MQTTAsync.h>
#include "veil/client.h"

struct integ_device {
	const char *uri, *id, *identity, *credential, *keyring, *state_dir, *cafile;
	int mqtt;
	bool persistent, sign;
};

#define INTEG_DEVICE_LONGOPTS                                                                              \
	{ "uri", required_argument, NULL, 'u' }, { "id", required_argument, NULL, 'i' },                   \
	{ "identity", required_argument, NULL, 'k' }, { "credential", required_argument, NULL, 'c' },      \
	{ "keyring", required_argument, NULL, 'r' }, { "state-dir", required_argument, NULL, 'S' },        \
	{ "mqtt", required_argument, NULL, 'm' }, { "persistent", no_argument, NULL, 'P' },                \
	{ "cafile", required_argument, NULL, 'A' }, { "sign", no_argument, NULL, 'g' }

/* Returns 1 if c was a device option (stored in d). */
int integ_device_opt(struct integ_device *d, int c, const char *arg);
/* Options for a veil_async device: token login, auto-reconnect, and TLS
 * (ssl filled in, trusting d->cafile) when d->cafile is set. */
void integ_device_options(const struct integ_device *d, struct veil_client_options *o, MQTTAsync_SSLOptions *ssl);
double integ_now(void);
void integ_sleep_ms(long ms);

/* integ_load.c */
int integ_load_main(int argc, char **argv);

#endif
