/*
 * The plugin's counters and gauges (docs/OPERATIONS.md), published under
 * $SYS/broker/veil/<family>/<label> every plugin_opt_sys_interval seconds
 * and returned by the admin API's getCounters. Every topic is exactly two
 * levels below $SYS/broker/veil: the family (a Prometheus-ready name) and
 * one label value (a reason, a login method, a role, a file, or "total"),
 * so one pair of regular expressions maps them all (docs/metrics/).
 *
 * Counters come from ONE place: vp_log__audit hands every audit line to
 * vp_metrics__count, which maps (area, verb) and one field of the line to a
 * counter. A counter is therefore the number of audit lines of its kind; no
 * second set of increments exists to drift from the log. Gauges (clients by
 * role and login, Argon2id work) are read from the plugin's state when the
 * values are published. Pure logic apart from the registry walk; the
 * broker publication is the caller's (plugin.c).
 */
#ifndef VP_METRICS_H
#define VP_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mosquitto_opt;
struct vp_ctx;
struct cJSON;
struct vp_metrics;

#define VP_METRICS_TOPIC_PREFIX "$SYS/broker/veil/"
#define VP_METRICS_MAX 1024U   /* distinct family/label pairs; more go to <family>/other */

bool vp_metrics__option_known(const char *key);
/* Options sys_interval (0-86400 s, default 10, 0 = never published) and
 * audit_format (text or json). VEIL_OK, VEIL_ERR_INVAL (logged), NOMEM. */
int vp_metrics__new(const struct mosquitto_opt *opts, int count, struct vp_metrics **out);
void vp_metrics__free(struct vp_metrics **m);
bool vp_metrics__json_audit(const struct vp_metrics *m);

/* One audit line (log.c only). */
void vp_metrics__count(struct vp_metrics *m, const char *area, const char *verb, const char *fields);
/* A value (0 when unknown): tests and the control API. */
uint64_t vp_metrics__get(const struct vp_metrics *m, const char *family, const char *label);

/* Whether a publication is due at now_ms (monotonic); the first one is due
 * at once, then every sys_interval seconds. Never with sys_interval 0. */
bool vp_metrics__due(struct vp_metrics *m, uint64_t now_ms);
/* Read the gauges from the plugin's state (registry, Argon2id totals). */
void vp_metrics__refresh(struct vp_metrics *m, const struct vp_ctx *ctx);
/* Every metric, in a stable order: its full topic and its value as text
 * (a decimal integer; seconds with six decimals). */
void vp_metrics__each(const struct vp_metrics *m, void (*fn)(void *arg, const char *topic, const char *value),
                      void *arg);
/* {"<family>": {"<label>": number, ...}, ...}; NULL on ENOMEM. */
struct cJSON *vp_metrics__json(const struct vp_metrics *m);

#endif
