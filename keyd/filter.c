/*
 * keyd's topic-filter helpers (filter.h). Filters are valid ones
 * (veil__filter_valid): '+' and '#' are whole levels, '#' is last. Overlap
 * is the core's veil__filters_overlap.
 */
#include <string.h>

#include "../core/bundle.h"
#include "../core/util.h"
#include "filter.h"
#include "keyd.h"

struct lv {
	const char *p;
	size_t n;
};

/* Level i of f, or false when f has fewer levels. */
static size_t levels(const char *f, struct lv *out, size_t max)
{
	size_t k = 0;
	const char *p = f;
	for (;;) {
		size_t n = strcspn(p, "/");
		if (k == max)
			return max + 1;
		out[k].p = p;
		out[k].n = n;
		k++;
		if (!p[n])
			return k;
		p += n + 1;
	}
}

static bool is(const struct lv *l, const char *w)
{
	return l->n == strlen(w) && !memcmp(l->p, w, l->n);
}

bool kd_filter__has_subst(const char *filter)
{
	struct lv l[256];
	size_t n = levels(filter, l, 255);
	for (size_t i = 0; i < n && i < 255; i++)
		if (is(&l[i], "%c"))
			return true;
	return false;
}

bool kd_filter__subst(const char *filter, const char *client_id, char *out, size_t cap)
{
	size_t o = 0;
	const char *p = filter;
	for (;;) {
		size_t n = strcspn(p, "/");
		const char *src = p;
		size_t sn = n;
		if (n == 2 && !strncmp(p, "%c", 2)) {
			if (!client_id)
				return false;
			src = client_id;
			sn = strlen(client_id);
		}
		if (o + sn + 2 > cap)
			return false;
		memcpy(out + o, src, sn);
		o += sn;
		if (!p[n])
			break;
		out[o++] = '/';
		p += n + 1;
	}
	out[o] = '\0';
	return true;
}

bool kd_filter__overlap(const char *a, const char *b, bool pct_wild)
{
	/* The core's one overlap rule; a %c level stands for any one level. */
	char x[VEIL__GRANT_SCOPE_MAX + 1], y[VEIL__GRANT_SCOPE_MAX + 1];
	if (pct_wild) {
		if (!kd_filter__subst(a, "+", x, sizeof(x)) || !kd_filter__subst(b, "+", y, sizeof(y)))
			return true; /* longer than any scope: never let it pass as disjoint */
		a = x;
		b = y;
	}
	return veil__filters_overlap(a, b);
}
