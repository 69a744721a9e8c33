/*
 * The preload fixture (preload_), shared by tests/broker/check_preload.c
 * (Debian's Paho sample programs) and check_preload_api.c (Paho API paths
 * those samples do not use). Test material made with the core API in a temp
 * dir (authority, devices dev-pub / dev-sub / dev-will, a 0600 keyring for
 * veil/#, client configs), the test case's broker (plain, or with the Veil
 * plugin), child processes with or without the preload, and a plain
 * `mosquitto_sub -t '#' -v` observer. The module keeps one global,
 * preload_env: the broker and files of the running test case.
 */
#ifndef VEIL_TEST_PRELOAD_FIXTURE_H
#define VEIL_TEST_PRELOAD_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "broker.h"

#define PRELOAD_TOPIC "veil/plant/temp"

struct preload_env {
	struct test_broker broker;
	char dir[256];
	char port_s[16];
	/* configs: publisher dev-pub, subscriber dev-sub, dev-pub signing every
	 * message, dev-sub with "log none", dev-will */
	char pub_conf[512], sub_conf[512], signed_conf[512], quiet_conf[512], will_conf[512];
	char kr_path[512], authority_pub[512], acl_path[512];
	unsigned counter; /* makes output file names unique */
};
extern struct preload_env preload_env;

/* Unchecked fixtures (run once per test case, in the runner): material,
 * then a plain broker or one with the Veil plugin (the injected login must
 * be a valid token; anonymous stays allowed for the observer). */
void preload_plain_broker_start(void);
void preload_plugin_broker_start(void);
void preload_broker_stop(void);
/* Remove the material (once, at the end of main). */
void preload_cleanup(void);

/* <dir>/<name>, and a config file written there. */
void preload_path(char *out, size_t cap, const char *name);
void preload_write_conf(const char *path, const char *body);
/* <dir>/<stem>-<pid>-<n>.out, unique per call. */
void preload_out_path(char *out, size_t cap, const char *stem);

/* Start argv with stdout+stderr to outfile. preload: LD_PRELOAD the built
 * library (after the ASan runtime in sanitizer builds). config NULL: unset
 * VEIL_CONFIG. */
pid_t preload_spawn(const char *const argv[], bool preload, const char *config, const char *outfile);
/* How many SUBACKs the broker has sent to client_id so far (broker log). */
int preload_subacks(const char *client_id);
/* Wait until the broker sent client_id its (before + 1)th SUBACK: the
 * subscription is active. Dumps what (its output) on failure. */
void preload_wait_subscribed(const char *client_id, int before, const char *what, const char *out);

/* A plain observer on '#', subscribed when this returns; its output file in out. */
pid_t preload_observer_start(char *out, size_t cap);
/* Publish a fresh marker (a plain client, topic "ping") and wait until the
 * observer printed it: everything the broker routed to the observer
 * before has been printed. */
void preload_observer_sync(const char *obs_out);
/* Publish "<prefix>-<random>" on PRELOAD_TOPIC with a preloaded publisher
 * (config pconf, MQTT version "311" or "5") and wait until sub_out (a
 * subscriber already subscribed) shows it; the text in secret. */
bool preload_publish_seen(const char *pub_bin, const char *pconf, const char *version, const char *sub_out,
                          const char *prefix, char *secret, size_t cap);
/* Publish with plain mosquitto_pub (no preload): "-m text" or "-f file". */
void preload_plain_publish(const char *topic, const char *flag, const char *arg);

#endif
