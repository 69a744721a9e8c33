/* Small helpers shared by the CLI commands. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <sodium.h>

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

/* One line without its end; -1 at EOF or for a line longer than cap - 1. */
static int read_line(FILE *in, char *buf, size_t cap)
{
	if (!fgets(buf, (int)cap, in))
		return -1;
	size_t n = strlen(buf);
	if (n > 0 && buf[n - 1] == '\n')
		buf[--n] = '\0';
	else if (!feof(in))
		return -1; /* longer than the buffer */
	if (n > 0 && buf[n - 1] == '\r')
		buf[--n] = '\0';
	return 0;
}

static int prompt(const char *text, char *buf, size_t cap)
{
	struct termios old, quiet;
	fprintf(stderr, "%s", text);
	fflush(stderr);
	if (tcgetattr(STDIN_FILENO, &old) != 0)
		return -1;
	quiet = old;
	quiet.c_lflag &= ~(tcflag_t)ECHO;
	quiet.c_lflag |= ECHONL;
	tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
	int rc = read_line(stdin, buf, cap);
	tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
	return rc;
}

int cli_read_password(const char *cmd, char *pw, size_t cap, bool confirm)
{
	if (!isatty(STDIN_FILENO))
		return read_line(stdin, pw, cap);
	if (prompt("Password: ", pw, cap) != 0)
		return -1;
	if (!confirm)
		return 0;
	char *again = malloc(cap);
	int rc = again ? prompt("Reenter password: ", again, cap) : -1;
	bool same = rc == 0 && strcmp(pw, again) == 0;
	if (again) {
		sodium_memzero(again, cap);
		free(again);
	}
	if (!same) {
		fprintf(stderr, "veil %s: passwords do not match\n", cmd);
		sodium_memzero(pw, cap);
		return -1;
	}
	return 0;
}
