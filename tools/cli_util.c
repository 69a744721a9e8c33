/* Small helpers shared by the CLI commands. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "veil/error.h"
#include "../core/util.h" /* the one whole-file reader */
#include "cli.h"

unsigned char *cli_read_file(const char *path, size_t *len)
{
	/* The core's one reader; without VEIL__FILE_WIPE the text is malloc'd. */
	struct veil__text t;
	if (veil__file_read(path, VEIL__FILE_ANY, CLI_FILE_MAX, &t, NULL, 0) != VEIL_OK)
		return NULL; /* errno says why */
	*len = t.len;
	return (unsigned char *)t.text;
}

static int hv(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int cli_hex_decode(const char *hex, unsigned char *out, size_t cap, size_t *len)
{
	size_t n = 0;
	while (*hex) {
		if (*hex == ' ' || *hex == '\n' || *hex == '\t' || *hex == '\r') {
			hex++;
			continue;
		}
		int a = hv(hex[0]), b = a >= 0 ? hv(hex[1]) : -1;
		if (a < 0 || b < 0 || n == cap)
			return -1;
		out[n++] = (unsigned char)(a << 4 | b);
		hex += 2;
	}
	*len = n;
	return 0;
}
