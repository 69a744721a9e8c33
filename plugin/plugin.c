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
#include "metrics.h"
#include "plugin_private.h"
#include "relay.h"
#include "veil_topics.h"

/* The build hides every symbol by default (CMAKE_C_VISIBILITY_PRESET): the
 * three entry points must be exported explicitly or Mosquitto cannot load us. */
#define VP_EXPORT __attribute__((visibility("default")))
VP_EXPORT int mosquitto_plugin_version(int supported_version_count, const int *supported_versions);
VP_EXPORT int mosquitto_plugin_init(mosquitto_plugin_id_t *identifier, void **userdata, struct mosquitto_opt *opts,
                          int opt_count);
VP_EXPORT int mosquitto_plugin_cleanup(void *userdata, struct mosquitto_opt *opts, int opt_count);

/* Every event, one dispatch: the instance is bound for the audit lines its
 * modules write (log.c counts them into this instance's metrics). */
static void publish_metric(void *arg, const char *topic, const char *value)
{
	(void)arg;
	/* Retained, as Mosquitto's own $SYS values: a new subscriber (the
	 * metrics exporter after a restart) gets every value at once. */
	mosquitto_broker_publish_copy(NULL, topic, (int)strlen(value), value, 0, true, NULL);
}

static int on_reload(struct vp_ctx *ctx)
{
	/* Each module keeps its old state when its files are broken. */
	int ra = vp_auth__reload(ctx);
	int rb = vp_acl__reload(ctx);
	vp_log__audit(MOSQ_LOG_NOTICE, "plugin", "reload", "result=%s auth=%s acl=%s trigger=sighup",
	              ra == VEIL_OK && rb == VEIL_OK ? "ok" : "failed", ra == VEIL_OK ? "ok" : "kept-old",
	              rb == VEIL_OK ? "ok" : "kept-old");
	return MOSQ_ERR_SUCCESS;
}

static int on_tick(struct vp_ctx *ctx)
{
	/* The event's time fields are zero on 2.0.11: read the clock. */
	time_t now = time(NULL);
	vp_auth__tick(ctx, now);
	vp_acl__tick(ctx, now);
	vp_control__tick(ctx, now);
	vp_relay__tick(ctx);
	vp_clients__tick(ctx->clients, now, vp_acl__client_cache_free);
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	if (vp_metrics__due(ctx->metrics, (uint64_t)ts.tv_sec * 1000U + (uint64_t)ts.tv_nsec / 1000000U)) {
		vp_metrics__refresh(ctx->metrics, ctx);
		vp_metrics__each(ctx->metrics, publish_metric, NULL);
	}
	return MOSQ_ERR_SUCCESS;
}

static int on_disconnect(struct vp_ctx *ctx, struct mosquitto_evt_disconnect *ed)
{
	/* A persistent session outlives the connection, and Mosquitto checks
	 * READ for what it queues meanwhile: keep what we know of the client.
	 * Without one, the Will is still to be checked, after this event. */
	if (!mosquitto_client_clean_session(ed->client))
		vp_clients__park(ctx->clients, ed->client, vp_acl__client_cache_free);
	else
		vp_clients__depart(ctx->clients, ed->client, time(NULL), vp_acl__client_cache_free);
	return MOSQ_ERR_SUCCESS;
}

/* A login may come from a new client on the pointer of a freed one: the
 * auth module drops whatever the registry holds for it first, whoever then
 * decides the login (vp_auth__basic, vp_auth__ext_start). */
static int on_event(int event, void *event_data, void *userdata)
{
	struct vp_ctx *ctx = userdata;
	struct vp_ctx *prev = vp_log__bind(ctx);
	int rc = MOSQ_ERR_SUCCESS;
	switch (event) {
	case MOSQ_EVT_BASIC_AUTH: rc = vp_auth__basic(ctx, event_data); break;
	case MOSQ_EVT_EXT_AUTH_START: rc = vp_auth__ext_start(ctx, event_data); break;
	case MOSQ_EVT_EXT_AUTH_CONTINUE: rc = vp_auth__ext_continue(ctx, event_data); break;
	case MOSQ_EVT_ACL_CHECK: rc = vp_acl__check(ctx, event_data); break;
	case MOSQ_EVT_CONTROL: rc = vp_control__event(ctx, event_data); break;
	case MOSQ_EVT_RELOAD: rc = on_reload(ctx); break;
	case MOSQ_EVT_TICK: rc = on_tick(ctx); break;
	case MOSQ_EVT_DISCONNECT: rc = on_disconnect(ctx, event_data); break;
	case MOSQ_EVT_MESSAGE: rc = vp_relay__message(ctx, event_data); break;
	default: break;
	}
	vp_log__bind(prev);
	return rc;
}

