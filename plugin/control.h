/*
 * The admin API's command parser and replies (pure logic, cJSON only; the
 * broker side is control.c). A request is dynsec's shape:
 *
 *   {"commands":[{"command":"revokeClient","clientId":"dev-1","correlationData":"7f"}, ...]}
 *
 * and so is the answer, one response per command, in order:
 *
 *   {"responses":[{"command":"revokeClient","correlationData":"7f","data":{...}}]}
 *   {"responses":[{"command":"kickClient","error":"client not connected","reason":"not-found"}]}
 *
 * Command names and field names match without regard to case (as dynsec's,
 * so its "clientid" works too). Every field is checked here with the rule
 * the plugin's files use (docs/OPERATIONS.md lists them): a command either
 * comes out valid or carries an error sentence and a reason token (the
 * control_errors counter); a payload that is not a JSON object with a
 * "commands" array, or is larger than VP_CONTROL_MAX_PAYLOAD, or holds more
 * than VP_CONTROL_MAX_COMMANDS commands, is refused as a whole.
 */
#ifndef VP_CONTROL_H
#define VP_CONTROL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "veil/identity.h"

struct cJSON;

#define VP_CONTROL_MAX_PAYLOAD (64U * 1024U)  /* bytes of one request */
#define VP_CONTROL_MAX_COMMANDS 64U           /* commands in one request */
#define VP_CONTROL_PASSWORD_MAX 1024U         /* bytes of an addPasswordUser password */
#define VP_CONTROL_CORRELATION_MAX 256U       /* bytes of correlationData */

enum vp_cmd_kind {
	VP_CMD_LIST_CLIENTS = 0,
	VP_CMD_KICK_CLIENT,
	VP_CMD_REVOKE_CLIENT,
	VP_CMD_REVOKE_CREDENTIAL,
	VP_CMD_REMOVE_REVOCATION,
	VP_CMD_LIST_REVOCATIONS,
	VP_CMD_LIST_PASSWORD_USERS,
	VP_CMD_ADD_PASSWORD_USER,
	VP_CMD_REMOVE_PASSWORD_USER,
	VP_CMD_RELOAD,
	VP_CMD_GET_COUNTERS,
	VP_CMD_UNKNOWN
};

struct vp_cmd {
	enum vp_cmd_kind kind;
	const char *name;             /* canonical ("revokeClient"); "unknown" for VP_CMD_UNKNOWN */
	const char *given;            /* the name as sent (in the tree), or NULL */
	const char *correlation;      /* correlationData (in the tree), or NULL */
	const char *error;            /* non-NULL: refused, this sentence ... */
	const char *reason;           /* ... and this token */
	const char *client_id;        /* kickClient, revokeClient, removeRevocation */
	bool has_credential;          /* revokeCredential, removeRevocation */
	uint8_t credential_id[VEIL_CREDENTIAL_ID_BYTES];
	const char *username;         /* addPasswordUser, removePasswordUser */
	char *password;               /* addPasswordUser (in the tree; wiped by vp_control__req_free) */
	size_t password_len;
	uint32_t offset, count;       /* listClients, listRevocations, listPasswordUsers (count 0: all) */
};

struct vp_control_req {
	struct cJSON *tree;
	struct vp_cmd *cmds;
	size_t n;
	const char *error;            /* non-NULL: the whole request is refused */
	const char *reason;
};

/* VEIL_OK with *req filled (a whole-request error, or n commands each valid
 * or refused), or VEIL_ERR_NOMEM (req is then empty). The payload is read,
 * never written. Free with vp_control__req_free, also after an error. */
int vp_control__parse(const void *payload, size_t len, struct vp_control_req *req);
/* Wipes the password strings, frees the tree; req is then empty. */
void vp_control__req_free(struct vp_control_req *req);

/* {"responses":[]}: the array is returned in *responses. NULL on ENOMEM. */
struct cJSON *vp_control__reply_new(struct cJSON **responses);
/* One response object appended to responses: "command", "correlationData"
 * (when set), and "error" + "reason" when error is set. Returns it (to add
 * "data" to), or NULL on ENOMEM. */
struct cJSON *vp_control__reply_add(struct cJSON *responses, const char *command, const char *correlation,
                                    const char *error, const char *reason);

/* The listings (control_list.c, broker side): data gets the command's
 * "data" members; false on ENOMEM. */
struct vp_ctx;
struct vp_client;
bool vp_control__list_clients(struct vp_ctx *ctx, const struct vp_cmd *cmd, struct cJSON *data);
bool vp_control__list_revocations(struct vp_ctx *ctx, const struct vp_cmd *cmd, struct cJSON *data);
bool vp_control__list_users(struct vp_ctx *ctx, const struct vp_cmd *cmd, struct cJSON *data);
/* A connected client the plugin logged in (not parked, not departed). */
bool vp_control__online(const struct vp_client *c);

#endif
