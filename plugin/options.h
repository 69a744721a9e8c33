/*
 * plugin_opt_* options: one table format and one parser for every module of
 * the plugin (authentication, ACL). A module describes its options as a
 * table of struct vp_opt (name, kind, where the value goes in its own
 * struct, range and default); vp_options__parse sets the defaults, then
 * every option of the table found among Mosquitto's, refusing a bad value
 * with one audit line ("<area> | init-failed | option=plugin_opt_<name>
 * value=<v> reason=<why>"). Options of other modules are left alone;
 * plugin.c refuses keys no module knows. Pure logic apart from the audit
 * line.
 */
#ifndef VP_OPTIONS_H
#define VP_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mosquitto_opt;

enum vp_opt_kind {
	VP_OPT_STRING,   /* char *, a malloc'd copy (paths, words); not empty */
	VP_OPT_BOOL,     /* bool: "true" or "false"; default def */
	VP_OPT_U32,      /* uint32_t, decimal digits in min..max; default def */
	VP_OPT_SIZE,     /* size_t, decimal digits in min..max; default def */
	VP_OPT_LIST      /* char **, NULL-terminated malloc'd copies: the one option a
	                  * line may repeat, every value kept in order (not empty) */
};

struct vp_opt {
	const char *name;        /* without "plugin_opt_" */
	enum vp_opt_kind kind;
	size_t offset;           /* of the field in the module's struct */
	uint64_t min, max, def;
};

/* Is plugin_opt_<name> in the table? */
bool vp_options__known(const struct vp_opt *defs, size_t n, const char *name);
/* Defaults, then the values in opts (the last of a repeated option wins,
 * except VP_OPT_LIST, which keeps them all).
 * VEIL_OK, VEIL_ERR_INVAL (a bad value, logged) or VEIL_ERR_NOMEM. Free the
 * strings with vp_options__free, also after an error. */
int vp_options__parse(const struct vp_opt *defs, size_t n, void *obj, const char *area,
                      const struct mosquitto_opt *opts, int count);
/* Refuse a value a module checks itself (a rule across options): the same
 * audit line as a bad value. Returns VEIL_ERR_INVAL. */
int vp_options__refuse(const char *area, const char *name, const char *value, const char *why);
/* Free the string and list options of obj and set them to NULL. */
void vp_options__free(const struct vp_opt *defs, size_t n, void *obj);

#endif
