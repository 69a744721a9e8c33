/*
 * libFuzzer target: the grants encoding (core/bundle.c veil__grants_parse,
 * docs/PROTOCOL.md section 12): the plaintext inside a bundle, and the same
 * bytes a device keeps in <state_dir>/keys. fuzz_bundle reaches this parser
 * only behind keyd's signature and the AEAD tag; here the raw input is the
 * plaintext itself: u16 N, then N grants (scope length, scope, key id,
 * epoch, send-from, send-until, accept-until, grace, flags, 32-byte key).
 * Checked: a parsed list holds exactly N grants, each obeying section 12
 * (scope 1..255 bytes, a valid filter without NUL; key id in keyd's range;
 * known flags; send-from <= send-until <= accept-until; key ids unique), and
 * veil__grants_encode gives back the input byte for byte; a failed parse
 * hands out nothing. Seeds: fuzz/corpus/grants (the bundle_plaintext vector
 * of tests/vectors/core.txt, an empty list).
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "../core/bundle.h"
#include "../core/util.h"
#include "fuzz_common.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_sodium_init();
	return 0;
}

static void check_grant(const struct veil__grant *g)
{
	size_t sl = strnlen(g->scope, sizeof(g->scope));
	if (sl == 0 || sl > VEIL__GRANT_SCOPE_MAX || !veil__filter_valid(g->scope))
		abort();
	if (g->key_id < VEIL__GRANT_KEY_ID_MIN || (g->flags & ~VEIL__GRANT_FLAGS))
		abort();
	if (g->send_from > g->send_until || g->send_until > g->accept_until)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct veil__grants *gs = NULL;
	if (veil__grants_parse(data, size, &gs) != VEIL_OK) {
		if (gs)
			abort(); /* a failed parse must not hand out grants */
		return 0;
	}
	if (!gs || size < 2 || gs->n != veil__get_u16(data))
		abort();
	for (size_t i = 0; i < gs->n; i++) {
		check_grant(&gs->g[i]);
		for (size_t j = 0; j < i; j++)
			if (gs->g[j].key_id == gs->g[i].key_id)
				abort();
	}
	/* One format, one parser: what parsed encodes back to the same bytes. */
	size_t len = veil__grants_encoded_len(gs->g, gs->n);
	uint8_t *buf = len ? malloc(len) : NULL;
	size_t out_len = 0;
	if (len != size || !buf || veil__grants_encode(gs->g, gs->n, buf, len, &out_len) != VEIL_OK ||
	    out_len != size || memcmp(buf, data, size) != 0)
		abort();
	free(buf);
	veil__grants_free(&gs);
	if (gs)
		abort();
	return 0;
}
