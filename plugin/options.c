/* plugin_opt_* parsing, one parser for every module (see options.h). */
#include <stdlib.h>
#include <string.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>

#include "veil/error.h"
#include "../core/util.h" /* the one number rule */
#include "options.h"
#include "plugin_private.h"

bool vp_options__known(const struct vp_opt *defs, size_t n, const char *name)
{
	for (size_t i = 0; name && i < n; i++) {
		if (!strcmp(name, defs[i].name))
			return true;
	}
	return false;
}

int vp_options__refuse(const char *area, const char *name, const char *value, const char *why)
{
	char v[80];
	vp_log__audit(MOSQ_LOG_ERR, area, "init-failed", "option=plugin_opt_%s value=%s reason=%s", name,
	              vp_log__clean(value, v, sizeof(v)), why);
	return VEIL_ERR_INVAL;
}

static int set(const struct vp_opt *d, void *obj, const char *area, const char *value)
{
	char *field = (char *)obj + d->offset;
	if (!value || !*value)
		return vp_options__refuse(area, d->name, value, "empty");
	uint64_t v = 0;
	switch (d->kind) {
	case VP_OPT_STRING: {
		char *copy = strdup(value);
		if (!copy)
			return VEIL_ERR_NOMEM;
		char **p = (char **)(void *)field;
		free(*p);
		*p = copy;
		return VEIL_OK;
	}
	case VP_OPT_LIST: {
		char ***list = (char ***)(void *)field;
		size_t n = 0;
		while (*list && (*list)[n])
			n++;
		char **grown = realloc(*list, (n + 2) * sizeof(**list));
		if (!grown)
			return VEIL_ERR_NOMEM;
		*list = grown;
		if (!(grown[n] = strdup(value)))
			return VEIL_ERR_NOMEM; /* grown[n] is NULL: still terminated */
		grown[n + 1] = NULL;
		return VEIL_OK;
	}
	case VP_OPT_BOOL:
		if (strcmp(value, "true") != 0 && strcmp(value, "false") != 0)
			return vp_options__refuse(area, d->name, value, "expected-true-or-false");
		*(bool *)(void *)field = value[0] == 't';
		return VEIL_OK;
	case VP_OPT_U32:
	case VP_OPT_SIZE:
		if (!veil__decimal(value, d->min, d->max, &v))
			return vp_options__refuse(area, d->name, value, "out-of-range");
		if (d->kind == VP_OPT_U32)
			*(uint32_t *)(void *)field = (uint32_t)v;
		else
			*(size_t *)(void *)field = (size_t)v;
		return VEIL_OK;
	}
	return VEIL_ERR_INVAL;
}

int vp_options__parse(const struct vp_opt *defs, size_t n, void *obj, const char *area,
                      const struct mosquitto_opt *opts, int count)
{
	for (size_t i = 0; i < n; i++) {
		void *field = (char *)obj + defs[i].offset;
		if (defs[i].kind == VP_OPT_BOOL)
			*(bool *)field = defs[i].def != 0;
		else if (defs[i].kind == VP_OPT_U32)
			*(uint32_t *)field = (uint32_t)defs[i].def;
		else if (defs[i].kind == VP_OPT_SIZE)
			*(size_t *)field = (size_t)defs[i].def;
	}
	for (int i = 0; opts && i < count; i++) {
		for (size_t k = 0; k < n; k++) {
			if (opts[i].key && !strcmp(opts[i].key, defs[k].name)) {
				int rc = set(&defs[k], obj, area, opts[i].value);
				if (rc != VEIL_OK)
					return rc;
			}
		}
	}
	return VEIL_OK;
}

void vp_options__free(const struct vp_opt *defs, size_t n, void *obj)
{
	for (size_t i = 0; obj && i < n; i++) {
		if (defs[i].kind == VP_OPT_STRING) {
			char **p = (char **)(void *)((char *)obj + defs[i].offset);
			free(*p);
			*p = NULL;
		} else if (defs[i].kind == VP_OPT_LIST) {
			char ***list = (char ***)(void *)((char *)obj + defs[i].offset);
			for (size_t k = 0; *list && (*list)[k]; k++)
				free((*list)[k]);
			free(*list);
			*list = NULL;
		}
	}
}
