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
#define VEIL_REPLAY_DEFAULT_PER_KEY 4096U

/*
 * Receive windows, partitioned by key id: each key has its own table of
 * per-sender windows, at most max_per_key of them. No window is ever
 * evicted (an evicted window would let a recorded message be delivered
 * again, and a floor derived from it would lock out honest senders whose
 * sequences started at the clock): a new sender under a full key is
 * refused with VEIL_ERR_REPLAY_FULL until the state is reset by the owner.
 * Callers create a window only for an authenticated message (after the
 * AEAD and, for signed keys, the signature verified), so only holders of a
 * key can fill that key's partition.
 */
struct veil_replay;
VEIL_EXPORT int veil_replay_new(size_t max_per_key, struct veil_replay **out);
VEIL_EXPORT void veil_replay_free(struct veil_replay **r);
/* Check only (no state change): VEIL_OK, VEIL_ERR_REPLAY, or
 * VEIL_ERR_REPLAY_FULL (new sender, key partition full). */
VEIL_EXPORT int veil_replay_check(const struct veil_replay *r, uint32_t key_id,
                                  const uint8_t sender[VEIL_SENDER_ID_BYTES], uint64_t seq);
/* Check and record; call only after the message authenticated. */
VEIL_EXPORT int veil_replay_accept(struct veil_replay *r, uint32_t key_id, const uint8_t sender[VEIL_SENDER_ID_BYTES],
                                   uint64_t seq);
/* Windows held under key_id (for tests and diagnostics). */
VEIL_EXPORT size_t veil_replay_count(const struct veil_replay *r, uint32_t key_id);
/* Persist / restore the receive windows (so a receiver restart does not
 * reopen replays). load: VEIL_ERR_STATE for a malformed file. A file of the
 * previous format (one table keyed by a hash of sender and key id) is read
 * too: each old window seeds the new window of its (sender, key id) the
 * first time that pair is seen again, so an upgrade reopens nothing. */
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
