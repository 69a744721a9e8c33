/*
 * libFuzzer target: the admin API's command parser (plugin/control_parse.c,
 * cJSON, core/names.c), what $CONTROL/veil/v1 hands the plugin. The input is
 * the MQTT payload. Properties checked: a refused request holds no command;
 * an accepted one holds 1..VP_CONTROL_MAX_COMMANDS, each either refused
 * (sentence and reason) or carrying exactly the fields its command needs,
 * valid by the plugin's own rules (names, credential id, password length,
 * pages); the reply built for them is JSON that parses back with one
 * response per command. Seeds: fuzz/corpus/control.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "veil/veil.h"
#include "control.h"

#include "fuzz_common.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_sodium_init();
	return 0;
}

static void check_command(const struct vp_cmd *c)
{
	if (c->error) {
		if (!c->reason || !*c->reason)
			abort();
		return;
	}
	if (c->kind == VP_CMD_UNKNOWN || !c->name)
		abort();
	switch (c->kind) {
	case VP_CMD_KICK_CLIENT:
	case VP_CMD_REVOKE_CLIENT:
		if (!c->client_id || !veil_username_valid(c->client_id) || c->has_credential)
			abort();
		break;
	case VP_CMD_REVOKE_CREDENTIAL:
		if (!c->has_credential || c->client_id)
			abort();
		break;
	case VP_CMD_REMOVE_REVOCATION:
		if (c->has_credential == (c->client_id != NULL))
			abort();
		if (c->client_id && !veil_username_valid(c->client_id))
			abort();
		break;
	case VP_CMD_ADD_PASSWORD_USER:
		if (!c->password || c->password_len == 0 || c->password_len > VP_CONTROL_PASSWORD_MAX ||
		    strlen(c->password) != c->password_len)
			abort();
		/* fall through: a user name too */
	case VP_CMD_REMOVE_PASSWORD_USER:
		if (!c->username || !veil_username_valid(c->username) || strchr(c->username, ':'))
			abort();
		break;
	case VP_CMD_LIST_CLIENTS:
	case VP_CMD_LIST_REVOCATIONS:
	case VP_CMD_LIST_PASSWORD_USERS:
		if (c->offset > 1000000000U || c->count > 1000000000U)
			abort();
		break;
	case VP_CMD_RELOAD:
	case VP_CMD_GET_COUNTERS:
	case VP_CMD_UNKNOWN:
		break;
	}
	if (c->correlation && strlen(c->correlation) > VP_CONTROL_CORRELATION_MAX)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vp_control_req req;
	if (vp_control__parse(data, size, &req) != VEIL_OK)
		return 0; /* out of memory: the request is empty */
	if (req.error) {
		if (req.n != 0 || req.cmds || !req.reason)
			abort();
		vp_control__req_free(&req);
		return 0;
	}
	if (req.n == 0 || req.n > VP_CONTROL_MAX_COMMANDS || size > VP_CONTROL_MAX_PAYLOAD)
		abort();
	cJSON *responses = NULL;
	cJSON *reply = vp_control__reply_new(&responses);
	for (size_t i = 0; i < req.n; i++) {
		const struct vp_cmd *c = &req.cmds[i];
		check_command(c);
		if (reply)
			vp_control__reply_add(responses, c->given ? c->given : c->name, c->correlation, c->error, c->reason);
	}
	if (reply) {
		char *s = cJSON_PrintUnformatted(reply);
		cJSON *back = s ? cJSON_Parse(s) : NULL;
		if (s && (!back || cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(back, "responses")) != (int)req.n))
			abort();
		cJSON_Delete(back);
		cJSON_free(s);
		cJSON_Delete(reply);
	}
	vp_control__req_free(&req);
	return 0;
}
