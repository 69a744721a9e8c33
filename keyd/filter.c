/*
 * keyd's topic-filter helpers (filter.h). Filters are valid ones
 * (veil__filter_valid): '+' and '#' are whole levels, '#' is last.
 */
#include <string.h>

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

/* A wildcard in the first level never matches a level starting with '$'. */
static bool wild(const struct lv *l, bool pct)
{
	return is(l, "+") || is(l, "#") || (pct && is(l, "%c"));
}

bool kd_filter__overlap(const char *a, const char *b, bool pct_wild)
{
	struct lv la[202], lb[202];
	size_t na = levels(a, la, 201), nb = levels(b, lb, 201);
	if (na > 201 || nb > 201)
		return false;
	for (size_t i = 0;; i++) {
		bool ea = i == na, eb = i == nb;
		if (ea && eb)
			return true;
		if (ea || eb) /* the longer one matches the parent only through '#' */
			return ea ? is(&lb[i], "#") : is(&la[i], "#");
		const struct lv *x = &la[i], *y = &lb[i];
		if (i == 0 && ((wild(x, pct_wild) && !wild(y, pct_wild) && y->n && y->p[0] == '$') ||
		               (wild(y, pct_wild) && !wild(x, pct_wild) && x->n && x->p[0] == '$')))
			return false;
		if (is(x, "#") || is(y, "#"))
			return true;
		if (wild(x, pct_wild) || wild(y, pct_wild))
			continue;
		if (x->n != y->n || memcmp(x->p, y->p, x->n))
			return false;
	}
}
