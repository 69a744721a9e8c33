/* Builds against an installed Veil and uses the public API end to end. */
#include <stdio.h>
#include <string.h>

#include <veil/client.h>
#include <veil/veil.h>

int main(void)
{
	if (veil_init() != VEIL_OK)
		return 1;
	uint8_t key[VEIL_KEY_BYTES], env[256], out[256];
	veil_topic_key_generate(key);
	struct veil_seal_params p = { .key = key, .key_id = 1, .seq = 1 };
	size_t n = 0, m = 0;
	if (veil_envelope_seal(&p, "a/b", (const uint8_t *)"hi", 2, env, sizeof(env), &n) != VEIL_OK)
		return 1;
	struct veil_envelope_view v;
	if (veil_envelope_parse(env, n, &v) != VEIL_OK || veil_envelope_open(&v, "a/b", key, out, sizeof(out), &m) != VEIL_OK)
		return 1;
	printf("veil %s: %.*s, %s\n", veil_version(), (int)m, out, veil_strerror(VEIL_ERR_REPLAY));
	return memcmp(out, "hi", 2) != 0;
}
