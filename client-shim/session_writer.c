/*
 * The session's state writer: one thread per session with a state_dir that
 * persists the sender sequence's next block ahead of use (core/replay.c,
 * veil__seq_write_ahead), so that no fsync runs on the publish path or under
 * the session lock. The rule stays the core's: a sequence number at or above
 * the persisted mark is never handed out; when this thread falls behind
 * (over half a block of publishes during one write), veil_seq_next writes
 * the mark itself before going on, as it did before this thread existed.
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
	bool stop;      /* mu */
};

static void *writer_main(void *arg)
{
	struct veil__writer *w = arg;
	pthread_mutex_lock(&w->mu);
	for (;;) {
		while (!w->seq_due && !w->stop)
			pthread_cond_wait(&w->cv, &w->mu);
		if (w->stop)
			break;
		w->seq_due = false;
		pthread_mutex_unlock(&w->mu);
		int rc = veil__seq_write_ahead(w->s->seq);
		if (rc != VEIL_OK)
			veil__slog(w->s, VEIL__LOG_WARNING, "writing the sequence mark ahead failed (%s); the next "
			           "publish past the persisted mark writes it itself", veil_errname(rc));
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
	pthread_cond_init(&w->cv, NULL);
	if (pthread_create(&w->thread, NULL, writer_main, w) != 0) {
		pthread_cond_destroy(&w->cv);
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
