/*
 * libFuzzer target: the relay's records (plugin/relay_record.c with
 * revoke.c's one-line parser and core/names.c): what a node accepts from
 * another over a bridge ($veil/v1/revoked/..., plugin/relay.h).
 * Input: the topic level after "$veil/v1/revoked/" up to the first NUL, the
 * payload after it (no NUL: the whole input is the payload, the level a
 * fixed client record's). Properties: an accepted record is exactly one
 * entry, its payload is the entry's canonical text byte for byte and its
 * topic the entry's own; a refused one hands out no list; vp_relay__check
 * agrees with vp_relay__parse.
 * Seeds: fuzz/corpus/relay.
 */
#include <stdbool.h>
#include <string.h>

#include "relay.h"
#include "revoke.h"
#include "veil/error.h"

#include "fuzz_common.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_sodium_init();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char level[VP_RELAY_TOPIC_MAX + 8];
	const uint8_t *payload = data;
	size_t len = size;
	const uint8_t *nul = memchr(data, '\0', size);
	if (nul) {
		size_t n = (size_t)(nul - data);
		if (n >= sizeof(level))
			return 0;
		memcpy(level, data, n);
		level[n] = '\0';
		payload = nul + 1;
		len = size - n - 1;
	} else {
		strcpy(level, "client/73656e736f722d31"); /* sensor-1 */
	}
	struct vp_relay_entry e;
	struct vp_revoke *r = NULL;
	const char *why = vp_relay__parse(level, payload, len, &e, &r);
	const char *why2 = vp_relay__check(level, payload, len);
	if ((why == NULL) != (why2 == NULL))
		abort();
	if (why) {
		if (r)
			abort(); /* a refused record hands out nothing */
		return 0;
	}
	if (!r || vp_revoke__count(r) != 1)
		abort();
	char canon[sizeof(e.line)], topic[VP_RELAY_TOPIC_MAX];
	vp_relay__entry_text(e.is_cred ? e.cred : NULL, e.client, ' ', canon, sizeof(canon));
	if (len != strlen(canon) || memcmp(payload, canon, len) != 0)
		abort();
	if (!vp_relay__topic(e.is_cred ? e.cred : NULL, e.client, topic, sizeof(topic)) ||
	    strncmp(topic, VP_RELAY_PREFIX, sizeof(VP_RELAY_PREFIX) - 1) != 0 ||
	    strcmp(topic + sizeof(VP_RELAY_PREFIX) - 1, level) != 0)
		abort();
	if (e.is_cred ? !vp_revoke__credential(r, e.cred) : !vp_revoke__client(r, e.client))
		abort();
	vp_revoke__free(&r);
	return 0;
}
