#include "vectors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef VEIL_SOURCE_DIR
#define VEIL_SOURCE_DIR "."
#endif

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

long test_vector(const char *name, uint8_t *out, size_t cap)
{
	const char *dir = getenv("VEIL_SOURCE_DIR");
	char path[512];
	snprintf(path, sizeof(path), "%s/tests/vectors/core.txt", dir ? dir : VEIL_SOURCE_DIR);
	FILE *f = fopen(path, "r");
	if (!f) {
		fprintf(stderr, "cannot open %s\n", path);
		return -1;
	}
	static char line[8192];
	long result = -1;
	size_t nl = strlen(name);
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, name, nl) != 0 || line[nl] != ' ')
			continue;
		const char *h = line + nl + 1;
		size_t n = 0;
		while (hexval(h[0]) >= 0 && hexval(h[1]) >= 0 && n < cap) {
			out[n++] = (uint8_t)(hexval(h[0]) << 4 | hexval(h[1]));
			h += 2;
		}
		result = (long)n;
		break;
	}
	fclose(f);
	if (result < 0)
		fprintf(stderr, "vector %s not found in %s\n", name, path);
	return result;
}
