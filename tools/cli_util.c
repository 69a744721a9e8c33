/* Small helpers shared by the CLI commands. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

unsigned char *cli_read_file(const char *path, size_t *len)
{
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
	if (!f)
		return NULL;
	size_t cap = 4096, n = 0;
	unsigned char *buf = malloc(cap);
	while (buf) {
		size_t r = fread(buf + n, 1, cap - n, f);
		n += r;
		if (r == 0)
			break;
		if (n == cap) {
			if (cap > ((size_t)64 << 20)) {
				free(buf);
				buf = NULL;
				errno = EFBIG;
				break;
			}
			unsigned char *nb = realloc(buf, cap * 2);
			if (!nb) {
				free(buf);
				buf = NULL;
				break;
			}
			buf = nb;
			cap *= 2;
		}
	}
	if (f != stdin)
		fclose(f);
	if (buf)
		*len = n;
	return buf;
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
