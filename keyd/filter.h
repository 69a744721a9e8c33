/*
 * Topic-filter helpers keyd needs on its own scope filters: '%c'
 * substitution (whole levels only, as the ACL engine's patterns) and
 * filter-vs-filter overlap (two scopes must never share a topic).
 */
#ifndef KD_FILTER_H
#define KD_FILTER_H

#include <stdbool.h>
#include <stddef.h>

/* Whether filter has a level that is exactly "%c". */
bool kd_filter__has_subst(const char *filter);
/* Whether some topic matches both filters (MQTT matching, docs/PROTOCOL.md
 * section 6, including the '$' first-level rule). pct_wild: a "%c" level
 * stands for any one level (a per-device scope before substitution). */
bool kd_filter__overlap(const char *a, const char *b, bool pct_wild);

#endif
