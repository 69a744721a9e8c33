/*
 * The `veil` command-line tool. Each command family lives in its own
 * cmd_*.c file and defines one entry point; veil.c dispatches. Every entry
 * point is a strong reference: a missing family is a link error.
 */
#ifndef VEIL_CLI_H
#define VEIL_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

int veil_cmd_keygen(int argc, char **argv);      /* cmd_keys.c */
int veil_cmd_credential(int argc, char **argv);  /* cmd_keys.c */
int veil_cmd_inspect(int argc, char **argv);     /* cmd_inspect.c */
int veil_cmd_pub(int argc, char **argv);         /* cmd_pub.c (libveil, cli_mqtt.c) */
int veil_cmd_sub(int argc, char **argv);         /* cmd_sub.c (libveil, cli_mqtt.c, sub_format.c) */
int veil_cmd_passwd(int argc, char **argv);      /* cmd_passwd.c (plugin auth) */
int veil_cmd_token(int argc, char **argv);       /* cmd_keys.c */
int veil_cmd_keys(int argc, char **argv);        /* cmd_keyd.c (veil-keyd's store) */
int veil_cmd_ctl(int argc, char **argv);         /* cmd_ctl.c (the plugin's admin API, libveil) */

/* Exit codes: 0 ok, 1 runtime failure, 2 usage error. */
#define VEIL_EXIT_OK 0
#define VEIL_EXIT_FAIL 1
#define VEIL_EXIT_USAGE 2

/* Read a whole file (binary; "-" is standard input, pipes allowed) of at
 * most CLI_FILE_MAX bytes into a malloc'd buffer, NUL-terminated after len
 * bytes; NULL on error (errno set: EFBIG when too large). */
#define CLI_FILE_MAX ((size_t)128 << 20)
unsigned char *cli_read_file(const char *path, size_t *len);
/* A password: from the terminal without echo (asked twice when confirm),
 * or the first line of standard input when it is not a terminal. 0, or -1
 * (mismatch said as "veil <cmd>: ..."; a line too long; nothing to read).
 * Wipe pw after use. */
int cli_read_password(const char *cmd, char *pw, size_t cap, bool confirm);
/* Hex encode/decode helpers for the CLI. */
int cli_hex_decode(const char *hex, unsigned char *out, size_t cap, size_t *len);

/* cli_out.c: a UTC time as the CLI prints it ("2026-11-30T12:00:00Z"). */
void cli_utc(uint64_t t, char *buf, size_t cap);
/* JSON output (cJSON): name = lower-case hex of p[0..n) (n <= 64); name =
 * the number t and name_utc = its UTC time; an exact 64-bit number; and
 * the object printed on one line, then deleted (returns an exit status). */
struct cJSON;
void cli_json_hex(struct cJSON *o, const char *name, const uint8_t *p, size_t n);
void cli_json_time(struct cJSON *o, const char *name, uint64_t t);
void cli_json_u64(struct cJSON *o, const char *name, uint64_t v);
int cli_json_print(struct cJSON *o);

#endif
