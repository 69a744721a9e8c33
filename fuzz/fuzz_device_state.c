/*
 * libFuzzer target: the device's state files in <state_dir>, read at start by
 * the key service's device side (client-shim/device_keys.c
 * veil__device_keys_load: `keys`, "VEILKEY2" || u64 version || 16-byte keyd
 * credential id || grants, or the older "VEILKEYS" || u64 version || grants;
 * client-shim/device_revoked.c veil__device_rev_load: `revoked`, "VEILREV1"
 * || u32 n || n x (kind || 16-byte id || u64 keep-until)). Both loaders read
 * a path, so the input goes to an in-memory file (memfd, mode 0600 as the
 * loaders demand) read through /proc/self/fd/N; each input is loaded as both
 * files into a device built as veil__device_new leaves it.
 * Checked: a keys file that loads holds the version and grants of its bytes,
 * each grant valid (section 12); one that does not load hands out nothing. A
 * revoked file that loads reports revoked every credential entry and every
 * sender entry (8-byte id, then zeros) whose keep-until is still ahead; one
 * that does not load adds nothing. Seeds: fuzz/corpus/device_state (a keys
 * file of each version holding the bundle_plaintext vector; a revoked file
 * holding the revocation vector's entries).
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "device_private.h"
#include "util.h"

#include "fuzz_common.h"
#include "fuzz_memfile.h"

static char *mem_path;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_sodium_init();
	if (!(mem_path = strdup(fuzz_memfile_init_0600("veil-fuzz-device-state"))))
		abort();
	return 0;
}

static void check_keys(const struct veil__device *d, const uint8_t *data, size_t size)
{
	size_t head = size >= 8 && memcmp(data, "VEILKEY2", 8) == 0 ? 32 : 16;
	if (size < head + 2 || !d->grants || !d->have_version || d->version != veil__get_u64(data + 8) ||
	    d->grants->n != veil__get_u16(data + head))
		abort();
	for (size_t i = 0; i < d->grants->n; i++) {
		const struct veil__grant *g = &d->grants->g[i];
		if (g->key_id < VEIL__GRANT_KEY_ID_MIN || (g->flags & ~VEIL__GRANT_FLAGS) ||
		    g->send_from > g->send_until || g->send_until > g->accept_until || !g->scope[0])
			abort();
	}
}

static void check_revoked(struct veil__device *d, const uint8_t *data, size_t size)
{
	/* A little margin: entries expiring while this input runs are not checked. */
	uint64_t now = (uint64_t)time(NULL) + 60;
	for (size_t off = 12; off + VEIL__REV_ENTRY_BYTES <= size; off += VEIL__REV_ENTRY_BYTES) {
		const uint8_t *e = data + off;
		if (veil__get_u64(e + 1 + VEIL_CREDENTIAL_ID_BYTES) <= now)
			continue;
		static const uint8_t zero[VEIL_CREDENTIAL_ID_BYTES - VEIL_SENDER_ID_BYTES];
		if (e[0] == VEIL__REV_CREDENTIAL && !d->revoked.credential(d->revoked.ctx, e + 1))
			abort();
		if (e[0] == VEIL__REV_SENDER && memcmp(e + 1 + VEIL_SENDER_ID_BYTES, zero, sizeof(zero)) == 0 &&
		    !d->revoked.sender(d->revoked.ctx, e + 1))
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_memfile_put(data, size);
	struct veil__device d;
	memset(&d, 0, sizeof(d));
	if (pthread_mutex_init(&d.rev_lock, NULL) != 0 || pthread_mutex_init(&d.lock, NULL) != 0)
		abort();
	d.keys_path = mem_path;
	d.revoked_path = mem_path;
	veil__device_rev_init(&d);
	char err[512];

	if (veil__device_keys_load(&d, err, sizeof(err)) == VEIL_OK)
		check_keys(&d, data, size);
	else if (d.grants || d.have_version)
		abort(); /* a refused keys file must not hand out keys */
	veil__grants_free(&d.grants);

	if (veil__device_rev_load(&d, err, sizeof(err)) == VEIL_OK)
		check_revoked(&d, data, size);
	else if (d.revs && (size < 12 || memcmp(data, "VEILREV1", 8) != 0))
		abort(); /* a file that is not a revocation state file adds nothing */
	veil__device_rev_free(&d);

	pthread_mutex_destroy(&d.lock);
	pthread_mutex_destroy(&d.rev_lock);
	return 0;
}
