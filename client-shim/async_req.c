/*
 * The app's pending requests of veil_async_* (publish, subscribe,
 * unsubscribe, disconnect): each one is linked in its client until Paho
 * completes it, then its completion callback runs once with the result and
 * the MQTT 5 reason code; and the guard of every Paho callback, which
 * veil_async_free waits out.
 */
#include <stdlib.h>

#include "async_private.h"


bool veil__async_cb_enter(struct veil_async *a)
{
	pthread_mutex_lock(&a->rlock);
	bool ok = !a->closing;
	if (ok)
		a->in_callbacks++;
	pthread_mutex_unlock(&a->rlock);
	return ok;
}

void veil__async_cb_leave(struct veil_async *a)
{
	pthread_mutex_lock(&a->rlock);
	a->in_callbacks--;
	pthread_cond_broadcast(&a->rcond);
	pthread_mutex_unlock(&a->rlock);
}

struct req *veil__async_req_new(struct veil_async *a, enum req_kind kind, veil_done_cb done, void *ctx)
{
	struct req *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->a = a;
	r->kind = kind;
	r->done = done;
	r->ctx = ctx;
	pthread_mutex_lock(&a->rlock);
	r->next = a->reqs;
	if (a->reqs)
		a->reqs->prev = r;
	a->reqs = r;
	pthread_mutex_unlock(&a->rlock);
	return r;
}

static void req_unlink(struct veil_async *a, struct req *r)
{
	pthread_mutex_lock(&a->rlock);
	if (r->prev)
		r->prev->next = r->next;
	else
		a->reqs = r->next;
	if (r->next)
		r->next->prev = r->prev;
	pthread_mutex_unlock(&a->rlock);
}

static void req_finish(struct req *r, int rc, int reason)
{
	struct veil_async *a = r->a;
	if (r->kind == REQ_FINAL_DISCONNECT) {
		/* veil_async_free waits for this one, callbacks closed or not. */
		pthread_mutex_lock(&a->rlock);
		a->final_disconnected = true;
		pthread_cond_broadcast(&a->rcond);
		pthread_mutex_unlock(&a->rlock);
		return;
	}
	if (!veil__async_cb_enter(a))
		return; /* veil_async_free releases pending requests */
	req_unlink(a, r);
	veil__in_callback++;
	if (r->done)
		r->done(r->ctx, rc, reason);
	veil__in_callback--;
	free(r);
	veil__async_cb_leave(a);
}

static void on_req_ok(void *ctx, MQTTAsync_successData *resp)
{
	struct req *r = ctx;
	/* MQTT 3.1.1 reports a refused subscription as granted QoS 0x80. */
	if (r->kind == REQ_SUBSCRIBE && resp && resp->alt.qos >= 0x80)
		req_finish(r, veil__mqtt_err(&r->a->s, MQTTREASONCODE_NOT_AUTHORIZED), resp->alt.qos);
	else
		req_finish(r, VEIL_OK, 0);
}

static void on_req_ok5(void *ctx, MQTTAsync_successData5 *resp)
{
	struct req *r = ctx;
	/* For a SUBACK Paho puts the (only) filter's code in reasonCode; its
	 * alt.sub.reasonCodes is set only for several filters. */
	int reason = resp ? (int)resp->reasonCode : 0;
	req_finish(r, reason >= 0x80 ? veil__mqtt_err(&r->a->s, reason) : VEIL_OK, reason);
}

static void on_req_fail(void *ctx, MQTTAsync_failureData *resp)
{
	struct req *r = ctx;
	req_finish(r, veil__mqtt_err(&r->a->s, resp && resp->code ? resp->code : MQTTASYNC_FAILURE), 0);
}

static void on_req_fail5(void *ctx, MQTTAsync_failureData5 *resp)
{
	struct req *r = ctx;
	int code = MQTTASYNC_FAILURE, reason = 0;
	if (resp) {
		reason = resp->reasonCode >= 0x80 ? (int)resp->reasonCode : 0;
		code = reason ? reason : (resp->code ? resp->code : code);
	}
	req_finish(r, veil__mqtt_err(&r->a->s, code), reason);
}

void veil__async_req_response(struct veil_async *a, MQTTAsync_responseOptions *ro, struct req *r)
{
	if (!r)
		return;
	ro->context = r;
	if (veil__async_v5(a)) {
		ro->onSuccess5 = on_req_ok5;
		ro->onFailure5 = on_req_fail5;
	} else {
		ro->onSuccess = on_req_ok;
		ro->onFailure = on_req_fail;
	}
}

void veil__async_req_disconnect(struct veil_async *a, MQTTAsync_disconnectOptions *o, struct req *r)
{
	o->context = r;
	if (veil__async_v5(a)) {
		o->onSuccess5 = on_req_ok5;
		o->onFailure5 = on_req_fail5;
	} else {
		o->onSuccess = on_req_ok;
		o->onFailure = on_req_fail;
	}
}

int veil__async_req_abort(struct veil_async *a, struct req *r, int prc)
{
	if (r) {
		req_unlink(a, r);
		free(r);
	}
	return veil__mqtt_err(&a->s, prc);
}
