/*
 * What the keyd benchmarks (bench_keyd.c, bench_keyd_revoke.c) share: child
 * processes started and waited for without Check (the test support's
 * spawn reports through Check, which a benchmark does not run), and
 * credentials for a fleet.
 */
#ifndef VEIL_BENCH_KEYD_COMMON_H
#define VEIL_BENCH_KEYD_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "veil/veil.h"
#include "../core/bundle.h"

/* Start argv with stdout and stderr to log (NULL: /dev/null); -1 on error. */
pid_t bench_keyd_spawn(const char *const *argv, const char *log);
/* Its exit status (128 + signal when killed), -1 on error. */
int bench_keyd_wait_exit(pid_t pid);
/* A credential for id from auth (client id cid, roles), valid from an hour
 * ago for two days; a veil_err. */
int bench_keyd_credential(const struct veil_identity *auth, const struct veil_identity *id, const char *cid,
                          const char *roles, uint8_t *out, size_t *len);

/* A device's identity and credential (from auth) written to
 * <dir>/<cid>.key and <dir>/<cid>.cred, their paths in idp and crp, for a
 * libveil client; a veil_err. */
int bench_keyd_device_files(const struct veil_identity *auth, const char *dir, const char *cid, const char *roles,
                            char *idp, size_t idcap, char *crp, size_t crcap);
/* A child's CPU seconds so far (utime + stime from /proc/<pid>/stat: its
 * own cost, not the broker's), -1 on error. */
double bench_keyd_cpu_s(pid_t pid);

/* A bench device's request or acknowledgement (docs/PROTOCOL.md section
 * 11): p's device, credential, client id, kind and version as given; a
 * fresh receive key appended to rx (the oldest of max goes), a fresh nonce
 * (kept in nonce), the timestamp max(clock, *last_ts). 0, or -1. */
int bench_keyd_devmsg(struct veil__devmsg_params *p, struct veil__rxkey **rx, size_t *n_rx, size_t max,
                      uint8_t nonce[VEIL__DEVMSG_NONCE_BYTES], uint64_t *last_ts, uint8_t *out, size_t cap,
                      size_t *len);

/* Open a bundle as a device does (docs/PROTOCOL.md section 12) with the
 * fleet's one authority: on success *held_version becomes the bundle's, the
 * receive keys up to the one used are spent, and *send (when has_send is
 * not NULL) is the grant to seal with now, the newest whose send window
 * holds the clock (*has_send false: none). A veil_err. */
int bench_keyd_bundle_open(const uint8_t auth_pk[VEIL_PK_BYTES], const struct veil_credential *cred,
                           struct veil__rxkey **rx, size_t *n_rx, uint64_t *held_version,
                           const uint8_t nonce[VEIL__DEVMSG_NONCE_BYTES], const uint8_t *buf, size_t len,
                           struct veil__grant *send, bool *has_send);

#endif
