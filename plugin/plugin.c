/*
 * Entry points of mosquitto_veil.so (plugin API v5, Mosquitto 2.0): version,
 * init, cleanup, and the event dispatch. Everything else is in the concern
 * files listed in plugin_private.h.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>

#include "veil/veil.h"
#include "plugin_private.h"

/* The build hides every symbol by default (CMAKE_C_VISIBILITY_PRESET): the
 * three entry points must be exported explicitly or Mosquitto cannot load us. */
#define VP_EXPORT __attribute__((visibility("default")))
VP_EXPORT int mosquitto_plugin_version(int supported_version_count, const int *supported_versions);
VP_EXPORT int mosquitto_plugin_init(mosquitto_plugin_id_t *identifier, void **userdata, struct mosquitto_opt *opts,
                          int opt_count);
VP_EXPORT int mosquitto_plugin_cleanup(void *userdata, struct mosquitto_opt *opts, int opt_count);

/* A login may come from a new client on the pointer of a freed one: the
 * auth module drops whatever the registry holds for it first, whoever then
 * decides the login (vp_auth__basic, vp_auth__ext_start). */
static int on_basic_auth(int event, void *event_data, void *userdata)
{
	(void)event;
	return vp_auth__basic(userdata, event_data);
}

static int on_ext_auth_start(int event, void *event_data, void *userdata)
{
	(void)event;
	return vp_auth__ext_start(userdata, event_data);
}

static int on_ext_auth_continue(int event, void *event_data, void *userdata)
{
	(void)event;
	return vp_auth__ext_continue(userdata, event_data);
}

static int on_acl_check(int event, void *event_data, void *userdata)
{
	(void)event;
	return vp_acl__check(userdata, event_data);
}

static int on_reload(int event, void *event_data, void *userdata)
{
	struct vp_ctx *ctx = userdata;
	(void)event;
	(void)event_data;
	/* Each module keeps its old state when its files are broken. */
	int ra = vp_auth__reload(ctx);
	int rb = vp_acl__reload(ctx);
	vp_log__audit(MOSQ_LOG_NOTICE, "plugin", "reload", "auth=%s acl=%s", ra == VEIL_OK ? "ok" : "kept-old",
	              rb == VEIL_OK ? "ok" : "kept-old");
	return MOSQ_ERR_SUCCESS;
}

static int on_tick(int event, void *event_data, void *userdata)
{
	struct vp_ctx *ctx = userdata;
	(void)event;
	(void)event_data;
	/* The event's time fields are zero on 2.0.11: read the clock. */
	time_t now = time(NULL);
	vp_auth__tick(ctx, now);
	vp_acl__tick(ctx, now);
	vp_clients__tick(ctx->clients, now, vp_acl__client_cache_free);
	return MOSQ_ERR_SUCCESS;
}

static int on_disconnect(int event, void *event_data, void *userdata)
{
	struct vp_ctx *ctx = userdata;
	struct mosquitto_evt_disconnect *ed = event_data;
	(void)event;
	/* A persistent session outlives the connection, and Mosquitto checks
	 * READ for what it queues meanwhile: keep what we know of the client.
	 * Without one, the Will is still to be checked, after this event. */
	if (!mosquitto_client_clean_session(ed->client))
		vp_clients__park(ctx->clients, ed->client, vp_acl__client_cache_free);
	else
		vp_clients__depart(ctx->clients, ed->client, time(NULL), vp_acl__client_cache_free);
	return MOSQ_ERR_SUCCESS;
}

static const struct {
	int event;
	MOSQ_FUNC_generic_callback cb;
} callbacks[] = {
	{ MOSQ_EVT_BASIC_AUTH, on_basic_auth },
	{ MOSQ_EVT_EXT_AUTH_START, on_ext_auth_start },
	{ MOSQ_EVT_EXT_AUTH_CONTINUE, on_ext_auth_continue },
	{ MOSQ_EVT_ACL_CHECK, on_acl_check },
	{ MOSQ_EVT_RELOAD, on_reload },
	{ MOSQ_EVT_TICK, on_tick },
	{ MOSQ_EVT_DISCONNECT, on_disconnect },
};
#define N_CALLBACKS (sizeof(callbacks) / sizeof(callbacks[0]))

