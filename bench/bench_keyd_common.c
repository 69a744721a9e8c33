/* What the keyd benchmarks share (bench_keyd_common.h). */
#include "bench_keyd_common.h"

#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

extern char **environ;

pid_t bench_keyd_spawn(const char *const *argv, const char *log)
{
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, log ? log : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0600);
	posix_spawn_file_actions_adddup2(&fa, 1, 2);
	pid_t pid = -1;
	if (posix_spawn(&pid, argv[0], &fa, NULL, (char *const *)argv, environ) != 0)
		pid = -1;
	posix_spawn_file_actions_destroy(&fa);
	return pid;
}

int bench_keyd_wait_exit(pid_t pid)
{
	int st;
	if (pid < 0 || waitpid(pid, &st, 0) != pid)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

int bench_keyd_credential(const struct veil_identity *auth, const struct veil_identity *id, const char *cid,
                          const char *roles, uint8_t *out, size_t *len)
{
	struct veil_credential c;
	memset(&c, 0, sizeof(c));
	veil_identity_public(id, c.device_pk);
	snprintf(c.client_id, sizeof(c.client_id), "%s", cid);
	snprintf(c.roles, sizeof(c.roles), "%s", roles);
	c.issued_at = (uint64_t)time(NULL) - 3600;
	c.expires_at = c.issued_at + 2 * 86400;
	return veil_credential_issue(auth, &c, out, VEIL_CREDENTIAL_MAX, len);
}

double bench_keyd_cpu_s(pid_t pid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	const char *p = strrchr(buf, ')');
	unsigned long long ut = 0, st = 0;
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
		return -1;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

int bench_keyd_device_files(const struct veil_identity *auth, const char *dir, const char *cid, const char *roles,
                            char *idp, size_t idcap, char *crp, size_t crcap)
{
	struct veil_identity *id = NULL;
	uint8_t cred[VEIL_CREDENTIAL_MAX];
	size_t cl = 0;
	if (snprintf(idp, idcap, "%s/%s.key", dir, cid) >= (int)idcap ||
	    snprintf(crp, crcap, "%s/%s.cred", dir, cid) >= (int)crcap)
		return VEIL_ERR_TOO_LARGE;
	int rc = veil_identity_generate(&id);
	if (rc == VEIL_OK)
		rc = bench_keyd_credential(auth, id, cid, roles, cred, &cl);
	if (rc == VEIL_OK)
		rc = veil_identity_save(id, idp);
	if (rc == VEIL_OK)
		rc = veil_credential_save(cred, cl, crp);
	veil_identity_free(&id);
	return rc;
}

int bench_keyd_devmsg(struct veil__devmsg_params *p, struct veil__rxkey **rx, size_t *n_rx, size_t max,
                      uint8_t nonce[VEIL__DEVMSG_NONCE_BYTES], uint64_t *last_ts, uint8_t *out, size_t cap,
                      size_t *len)
{
	if (*n_rx == max) {
		veil__rxkey_free(&rx[0]);
		memmove(rx, rx + 1, (max - 1) * sizeof(rx[0]));
		rx[max - 1] = NULL;
		(*n_rx)--;
	}
	if (veil__rxkey_generate(&rx[*n_rx]) != VEIL_OK)
		return -1;
	(*n_rx)++;
	randombytes_buf(nonce, VEIL__DEVMSG_NONCE_BYTES);
	/* Never ahead of the clock (keyd takes the same second, never an older
	 * one, and refuses what is past its window either side). */
	uint64_t ts = (uint64_t)time(NULL);
	if (ts < *last_ts)
		ts = *last_ts;
	*last_ts = ts;
	p->timestamp = ts;
	p->nonce = nonce;
	p->receive_pk = veil__rxkey_public(rx[*n_rx - 1]);
	*len = 0;
	return veil__devmsg_build(p, out, cap, len) == VEIL_OK ? 0 : -1;
}

int bench_keyd_bundle_open(const uint8_t auth_pk[VEIL_PK_BYTES], const struct veil_credential *cred,
                           struct veil__rxkey **rx, size_t *n_rx, uint64_t *held_version,
                           const uint8_t nonce[VEIL__DEVMSG_NONCE_BYTES], const uint8_t *buf, size_t len,
                           struct veil__grant *send, bool *has_send)
{
	struct veil__trust t = { .authorities = (const uint8_t(*)[VEIL_PK_BYTES])auth_pk, .n_authorities = 1,
		                 .now = (uint64_t)time(NULL) };
	struct veil__bundle_self self = { .cred = cred, .rxkeys = rx, .n_rxkeys = *n_rx,
		                          .held_version = *held_version,
		                          .echo_nonce = *held_version ? NULL : nonce };
	struct veil__bundle_view bv;
	struct veil__grants *g = NULL;
	size_t idx = 0;
	int rc = veil__bundle_open(buf, len, &t, &self, &bv, &idx, &g);
	if (rc == VEIL_OK && has_send) {
		*has_send = false;
		for (size_t i = 0; i < g->n; i++) {
			const struct veil__grant *x = &g->g[i];
			if (x->send_from <= t.now && t.now < x->send_until && (!*has_send || x->key_id > send->key_id)) {
				*send = *x;
				*has_send = true;
			}
		}
	}
	veil__grants_free(&g);
	if (rc != VEIL_OK)
		return rc;
	*held_version = bv.version;
	for (size_t i = 0; i <= idx; i++)
		veil__rxkey_free(&rx[i]);
	memmove(rx, rx + idx + 1, (*n_rx - idx - 1) * sizeof(rx[0]));
	*n_rx -= idx + 1;
	return VEIL_OK;
}
