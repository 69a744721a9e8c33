/*
 * Replay protection and sender sequence state (docs/PROTOCOL.md section 7).
 *
 * Receivers keep, per sender id, the highest sequence seen and a bitmap of the
 * VEIL_REPLAY_WINDOW sequences below it. Senders start at max(persisted
 * high-water mark, current time in microseconds) and persist the mark in blocks
 * before using a block, so neither a reboot nor a lost state file makes new
 * messages look old. Nonces are random, so lost state can never reuse one.
 * Neither object is thread-safe; callers lock.
 */
#ifndef VEIL_REPLAY_H
#define VEIL_REPLAY_H

#include <stddef.h>
#include <stdint.h>
#include "veil/export.h"
#include "veil/error.h"
#include "veil/identity.h"

#ifdef __cplusplus
extern "C" {
#endif

#define VEIL_REPLAY_WINDOW 1024U
#define VEIL_SEQ_BLOCK 4096U

struct veil_replay;
/* max_senders bounds memory; the least recently seen sender is evicted past it. */
VEIL_EXPORT int veil_replay_new(size_t max_senders, struct veil_replay **out);
VEIL_EXPORT void veil_replay_free(struct veil_replay **r);
/* Check only (no state change): VEIL_OK or VEIL_ERR_REPLAY. */
VEIL_EXPORT int veil_replay_check(const struct veil_replay *r, const uint8_t sender[VEIL_SENDER_ID_BYTES],
                                  uint64_t seq);
/* Check and record; call only after the message authenticated. */
VEIL_EXPORT int veil_replay_accept(struct veil_replay *r, const uint8_t sender[VEIL_SENDER_ID_BYTES], uint64_t seq);
/* Persist / restore the receive windows (so a receiver restart does not reopen replays). */
VEIL_EXPORT int veil_replay_save(const struct veil_replay *r, const char *path);
VEIL_EXPORT int veil_replay_load(struct veil_replay *r, const char *path);

struct veil_seq;
/* path NULL: in-memory only (start from the clock). now_us = unix time in microseconds. */
VEIL_EXPORT int veil_seq_open(const char *path, uint64_t now_us, struct veil_seq **out);
VEIL_EXPORT int veil_seq_next(struct veil_seq *s, uint64_t *out);
VEIL_EXPORT void veil_seq_close(struct veil_seq **s);

#ifdef __cplusplus
}
#endif
#endif
