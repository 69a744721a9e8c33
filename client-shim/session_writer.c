/*
 * The session's state writer: one thread per session with a state_dir that
 *   - persists the sender sequence's next block ahead of use (core/replay.c,
 *     veil__seq_write_ahead), so that no fsync runs on the publish path or
 *     under the session lock. The rule stays the core's: a sequence number
 *     at or above the persisted mark is never handed out; when this thread
 *     falls behind (over half a block of publishes during one write),
 *     veil_seq_next writes the mark itself before going on, as it did
 *     before this thread existed;
 *   - saves receivers' replay windows when they are due (every
 *     VEIL__SAVE_EVERY accepted messages or VEIL__SAVE_SECONDS), so that the
 *     thread delivering messages does not wait for an fsync either. A
 *     receiver being freed waits for a save of it under way (save_mu), then
 *     saves itself one last time, as before.
 */
#include <pthread.h>
#include <stdlib.h>

#include "internal.h"
#include "session_private.h"

struct veil__writer {
	struct veil__session *s;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool seq_due;   /* mu */
	bool rx_due;    /* mu: a receiver has save_queued set */
	bool stop;      /* mu */
	pthread_mutex_t save_mu; /* held while a receiver is saved here */
};

/* One receiver whose windows are due, its flag cleared (NULL: none). */
static struct veil__receiver *take_due(struct veil__session *s)
{
	pthread_mutex_lock(&s->lock);
	struct veil__receiver *r = s->receivers;
	while (r && !r->save_queued)
		r = r->next;
	if (r)
		r->save_queued = false;
	pthread_mutex_unlock(&s->lock);
	return r;
}

static void *writer_main(void *arg)
{
	struct veil__writer *w = arg;
	pthread_mutex_lock(&w->mu);
	for (;;) {
		while (!w->seq_due && !w->rx_due && !w->stop)
			pthread_cond_wait(&w->cv, &w->mu);
		if (w->stop)
			break;
		bool seq = w->seq_due, rx = w->rx_due;
		w->seq_due = w->rx_due = false;
		pthread_mutex_unlock(&w->mu);
		int rc = seq ? veil__seq_write_ahead(w->s->seq) : VEIL_OK;
		if (rc != VEIL_OK)
			veil__slog(w->s, VEIL__LOG_WARNING, "writing the sequence mark ahead failed (%s); the next "
			           "publish past the persisted mark writes it itself", veil_errname(rc));
		for (;;) {
			if (!rx)
				break;
			pthread_mutex_lock(&w->save_mu);
			struct veil__receiver *r = take_due(w->s);
			if (r)
				veil__receiver_save(r); /* logs a failure; due again at the next message */
			pthread_mutex_unlock(&w->save_mu);
			if (!r)
				break;
		}
		pthread_mutex_lock(&w->mu);
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

void veil__writer_start(struct veil__session *s)
{
	struct veil__writer *w = calloc(1, sizeof(*w));
	if (!w)
		return; /* no write-ahead: veil_seq_next persists each block itself */
	w->s = s;
	pthread_mutex_init(&w->mu, NULL);
	pthread_mutex_init(&w->save_mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	if (pthread_create(&w->thread, NULL, writer_main, w) != 0) {
		pthread_cond_destroy(&w->cv);
		pthread_mutex_destroy(&w->save_mu);
		pthread_mutex_destroy(&w->mu);
		free(w);
		return;
	}
	s->writer = w;
}

void veil__writer_stop(struct veil__session *s)
{
	struct veil__writer *w = s->writer;
	if (!w)
		return;
	pthread_mutex_lock(&w->mu);
	w->stop = true;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
	pthread_join(w->thread, NULL);
	pthread_cond_destroy(&w->cv);
	pthread_mutex_destroy(&w->save_mu);
	pthread_mutex_destroy(&w->mu);
	free(w);
	s->writer = NULL;
}

void veil__writer_after_seal(struct veil__session *s)
{
	struct veil__writer *w = s->writer;
	if (!w || !veil__seq_ahead_due(s->seq))
		return;
	pthread_mutex_lock(&w->mu);
	w->seq_due = true;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

void veil__writer_receiver_due(struct veil__receiver *r)
{
	struct veil__session *s = r->s;
	struct veil__writer *w = s->writer;
	if (!w) {
		veil__receiver_save(r);
		return;
	}
	pthread_mutex_lock(&s->lock);
	bool queue = !r->save_queued;
	r->save_queued = true;
	pthread_mutex_unlock(&s->lock);
	if (!queue)
		return;
	pthread_mutex_lock(&w->mu);
	w->rx_due = true;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

void veil__writer_receiver_gone(struct veil__receiver *r)
{
	struct veil__writer *w = r->s->writer;
	if (!w)
		return;
	pthread_mutex_lock(&w->save_mu);
	pthread_mutex_unlock(&w->save_mu);
}
