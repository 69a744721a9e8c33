/*
 * A fleet of key-service devices for the keyd benchmarks (bench_keyd_revoke.c,
 * bench_keyd_epochs.c): a real Mosquitto with the Veil plugin on a free
 * 127.0.0.1 port, veil-keyd as a child process, and n devices d0 .. d<n-1>
 * in this process (core/bundle.c only, one MQTT 3.1.1 connection each; the
 * test support's keyd_device.c reports through Check, which a benchmark
 * does not run). Every device opens every bundle sealed to it and
 * acknowledges it, as libveil does, on Paho's callback thread.
 *
 * Apart from bench_keyd_common.c (linked into benchmarks without Paho's
 * asynchronous client or SQLite) because it needs both.
 */
#ifndef VEIL_BENCH_KEYD_FLEET_H
#define VEIL_BENCH_KEYD_FLEET_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <MQTTAsync.h>

#include "veil/veil.h"
#include "../core/bundle.h"
#include "broker.h"

#define BENCH_KEYD_RX_MAX 8 /* receive keys a device keeps (the oldest goes) */
#define BENCH_KEYD_WAIT_S 240.0 /* every wait's deadline */

struct bench_keyd_fleet;

struct bench_keyd_dev {
	struct bench_keyd_fleet *f;
	struct veil_identity *id;
	uint8_t cred[VEIL_CREDENTIAL_MAX];
	size_t cred_len;
	struct veil_credential c;
	struct veil__rxkey *rx[BENCH_KEYD_RX_MAX];
	size_t n_rx;
	uint8_t nonce[VEIL__DEVMSG_NONCE_BYTES]; /* of its latest message */
	uint64_t held_version;
	struct veil__grant cur; /* the epoch it would seal with (the newest sendable) */
	bool has_cur;
	MQTTAsync c_mqtt;
	char topic_req[64];
	uint64_t last_ts;
	bool up, subscribed, lost;
	double lost_at;
};

/* Fields below the lock's line are read and written under lock. */
struct bench_keyd_fleet {
	size_t n;
	char dir[256], log[300], revoked[300], db[300], apub[320], uri[64];
	uint8_t auth_pk[VEIL_PK_BYTES];
	struct veil_identity *auth; /* for more devices (bench_keyd_device_files) */
	struct test_broker br;
	pid_t keyd;
	struct bench_keyd_dev *devs;
	long log_off;          /* keyd's log read so far (bench_keyd_fleet_acks) */
	size_t acks;           /* `ack | record` lines of the fleet (d<i>) in it */
	uint64_t log_bundle_bytes; /* bytes= of its `bundle | issue` lines */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int errors;            /* bundles a device could not open, acks not sent */
	uint64_t bundles;      /* bundles the devices received */
	uint64_t bundle_bytes; /* their payload bytes */
	uint64_t ack_bytes;    /* acknowledgements the devices sent (payload bytes) */
	uint64_t send_changes; /* times d0's epoch to seal with changed to a newer one */
};

/* A thousand connections here and at the broker (which inherits it): the
 * soft limit of open files raised to the hard one. Once, at start. */
void bench_keyd_fleet_nofile(void);

/*
 * Start it (f is overwritten; its lock and condition are made here): the
 * broker (ACL: role fleet may read and write fleet/#, encrypted; an empty
 * revocation list), keyd with keyd_conf appended to its configuration
 * (request_rate, scopes, ...), then n devices of role
 * fleet, each connected, subscribed and having sent its first request.
 * It does not wait for their bundles (bench_keyd_fleet_wait_acks). 0, or
 * -1 (then bench_keyd_fleet_stop still cleans up).
 */
int bench_keyd_fleet_start(struct bench_keyd_fleet *f, size_t n, const char *plugin, const char *keyd_bin,
                           const char *keyd_conf);
/* Disconnect the devices, stop keyd and the broker by PID, remove the
 * directory; once, after bench_keyd_fleet_start whatever it returned. */
void bench_keyd_fleet_stop(struct bench_keyd_fleet *f);

/* keyd's `ack | record` lines from the fleet so far (its log read on from
 * where the last call stopped, whole lines only). */
size_t bench_keyd_fleet_acks(struct bench_keyd_fleet *f);
/* Until keyd's log holds want of them: the time then (bench_now_s), or a
 * negative value after BENCH_KEYD_WAIT_S. */
double bench_keyd_fleet_wait_acks(struct bench_keyd_fleet *f, size_t want);
/* Until *flag (set under f->lock, f->cond broadcast): false at the
 * deadline (BENCH_KEYD_WAIT_S). */
bool bench_keyd_fleet_wait_flag(struct bench_keyd_fleet *f, const bool *flag);
/* Bytes of keyd's store in use (pages less the free list, as a reader
 * sees it, WAL included), -1 on error. */
double bench_keyd_fleet_store_used(const struct bench_keyd_fleet *f);

#endif
