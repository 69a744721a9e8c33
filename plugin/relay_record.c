/*
 * The relay's records (see relay.h): a record's topic and payload for one
 * revocation entry, and the check of a record that arrives. Pure logic (no
 * broker calls): what the unit tests and fuzz/fuzz_relay.c exercise.
 */
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "veil/error.h"
#include "relay.h"
#include "revoke.h"

#define KIND_CRED "credential/"
#define KIND_CLIENT "client/"

bool vp_relay__topic(const uint8_t *cred, const char *client, char *out, size_t len)
{
	char hex[2 * VEIL_CLIENT_ID_MAX + 1];
	if (cred)
		sodium_bin2hex(hex, sizeof(hex), cred, VEIL_CREDENTIAL_ID_BYTES);
	else if (client && *client && strlen(client) <= VEIL_CLIENT_ID_MAX)
		sodium_bin2hex(hex, sizeof(hex), (const unsigned char *)client, strlen(client));
	else
		return false;
	int n = snprintf(out, len, "%s%s%s", VP_RELAY_PREFIX, cred ? KIND_CRED : KIND_CLIENT, hex);
	return n > 0 && (size_t)n < len;
}

void vp_relay__entry_text(const uint8_t *cred, const char *client, char sep, char *out, size_t len)
{
	char hex[2 * VEIL_CREDENTIAL_ID_BYTES + 1];
	if (cred) {
		sodium_bin2hex(hex, sizeof(hex), cred, VEIL_CREDENTIAL_ID_BYTES);
		snprintf(out, len, "credential%c%s", sep, hex);
	} else {
		snprintf(out, len, "client%c%s", sep, client ? client : "");
	}
}

const char *vp_relay__parse(const char *level, const void *payload, size_t len, struct vp_relay_entry *e,
                            struct vp_revoke **out)
{
	*out = NULL;
	memset(e, 0, sizeof(*e));
	char why[160];
	if (!level || !payload || len == 0 || len >= sizeof(e->line) || memchr(payload, '\0', len))
		return "relay-malformed";
	memcpy(e->line, payload, len);
	e->line[len] = '\0';
	struct vp_revoke *r = NULL;
	if (vp_revoke__entry(e->line, &r, why, sizeof(why)) != VEIL_OK || vp_revoke__count(r) != 1) {
		vp_revoke__free(&r);
		return "relay-malformed";
	}
	/* vp_revoke__entry took it; the relay writes exactly "credential <32
	 * lower-case hex>" or "client <id>" (one blank): only that form. */
	e->is_cred = !strncmp(e->line, "credential ", 11);
	e->client = e->is_cred ? NULL : e->line + 7;
	char canon[sizeof(e->line)];
	if (e->is_cred && sodium_hex2bin(e->cred, sizeof(e->cred), e->line + 11, strlen(e->line + 11), NULL, NULL,
	                                 NULL) != 0)
		canon[0] = '\0';
	else
		vp_relay__entry_text(e->is_cred ? e->cred : NULL, e->client, ' ', canon, sizeof(canon));
	if (strcmp(canon, e->line) != 0) {
		vp_revoke__free(&r);
		return "relay-malformed";
	}
	char topic[VP_RELAY_TOPIC_MAX];
	if ((e->is_cred ? !vp_revoke__credential(r, e->cred) : !vp_revoke__client(r, e->client)) ||
	    !vp_relay__topic(e->is_cred ? e->cred : NULL, e->client, topic, sizeof(topic)) ||
	    strcmp(topic + sizeof(VP_RELAY_PREFIX) - 1, level) != 0) {
		vp_revoke__free(&r);
		return "relay-topic-mismatch";
	}
	*out = r;
	return NULL;
}

const char *vp_relay__check(const char *level, const void *payload, size_t len)
{
	struct vp_revoke *r = NULL;
	struct vp_relay_entry e;
	const char *why = vp_relay__parse(level, payload, len, &e, &r);
	vp_revoke__free(&r);
	return why;
}
