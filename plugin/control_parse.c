/*
 * The admin API's command parser and replies (see control.h). cJSON does the
 * JSON (as dynsec); every name goes through the core's one name rule, so
 * the API takes exactly what the plugin's files take.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>
#include <sodium.h>

#include "veil/error.h"
#include "../core/names.h" /* the one rule for names */
#include "control.h"

enum {
	F_CLIENT = 1U << 0,     /* "clientId", required */
	F_CREDENTIAL = 1U << 1, /* "credentialId", required */
	F_EITHER = 1U << 2,     /* exactly one of "clientId", "credentialId" */
	F_USER = 1U << 3,       /* "username", required */
	F_PASSWORD = 1U << 4,   /* "password", required */
	F_PAGE = 1U << 5        /* "offset", "count", optional */
};

static const struct {
	const char *name;
	enum vp_cmd_kind kind;
	unsigned fields;
} CMDS[] = {
	{ "listClients", VP_CMD_LIST_CLIENTS, F_PAGE },
	{ "kickClient", VP_CMD_KICK_CLIENT, F_CLIENT },
	{ "revokeClient", VP_CMD_REVOKE_CLIENT, F_CLIENT },
	{ "revokeCredential", VP_CMD_REVOKE_CREDENTIAL, F_CREDENTIAL },
	{ "removeRevocation", VP_CMD_REMOVE_REVOCATION, F_EITHER },
	{ "listRevocations", VP_CMD_LIST_REVOCATIONS, F_PAGE },
	{ "listPasswordUsers", VP_CMD_LIST_PASSWORD_USERS, F_PAGE },
	{ "addPasswordUser", VP_CMD_ADD_PASSWORD_USER, F_USER | F_PASSWORD },
	{ "removePasswordUser", VP_CMD_REMOVE_PASSWORD_USER, F_USER },
	{ "reload", VP_CMD_RELOAD, 0 },
	{ "getCounters", VP_CMD_GET_COUNTERS, 0 },
};

static void refuse(struct vp_cmd *c, const char *error, const char *reason)
{
	if (!c->error) {
		c->error = error;
		c->reason = reason;
	}
}

/* A string member (case-insensitive name, as dynsec): NULL when absent;
 * a member of another type refuses the command. */
static const char *string_of(struct vp_cmd *c, const cJSON *o, const char *name, bool required)
{
	const cJSON *j = cJSON_GetObjectItem(o, name);
	if (!j) {
		if (required)
			refuse(c, "a field is missing (see docs/OPERATIONS.md for this command's fields)", "missing-field");
		return NULL;
	}
	if (!cJSON_IsString(j) || !j->valuestring) {
		refuse(c, "a field has the wrong type (strings are quoted)", "bad-field");
		return NULL;
	}
	return j->valuestring;
}

static uint32_t page_value(struct vp_cmd *c, const cJSON *o, const char *name)
{
	const cJSON *j = cJSON_GetObjectItem(o, name);
	if (!j)
		return 0;
	double v = cJSON_IsNumber(j) ? j->valuedouble : -1;
	if (!(v >= 0 && v <= 1e9) || floor(v) != v) {
		refuse(c, "offset and count are whole numbers from 0", "bad-field");
		return 0;
	}
	return (uint32_t)v;
}

static void client_field(struct vp_cmd *c, const cJSON *o, bool required)
{
	const char *id = string_of(c, o, "clientId", required);
	if (!id)
		return;
	/* Any login's client id: the revocation file's rule. */
	if (veil__name_why(id, VEIL__NAME_USERNAME))
		refuse(c, "clientId is not a valid client id (docs/PROTOCOL.md section 3)", "bad-field");
	else
		c->client_id = id;
}

static void credential_field(struct vp_cmd *c, const cJSON *o, bool required)
{
	const char *hex = string_of(c, o, "credentialId", required);
	if (!hex)
		return;
	size_t n = 0;
	const char *end = NULL;
	if (strlen(hex) != 2 * VEIL_CREDENTIAL_ID_BYTES ||
	    sodium_hex2bin(c->credential_id, sizeof(c->credential_id), hex, strlen(hex), NULL, &n, &end) != 0 ||
	    n != sizeof(c->credential_id) || *end != '\0')
		refuse(c, "credentialId is 32 hex digits (veil credential show)", "bad-field");
	else
		c->has_credential = true;
}

static void password_field(struct vp_cmd *c, const cJSON *o)
{
	cJSON *j = cJSON_GetObjectItem(o, "password");
	const char *pw = string_of(c, o, "password", true);
	if (!pw)
		return;
	size_t n = strlen(pw);
	if (n == 0 || n > VP_CONTROL_PASSWORD_MAX) {
		refuse(c, "password must be 1 to 1024 bytes", "bad-field");
		return;
	}
	c->password = j->valuestring;
	c->password_len = n;
}

