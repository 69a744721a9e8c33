/*
 * The front-end fixture (ffx_), shared by tests/broker/check_frontends.c
 * (start, publish, the sequence across a restart) and
 * check_frontends_open.c (what a receiver does with what arrives): the four
 * front ends of the client session core (client-shim/session.c), driven the
 * same way, and what each did in one set of words (struct ffx_outcome) so
 * a test compares them field by field.
 *
 * The front ends: libveil's veil_client_* and veil_async_* in the test
 * process, and libveil_preload.so under a small Paho program that is the
 * test binary itself, run with "--app sync|async" (an MQTTClient or an
 * MQTTAsync program with no Veil code).
 *
 * The preload cannot hand a veil_err to an unmodified app. The mapping,
 * encoded here once (ffx_preload_outcome) and documented in docs/PRELOAD.md
 * ("Errors and counters"):
 *   - start: create fails, stderr has FFX_NOT_ACTIVE + <text>, where <text>
 *     is exactly what libveil logs at VEIL_LOG_ERROR; it ends in "(<name>)",
 *     name = veil_errname of the code libveil returns;
 *   - everything else the session core says is one line, the same in both:
 *     libveil's log callback gets <line>, the preload prints
 *     "veil-preload: <line>" (a drop: "... DROPPED: <reason> (<name>)"; a
 *     refused publish: "... REFUSED: ..., nothing sent (<name>)"; a
 *     plaintext delivery: "... accepted in clear ...", the only flag the
 *     preload can give an app);
 *   - counters: the preload's exit line "summary: ..." carries the fields
 *     of struct veil_client_stats.
 */
#ifndef VEIL_TEST_FRONTEND_FIXTURE_H
#define VEIL_TEST_FRONTEND_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "veil/veil.h"
#include "veil/client.h"
#include "client_fixture.h"

/* Every receiver also subscribes to this plaintext-policy topic: the
 * plain publisher's last message, routed behind everything it sent. */
#define FFX_END_TOPIC "public/end"
#define FFX_NOT_ACTIVE "veil-preload: NOT ACTIVE, refusing MQTT operation: "

enum ffx_fe { FFX_SYNC, FFX_ASYNC, FFX_PSYNC, FFX_PASYNC, FFX_N };
extern const char *const ffx_name[FFX_N];
/* Each front end's own device (client id = the credential's), for when
 * they run at once. */
extern const char *const ffx_id[FFX_N];

/* The test case's material: dir, authority, topic keys, keyring
 * (cfx_write_keyring: sensors/#, secure/# signed, public/# plaintext), the
 * devices ffx_id[], fe-tx, fe-rx, fe-prx, and a plain broker. */
extern struct cfx ffx_env;
void ffx_material(void); /* unchecked fixture */
void ffx_teardown(void);

/* main(): the app when argv[1] is "--app" (returns its exit status), else
 * -1 after remembering this binary's path for ffx_app_spawn. */
int ffx_main(int argc, char **argv);

/* ---- what one front end did ---- */

struct ffx_text {
	char s[16384];
	size_t n;
};
void ffx_text_add(struct ffx_text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

struct ffx_counts {
	uint64_t received, delivered, refused, published, sealed, publish_refused;
	uint64_t by_err[VEIL_STATS_ERR_SLOTS];
};
/* In words, for comparing and for messages. */
void ffx_counts_str(const struct ffx_counts *c, char *out, size_t cap);

/* The veil_err named by the "(...)" that ends text, or 1 (none). */
int ffx_trailing_err(const char *text);

struct ffx_outcome {
	int rc;               /* veil_err (the preload's: mapped, see the top) */
	char text[1024];      /* a refusal to start */
	struct ffx_text ev;   /* "got <topic> <payload>[ [clear]]" / "drop <topic> <name>", in order */
	struct ffx_text log;  /* the session core's lines about messages */
	struct ffx_counts n;
	uint64_t seq[16];     /* libveil only: sequence numbers delivered */
	size_t nseq;
};

/* Same events, same lines, same counters in all four. */
void ffx_same_everywhere(const char *what, struct ffx_outcome o[FFX_N]);

/* ---- libveil, either flavour ---- */

struct ffx_lv;
/* A client from config conf (the file the preload reads); client_id unless
 * the config names one. *rc: what veil_client_new / veil_async_new said. */
struct ffx_lv *ffx_lv_new(enum ffx_fe fe, const char *conf, const char *client_id, int *rc);
/* Connect; subscribe filter and FFX_END_TOPIC unless filter is NULL. */
void ffx_lv_connect(struct ffx_lv *l, const char *filter);
/* Publish at QoS 1 and wait for the acknowledgement. */
int ffx_lv_publish(struct ffx_lv *l, const char *topic, const char *pt);
/* Wait until the events hold text (e.g. "got <topic> <payload>"); false
 * after 10 s (scaled). */
bool ffx_lv_wait_text(struct ffx_lv *l, const char *text);
/* Wait until FFX_END_TOPIC was delivered. */
void ffx_lv_wait_end(struct ffx_lv *l, const char *what);
/* Free it (receive windows saved), then its outcome, counters included. */
void ffx_lv_finish(struct ffx_lv *l, struct ffx_outcome *o);

/* ---- the preload, through the app ---- */

/* Start the app (flavour FFX_PSYNC or FFX_PASYNC) preloaded with config
 * conf: mode start (create, destroy), hold (create, wait to be stopped),
 * sub (subscribe topic and FFX_END_TOPIC, print "got <topic> <payload>",
 * exit after FFX_END_TOPIC) or pub (publish pt on topic at QoS 1, print
 * "publish rc=<Paho's>"). Exit 2: create failed. Output in out. */
pid_t ffx_app_spawn(enum ffx_fe fe, const char *conf, char *out, size_t cap, const char *mode, const char *topic,
                    const char *pt);
/* The same app on another fixture's broker (127.0.0.1:port), output in out
 * (main() must call ffx_main first). */
pid_t ffx_app_spawn_on(enum ffx_fe fe, int port, const char *conf, const char *out, const char *mode,
                       const char *topic, const char *pt);
/* Spawn, wait for exit status want_exit, and read its outcome. */
void ffx_app_run(enum ffx_fe fe, const char *conf, const char *mode, const char *topic, const char *pt,
                 int want_exit, struct ffx_outcome *o);
/* The app's output in libveil's words (o zeroed by the caller). */
void ffx_preload_outcome(const char *out, struct ffx_outcome *o);

/* ---- files and material ---- */

void ffx_pathf(char *out, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* <state>.conf for device id: identity, credential, ffx_env.keyring, state_dir state. */
void ffx_conf(char *conf, size_t cap, const char *state, const char *id);
/* A file of exactly these bytes (NULs included) with mode. */
void ffx_write_bytes(const char *path, const void *p, size_t n, unsigned mode);
uid_t ffx_nobody(void);
/* <dir>/<stem>.key */
struct veil_identity *ffx_device_load(const char *stem);
/* A credential for dev as client_id signed by auth, valid from now+from_s to now+to_s. */
size_t ffx_cred_issue(const struct veil_identity *auth, const struct veil_identity *dev, const char *client_id,
                      int64_t from_s, int64_t to_s, uint8_t out[VEIL_CREDENTIAL_MAX]);
uint64_t ffx_now_us(void);

#endif
