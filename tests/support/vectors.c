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

static FILE *open_vectors(const char *file, char *path, size_t pathlen)
{
	const char *dir = getenv("VEIL_SOURCE_DIR");
	snprintf(path, pathlen, "%s/tests/vectors/%s", dir ? dir : VEIL_SOURCE_DIR, file);
	return fopen(path, "r");
}

/* Hex digits at *h into out (at most cap bytes); *h moves past them. */
static size_t hex_run(const char **h, uint8_t *out, size_t cap)
{
	size_t n = 0;
	while (hexval((*h)[0]) >= 0 && hexval((*h)[1]) >= 0 && n < cap) {
		out[n++] = (uint8_t)(hexval((*h)[0]) << 4 | hexval((*h)[1]));
		*h += 2;
	}
	return n;
}

long test_vector(const char *name, uint8_t *out, size_t cap)
{
	char path[512];
	FILE *f = open_vectors("core.txt", path, sizeof(path));
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
		result = (long)hex_run(&h, out, cap);
		break;
	}
	fclose(f);
	if (result < 0)
		fprintf(stderr, "vector %s not found in %s\n", name, path);
	return result;
}

long test_names(struct test_name *out, size_t max)
{
	char path[512];
	FILE *f = open_vectors("names.txt", path, sizeof(path));
	if (!f) {
		fprintf(stderr, "cannot open %s\n", path);
		return -1;
	}
	char line[1024];
	long count = 0;
	while (count >= 0 && fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		if (line[0] == '#')
			continue;
		if ((size_t)count == max) {
			count = -1;
			break;
		}
		struct test_name *t = &out[count];
		memset(t, 0, sizeof(*t));
		const char *h = line;
		t->len = hex_run(&h, (uint8_t *)t->name, sizeof(t->name) - 1);
		for (int k = 0; k < TEST_NAME_KINDS && count >= 0; k++, h += 2) {
			if (h[0] != ' ' || (h[1] != '0' && h[1] != '1'))
				count = -1;
			else
				t->valid[k] = h[1] == '1';
		}
		if (count >= 0 && (*h != '\0' || strlen(t->name) != t->len))
			count = -1;
		if (count >= 0)
			count++;
	}
	fclose(f);
	if (count < 0)
		fprintf(stderr, "%s: malformed line '%s'\n", path, line);
	return count;
}