static void parse_command(struct vp_cmd *c, const cJSON *o)
{
	c->kind = VP_CMD_UNKNOWN;
	c->name = "unknown";
	if (!cJSON_IsObject(o)) {
		refuse(c, "a command is a JSON object", "bad-request");
		return;
	}
	const cJSON *corr = cJSON_GetObjectItem(o, "correlationData");
	if (corr && (!cJSON_IsString(corr) || strlen(corr->valuestring) > VP_CONTROL_CORRELATION_MAX))
		refuse(c, "correlationData is a string of at most 256 bytes", "bad-field");
	else if (corr)
		c->correlation = corr->valuestring;
	const char *given = string_of(c, o, "command", true);
	if (!given)
		return;
	c->given = given;
	size_t i = 0;
	while (i < sizeof(CMDS) / sizeof(CMDS[0]) && strcasecmp(CMDS[i].name, given) != 0)
		i++;
	if (i == sizeof(CMDS) / sizeof(CMDS[0])) {
		refuse(c, "unknown command", "unknown-command");
		return;
	}
	c->kind = CMDS[i].kind;
	c->name = CMDS[i].name;
	unsigned f = CMDS[i].fields;
	if (f & F_CLIENT)
		client_field(c, o, true);
	if (f & F_CREDENTIAL)
		credential_field(c, o, true);
	if (f & F_EITHER) {
		bool has_client = cJSON_GetObjectItem(o, "clientId") != NULL;
		bool has_cred = cJSON_GetObjectItem(o, "credentialId") != NULL;
		if (has_client == has_cred)
			refuse(c, "give exactly one of clientId and credentialId", has_client ? "bad-field" : "missing-field");
		else if (has_client)
			client_field(c, o, true);
		else
			credential_field(c, o, true);
	}
	if (f & F_USER) {
		const char *u = string_of(c, o, "username", true);
		if (u && veil__name_why(u, VEIL__NAME_PASSWD_USER))
			refuse(c, "username is not a valid password-file user name (docs/PROTOCOL.md section 3)", "bad-field");
		else
			c->username = u;
	}
	if (f & F_PASSWORD)
		password_field(c, o);
	if (f & F_PAGE) {
		c->offset = page_value(c, o, "offset");
		c->count = page_value(c, o, "count");
	}
}

/* Every password in the tree, wherever it was (a refused command's too). */
static void wipe_passwords(cJSON *j)
{
	for (; j; j = j->next) {
		if (j->string && !strcasecmp(j->string, "password") && cJSON_IsString(j) && j->valuestring)
			sodium_memzero(j->valuestring, strlen(j->valuestring));
		wipe_passwords(j->child);
	}
}

int vp_control__parse(const void *payload, size_t len, struct vp_control_req *req)
{
	memset(req, 0, sizeof(*req));
	if (!payload || len == 0) {
		req->error = "the payload is empty: send {\"commands\":[...]}";
		req->reason = "bad-request";
		return VEIL_OK;
	}
	if (len > VP_CONTROL_MAX_PAYLOAD) {
		req->error = "the payload is larger than 65536 bytes";
		req->reason = "too-large";
		return VEIL_OK;
	}
	/* One JSON value and nothing after it but white space (an optional NUL
	 * ends the payload): "{...} garbage" is not a request. */
	const char *end = NULL;
	req->tree = cJSON_ParseWithLengthOpts(payload, len, &end, 0);
	const char *stop = (const char *)payload + len;
	while (req->tree && end && end < stop && (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r'))
		end++;
	if (req->tree && end && end < stop && !(*end == '\0' && end + 1 == stop)) {
		cJSON_Delete(req->tree);
		req->tree = NULL;
	}
	if (!req->tree) {
		req->error = "payload not valid JSON";
		req->reason = "not-json";
		return VEIL_OK;
	}
	const cJSON *cmds = cJSON_GetObjectItem(req->tree, "commands");
	if (!cJSON_IsObject(req->tree) || !cJSON_IsArray(cmds)) {
		req->error = "invalid/missing commands: send {\"commands\":[...]}";
		req->reason = "bad-request";
		return VEIL_OK;
	}
	int n = cJSON_GetArraySize(cmds);
	if (n <= 0 || (unsigned)n > VP_CONTROL_MAX_COMMANDS) {
		req->error = n <= 0 ? "no commands" : "more than 64 commands in one request";
		req->reason = n <= 0 ? "bad-request" : "too-large";
		return VEIL_OK;
	}
	req->cmds = calloc((size_t)n, sizeof(*req->cmds));
	if (!req->cmds) {
		vp_control__req_free(req);
		return VEIL_ERR_NOMEM;
	}
	const cJSON *o;
	cJSON_ArrayForEach(o, cmds) {
		parse_command(&req->cmds[req->n++], o);
	}
	return VEIL_OK;
}

void vp_control__req_free(struct vp_control_req *req)
{
	if (!req)
		return;
	wipe_passwords(req->tree);
	cJSON_Delete(req->tree);
	free(req->cmds);
	memset(req, 0, sizeof(*req));
}

cJSON *vp_control__reply_new(cJSON **responses)
{
	cJSON *o = cJSON_CreateObject();
	*responses = o ? cJSON_AddArrayToObject(o, "responses") : NULL;
	if (!*responses) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

cJSON *vp_control__reply_add(cJSON *responses, const char *command, const char *correlation, const char *error,
                             const char *reason)
{
	cJSON *r = cJSON_CreateObject();
	if (!r || !cJSON_AddStringToObject(r, "command", command ? command : "unknown") ||
	    (correlation && !cJSON_AddStringToObject(r, "correlationData", correlation)) ||
	    (error && !cJSON_AddStringToObject(r, "error", error)) ||
	    (error && !cJSON_AddStringToObject(r, "reason", reason ? reason : "internal-error"))) {
		cJSON_Delete(r);
		return NULL;
	}
	cJSON_AddItemToArray(responses, r);
	return r;
}
