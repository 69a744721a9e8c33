/* The keyed hash of every Veil table (see table.h). */
#include "table.h"

#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include <sodium.h>

/* One key per process, drawn at the first use. Not a secret anyone could
 * use to read or forge anything: it only keeps bucket choice unpredictable. */
static uint8_t table_key[crypto_shorthash_KEYBYTES];
static pthread_once_t table_key_once = PTHREAD_ONCE_INIT;

static void table_key_init(void)
{
	randombytes_buf(table_key, sizeof(table_key));
}

unsigned veil__table_hash(const void *key, size_t len)
{
	pthread_once(&table_key_once, table_key_init);
	uint8_t h[crypto_shorthash_BYTES];
	crypto_shorthash(h, key, len, table_key);
	uint32_t v;
	memcpy(&v, h, sizeof(v));
	return v;
}
