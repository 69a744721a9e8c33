/*
 * What integ_client.c (pub/sub) and integ_load.c (load generator) share:
 * the device options every mode takes and small time helpers.
 */
#ifndef VEIL_INTEG_H
#define VEIL_INTEG_H

#include <pthread.h>
#include <stdbool.h>
#include <MQTTAsync.h>
#include "veil/client.h"

struct integ_device {
	const char *uri, *id, *identity, *credential, *keyring, *state_dir, *cafile;
	const char *authorities; /* --authorities: trusted authorities (the key service's bundles) */
	int mqtt;
	bool persistent, sign;
	double step_s; /* deadline of one broker reply (CONNACK, SUBACK, PUBACK); 0: INTEG_STEP_S */
};

/* The default of --step-timeout; the scenarios pass their own, scaled by the
 * time factor (integration/lib.sh, it_dev_args). */
#define INTEG_STEP_S 15.0

#define INTEG_DEVICE_LONGOPTS                                                                              \
	{ "uri", required_argument, NULL, 'u' }, { "id", required_argument, NULL, 'i' },                   \
	{ "identity", required_argument, NULL, 'k' }, { "credential", required_argument, NULL, 'c' },      \
	{ "keyring", required_argument, NULL, 'r' }, { "state-dir", required_argument, NULL, 'S' },        \
	{ "mqtt", required_argument, NULL, 'm' }, { "persistent", no_argument, NULL, 'P' },                \
	{ "cafile", required_argument, NULL, 'A' }, { "sign", no_argument, NULL, 'g' },                    \
	{ "step-timeout", required_argument, NULL, 'O' }, { "authorities", required_argument, NULL, 'H' }

/* Returns 1 if c was a device option (stored in d). */
int integ_device_opt(struct integ_device *d, int c, const char *arg);
/* Options for a veil_async device: token login, auto-reconnect, and TLS
 * (ssl filled in, trusting d->cafile) when d->cafile is set. */
void integ_device_options(const struct integ_device *d, struct veil_client_options *o);
/* The device's --step-timeout in seconds. */
double integ_step_s(const struct integ_device *d);
/* Monotonic seconds. */
double integ_now(void);
/* A pause: pacing, or the interval of a loop that re-checks its event until
 * a deadline; never a wait on its own. */
void integ_sleep_ms(long ms);

/* Completion of one veil_async request (a veil_async_cb with the waiter as
 * ctx), waited for with a deadline. A waiter that timed out may still be
 * completed later: it must outlive the client (static or freed after it). */
struct integ_waiter {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool done;
	int rc;
};
void integ_waiter_init(struct integ_waiter *w);
void integ_waiter_done(void *ctx, int rc, int reason_code);
/* The request's result, or VEIL_ERR_TIMEOUT after timeout_s. */
int integ_waiter_wait(struct integ_waiter *w, double timeout_s);

/* integ_load.c */
int integ_load_main(int argc, char **argv);

#endif
