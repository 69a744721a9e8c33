/*
 * What the session core's files share (session.c: loading, state, seal,
 * open; session_keys.c: the key service's glue and held messages). Private to
 * veil_client_core.
 */
#ifndef VEIL_SESSION_PRIVATE_H
#define VEIL_SESSION_PRIVATE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "session.h"

struct veil__device;

/* A message waiting for a key the key service has not granted yet. */
struct veil__held {
	void *handle;                    /* the front end's */
	uint64_t deadline_ms;            /* monotonic: then refused as unknown-key */
	char *topic;                     /* for the refusal's log line */
};

struct veil__session {
	pthread_mutex_t lock;            /* keyring, seq, every receiver's windows, stats */
	char *client_id;
	char *audience;                  /* login tokens' (NULL: version 1) */
	struct veil_identity *id;        /* NULL: receive only */
	uint8_t *cred;                   /* sodium_malloc'd, NULL if none */
	size_t cred_len;
	struct veil_keyring *kr;         /* what seal and open use: static_kr, or composed with the key service's epochs */
	struct veil_keyring *static_kr;  /* the keyring file (NULL: none, key service only) */
	char *keyring_path;
	uint8_t (*authorities)[VEIL_PK_BYTES]; /* the keyring's and the authority file's */
	uint8_t (*file_authorities)[VEIL_PK_BYTES]; /* the authority file's alone: every keyring the
	                                             * session opens with trusts them too */
	size_t n_file_authorities;
	size_t n_authorities;
	struct veil__device *dev;        /* the key service's device side, NULL when off */
	struct veil__session_grants *grants; /* its latest epochs (session_keys.c) */
	pthread_mutex_t compose_lock;    /* one keyring composition at a time */
	pthread_mutex_t release_lock;    /* held-message releases vs receivers leaving */
	struct veil__receiver *receivers; /* every receiver of this session (lock) */
	struct veil_seq *seq;            /* NULL without identity */
	struct veil__writer *writer;     /* writes seq's mark ahead; NULL without state_dir (session_writer.c) */
	char *state_dir;                 /* NULL: memory only */
	int lock_fd;                     /* flock on <state_dir>/lock, -1 without */
	bool sign_all;
	bool refuse_plaintext_send;
	size_t max_per_key;
	veil__log_fn log;
	void *log_ctx;
	struct veil__seal_stats seal;
};

struct veil__receiver {
	struct veil__session *s;
	struct veil_replay *replay;      /* under s->lock */
	char *path;                      /* NULL without state dir */
	char *legacy_path;               /* libveil's old single "replay" file, removed after the first save */
	pthread_mutex_t save_lock;       /* one writer at a time */
	unsigned unsaved;                /* accepted since the last save (s->lock) */
	bool save_queued;                /* the state writer is to save it (s->lock) */
	uint64_t saved_at_ms;            /* monotonic (s->lock) */
	struct veil__recv_stats st;      /* s->lock */
	struct veil__receiver *next;     /* s->receivers (s->lock) */
	/* Messages under a key service key id not held yet (s->lock). */
	struct veil__held *held;
	size_t nheld, heldcap;
	veil__held_fn held_fn;
	void *held_ctx;
};


void veil__slog(const struct veil__session *s, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* session_writer.c: the thread that persists the sequence mark ahead of
 * use and saves receivers' windows when due. Start once seq is open, with a
 * state_dir (without it, or when the thread cannot be made, veil_seq_next
 * persists each block itself and receivers save on the delivering thread);
 * stop before seq closes; after_seal after every sealed publish, outside the
 * session lock. receiver_due: r's windows are due (outside the session
 * lock); receiver_gone: r is off s->receivers, wait for a save of it under
 * way before freeing it. */
struct veil__writer;
void veil__writer_start(struct veil__session *s);
void veil__writer_stop(struct veil__session *s);
void veil__writer_after_seal(struct veil__session *s);
void veil__writer_receiver_due(struct veil__receiver *r);
void veil__writer_receiver_gone(struct veil__receiver *r);

/* session_keys.c */
/* Start the key service's device side (identity, credential, authorities
 * loaded) when opts ask for it; compose the keyring with what it holds. */
int veil__session_keys_start(struct veil__session *s, const struct veil__session_opts *o, char *err, size_t errlen);
/* Stop it (before the keyring goes). */
void veil__session_keys_stop(struct veil__session *s);
/* The revocation knowledge for opening (NULL: none). */
const struct veil__revoked *veil__session_revoked(struct veil__session *s);
/* Whether a refused open (rc) of in on topic should wait for the key
 * service instead (an envelope under a key service key id not held). Takes
 * no lock. */
bool veil__session_holdable(struct veil__session *s, const char *topic, const uint8_t *in, size_t len, int rc);
/* A receiver leaves: its held messages are refused (expired) first. */
void veil__receiver_drop_held(struct veil__receiver *r);
/* Replace the static keyring (reload), composed again with the key
 * service's epochs; takes kr. */
int veil__session_set_static(struct veil__session *s, struct veil_keyring *kr);

#endif
