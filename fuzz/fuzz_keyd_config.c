/*
 * libFuzzer target: veil-keyd's config parser (keyd/config.c, with
 * keyd/filter.c for the scope rules). The parser takes the file image
 * directly. A config that parses must keep every promise the daemon relies
 * on: the required keys are there, every scope is a valid filter with lead
 * <= period, depth 0..16, lead and grace at least twice the token window,
 * and no two scopes overlap (checked both ways: overlap is symmetric).
 * Seeds: fuzz/corpus/keyd_config.
 */
#include <stdlib.h>
#include <string.h>

#include "veil/error.h"
#include "../core/util.h"
#include "filter.h"
#include "keyd.h"

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
	struct kd_config c;
	char err[512];
	if (kd_config__parse("keyd.conf", (const char *)data, size, &c, err, sizeof(err)) != VEIL_OK) {
		if (c.scopes || c.path || strncmp(err, "keyd.conf", 9) != 0)
			abort(); /* a refusal leaves nothing and names the file */
		return 0;
	}
	if (!c.broker || !c.client_id || !c.identity || !c.credential || !c.authorities || !c.acl_file ||
	    !c.database || !c.storage_key || c.n_scopes == 0)
		abort();
	for (size_t i = 0; i < c.n_scopes; i++) {
		const struct kd_scope_conf *s = &c.scopes[i];
		if (!veil__filter_valid(s->filter) || s->lead > s->period || s->depth > 16 ||
		    (uint64_t)s->lead + (uint64_t)s->depth * s->period > KD_PERIOD_MAX ||
		    (uint64_t)s->lead < 2ULL * c.token_window || (uint64_t)s->grace < 2ULL * c.token_window ||
		    s->per_device != kd_filter__has_subst(s->filter) || kd_config__scope(&c, s->filter) != s)
			abort();
		for (size_t k = 0; k < c.n_scopes; k++)
			if (k != i && (kd_filter__overlap(s->filter, c.scopes[k].filter, true) ||
			               kd_filter__overlap(c.scopes[k].filter, s->filter, true)))
				abort();
	}
	kd_config__free(&c);
	return 0;
}
