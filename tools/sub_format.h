/*
 * `veil sub`'s output (sub_format.c): payload only, -v, -F FORMAT, --json.
 */
#ifndef VEIL_SUB_FORMAT_H
#define VEIL_SUB_FORMAT_H

#include <stdbool.h>
#include <stdio.h>

#include "veil/client.h"

enum sub_out_mode { SUB_OUT_PAYLOAD, SUB_OUT_VERBOSE, SUB_OUT_FORMAT, SUB_OUT_JSON };

struct sub_out {
	enum sub_out_mode mode;
	const char *format;   /* SUB_OUT_FORMAT */
	bool no_eol;          /* -N */
};

/* One message, as the mode says, new line included (unless no_eol). */
void sub_print(FILE *f, const struct sub_out *o, const struct veil_message *m);
/* The -F and --json part of --help. */
void sub_format_help(FILE *f);

#endif