/* The one place a veil_err becomes a MOSQ_ERR_* (plugin_private.h, "Errors"). */
static int mosq_err(int rc)
{
	switch (rc) {
	case VEIL_OK:
		return MOSQ_ERR_SUCCESS;
	case VEIL_ERR_NOMEM:
		return MOSQ_ERR_NOMEM;
	case VEIL_ERR_AUTH:
		return MOSQ_ERR_AUTH;
	case VEIL_ERR_INVAL:
	case VEIL_ERR_PARSE:
	case VEIL_ERR_IO:
	case VEIL_ERR_PERM:
	case VEIL_ERR_TOO_LARGE:
	case VEIL_ERR_TRUNCATED:
	case VEIL_ERR_VERSION:
		return MOSQ_ERR_INVAL; /* a bad option or file: refuse to start */
	default:
		return MOSQ_ERR_UNKNOWN;
	}
}

static void ctx_free(struct vp_ctx *ctx)
{
	if (!ctx)
		return;
	vp_auth__free(&ctx->auth);
	vp_acl__free(&ctx->acl);
	vp_clients__free(&ctx->clients, vp_acl__client_cache_free);
	free(ctx);
}

int mosquitto_plugin_version(int supported_version_count, const int *supported_versions)
{
	for (int i = 0; i < supported_version_count; i++) {
		if (supported_versions[i] == 5)
			return 5;
	}
	return -1; /* the plugin API's "no version in common", not an error code */
}

int mosquitto_plugin_init(mosquitto_plugin_id_t *identifier, void **userdata, struct mosquitto_opt *opts,
                          int opt_count)
{
	int rc = veil_init();
	if (rc != VEIL_OK) {
		vp_log__audit(MOSQ_LOG_ERR, "plugin", "init-failed", "reason=libsodium");
		return mosq_err(rc);
	}
	for (int i = 0; i < opt_count; i++) {
		if (!vp_auth__option_known(opts[i].key) && !vp_acl__option_known(opts[i].key)) {
			char k[80];
			vp_log__audit(MOSQ_LOG_ERR, "plugin", "init-failed", "reason=unknown-option option=plugin_opt_%s",
			              vp_log__clean(opts[i].key, k, sizeof(k)));
			return MOSQ_ERR_INVAL;
		}
	}
	struct vp_ctx *ctx = calloc(1, sizeof(*ctx));
	if (!ctx)
		return MOSQ_ERR_NOMEM;
	ctx->pid = identifier;
	rc = vp_clients__new(&ctx->clients);
	if (rc == VEIL_OK)
		rc = vp_auth__new(ctx, opts, opt_count, &ctx->auth);
	if (rc == VEIL_OK)
		rc = vp_acl__new(ctx, opts, opt_count, &ctx->acl);
	if (rc != VEIL_OK) {
		vp_log__audit(MOSQ_LOG_ERR, "plugin", "init-failed", "error=%s", veil_errname(rc));
		ctx_free(ctx);
		return mosq_err(rc);
	}
	for (size_t i = 0; i < N_CALLBACKS; i++) {
		rc = mosquitto_callback_register(identifier, callbacks[i].event, callbacks[i].cb, NULL, ctx);
		if (rc != MOSQ_ERR_SUCCESS) {
			for (size_t j = 0; j < i; j++)
				mosquitto_callback_unregister(identifier, callbacks[j].event, callbacks[j].cb, NULL);
			ctx_free(ctx);
			return rc;
		}
	}
	*userdata = ctx;
	vp_log__audit(MOSQ_LOG_NOTICE, "plugin", "init", "version=%s", veil_version());
	return MOSQ_ERR_SUCCESS;
}

int mosquitto_plugin_cleanup(void *userdata, struct mosquitto_opt *opts, int opt_count)
{
	struct vp_ctx *ctx = userdata;
	(void)opts;
	(void)opt_count;
	if (!ctx)
		return MOSQ_ERR_SUCCESS;
	for (size_t i = 0; i < N_CALLBACKS; i++)
		mosquitto_callback_unregister(ctx->pid, callbacks[i].event, callbacks[i].cb, NULL);
	ctx_free(ctx);
	return MOSQ_ERR_SUCCESS;
}