/* event_data of the registration: the topic, for CONTROL. */
static const struct {
	int event;
	const char *data;
} callbacks[] = {
	{ MOSQ_EVT_BASIC_AUTH, NULL },
	{ MOSQ_EVT_EXT_AUTH_START, NULL },
	{ MOSQ_EVT_EXT_AUTH_CONTINUE, NULL },
	{ MOSQ_EVT_ACL_CHECK, NULL },
	{ MOSQ_EVT_RELOAD, NULL },
	{ MOSQ_EVT_TICK, NULL },
	{ MOSQ_EVT_DISCONNECT, NULL },
	{ MOSQ_EVT_MESSAGE, NULL }, /* the relay's records (relay.h); every other message passes at once */
	{ MOSQ_EVT_CONTROL, VP_CONTROL_TOPIC },
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
	vp_control__free(&ctx->control);
	vp_auth__free(&ctx->auth);
	vp_acl__free(&ctx->acl);
	vp_clients__free(&ctx->clients, vp_acl__client_cache_free);
	vp_metrics__free(&ctx->metrics);
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
		if (!vp_auth__option_known(opts[i].key) && !vp_acl__option_known(opts[i].key) &&
		    !vp_control__option_known(opts[i].key) && !vp_metrics__option_known(opts[i].key)) {
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
	/* The metrics first: the other modules' first audit lines count. */
	struct vp_ctx *prev = vp_log__bind(ctx);
	rc = vp_metrics__new(opts, opt_count, &ctx->metrics);
	if (rc == VEIL_OK)
		rc = vp_clients__new(&ctx->clients);
	if (rc == VEIL_OK)
		rc = vp_auth__new(ctx, opts, opt_count, &ctx->auth);
	if (rc == VEIL_OK)
		rc = vp_acl__new(ctx, opts, opt_count, &ctx->acl);
	if (rc == VEIL_OK)
		rc = vp_control__new(ctx, opts, opt_count, &ctx->control);
	if (rc != VEIL_OK) {
		vp_log__audit(MOSQ_LOG_ERR, "plugin", "init-failed", "error=%s", veil_errname(rc));
		vp_log__bind(prev);
		ctx_free(ctx);
		return mosq_err(rc);
	}
	vp_relay__attach(ctx); /* runtime revocations to and from the other nodes */
	bool control = true;
	for (size_t i = 0; i < N_CALLBACKS; i++) {
		rc = mosquitto_callback_register(identifier, callbacks[i].event, on_event, callbacks[i].data, ctx);
		if (rc == MOSQ_ERR_NOT_SUPPORTED && callbacks[i].event == MOSQ_EVT_CONTROL) {
			/* A broker built without WITH_CONTROL: everything but the admin API. */
			vp_log__audit(MOSQ_LOG_WARNING, "control", "unavailable",
			              "reason=broker-without-control (no $CONTROL support in this Mosquitto build)");
			control = false;
			continue;
		}
		if (rc != MOSQ_ERR_SUCCESS) {
			for (size_t j = 0; j < i; j++)
				mosquitto_callback_unregister(identifier, callbacks[j].event, on_event, callbacks[j].data);
			vp_log__bind(prev);
			ctx_free(ctx);
			return rc;
		}
	}
	*userdata = ctx;
	vp_log__audit(MOSQ_LOG_NOTICE, "plugin", "init", "version=%s control=%s admin_role=%s", veil_version(),
	              control ? VP_CONTROL_TOPIC : "off", ctx->admin_role);
	vp_log__bind(prev);
	return MOSQ_ERR_SUCCESS;
}

int mosquitto_plugin_cleanup(void *userdata, struct mosquitto_opt *opts, int opt_count)
{
	struct vp_ctx *ctx = userdata;
	(void)opts;
	(void)opt_count;
	if (!ctx)
		return MOSQ_ERR_SUCCESS;
	struct vp_ctx *prev = vp_log__bind(ctx);
	for (size_t i = 0; i < N_CALLBACKS; i++)
		mosquitto_callback_unregister(ctx->pid, callbacks[i].event, on_event, callbacks[i].data);
	vp_log__bind(prev);
	ctx_free(ctx);
	return MOSQ_ERR_SUCCESS;
}
