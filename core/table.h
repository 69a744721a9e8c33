/*
 * Tables: uthash, as Mosquitto uses it, is Veil's one hash table. Include
 * this header instead of <uthash.h>; it sets two things for every table of
 * the including file:
 * - keys are hashed with SipHash-2-4 (libsodium crypto_shorthash) under a
 *   random key drawn once per process, so nobody who chooses keys (client
 *   ids, usernames, addresses, nonces, sender ids) can aim them at one
 *   bucket and turn O(1) lookups into list walks;
 * - running out of memory is not fatal (uthash would exit(), taking the
 *   broker with it): a HASH_ADD that fails leaves the item out of the table
 *   with item->hh.tbl == NULL (see veil__table_added), and a table that
 *   cannot grow keeps working with longer chains.
 * A file with a reason for another hash (the ACL trie: keys come only from
 * the operator's rules file, and its lookup is the per-message hot path)
 * includes <uthash.h> itself and says why.
 */
#ifndef VEIL_CORE_TABLE_H
#define VEIL_CORE_TABLE_H

#ifdef UTHASH_H
#error "include core/table.h before <uthash.h>: its tables would use the unkeyed hash"
#endif

#include <stdbool.h>
#include <stddef.h>

unsigned veil__table_hash(const void *key, size_t len);

#define HASH_FUNCTION(keyptr, keylen, hashv) ((hashv) = veil__table_hash((keyptr), (size_t)(keylen)))
#define HASH_NONFATAL_OOM 1
#include <uthash.h>

/* After HASH_ADD*(hh, ...): was the item added (false: out of memory)? */
#define veil__table_added(item) ((item)->hh.tbl != NULL)

#endif
