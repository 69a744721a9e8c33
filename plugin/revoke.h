/*
 * Revocation list (pure logic). File format, one entry per line:
 *   credential <32 hex digits>    a credential id (veil credential show)
 *   client <client id>            every login with this client id
 * Blank lines and lines starting with '#' are ignored. Any other line makes
 * the whole file invalid (the caller keeps its previous list).
 */
#ifndef VP_REVOKE_H
#define VP_REVOKE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "veil/identity.h"

struct vp_revoke;

/* VEIL_OK, or VEIL_ERR_IO / VEIL_ERR_PARSE / VEIL_ERR_NOMEM with "path:line: reason" in err. */
int vp_revoke__load(const char *path, struct vp_revoke **out, char *err, size_t errlen);
/* An empty list (no file configured). */
int vp_revoke__empty(struct vp_revoke **out);
void vp_revoke__free(struct vp_revoke **r);
bool vp_revoke__credential(const struct vp_revoke *r, const uint8_t id[VEIL_CREDENTIAL_ID_BYTES]);
bool vp_revoke__client(const struct vp_revoke *r, const char *client_id);
size_t vp_revoke__count(const struct vp_revoke *r);
/* One list holding the entries of both (either may be NULL): the
 * operator's file and the plugin's runtime file are one list. */
int vp_revoke__merge(const struct vp_revoke *a, const struct vp_revoke *b, struct vp_revoke **out);
/* One line of the file's syntax ("credential <hex id>" or "client <client
 * id>", no comment) as a list: what the relay carries between nodes
 * (relay.c). VEIL_OK (an empty line gives an empty list), VEIL_ERR_PARSE
 * with the reason in why, VEIL_ERR_NOMEM. */
int vp_revoke__entry(const char *line, struct vp_revoke **out, char *why, size_t whylen);
/* The list in the file's syntax: header (a comment line, may be NULL), then
 * one entry a line, sorted. malloc'd, *len its length; NULL when out of
 * memory. */
char *vp_revoke__format(const struct vp_revoke *r, const char *header, size_t *len);
/* Every entry once, sorted: credential ids (client_id NULL), then client
 * ids (credential_id NULL). */
void vp_revoke__each(const struct vp_revoke *r,
                     void (*fn)(void *arg, const uint8_t *credential_id, const char *client_id), void *arg);

#endif
