/* Client id / username validation (see auth_names.h). */
#include <stddef.h>
#include <stdint.h>

#include "veil/identity.h"
#include "auth_names.h"

bool vp_auth__name_valid(const char *s)
{
	if (!s || !*s)
		return false;
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;
	while (p[i]) {
		if (i >= VEIL_CLIENT_ID_MAX)
			return false;
		uint32_t c = p[i];
		size_t n;
		if (c < 0x80) {
			if (c < 0x20 || c == 0x7f || c == '+' || c == '#')
				return false;
			i++;
			continue;
		} else if ((c & 0xE0) == 0xC0) {
			n = 1;
			c &= 0x1F;
		} else if ((c & 0xF0) == 0xE0) {
			n = 2;
			c &= 0x0F;
		} else if ((c & 0xF8) == 0xF0) {
			n = 3;
			c &= 0x07;
		} else {
			return false;
		}
		for (size_t k = 1; k <= n; k++) {
			if ((p[i + k] & 0xC0) != 0x80)
				return false; /* also stops at the NUL */
			c = (c << 6) | (p[i + k] & 0x3FU);
		}
		/* overlong forms, surrogates, beyond Unicode, C1 controls */
		if ((n == 1 && c < 0x80) || (n == 2 && c < 0x800) || (n == 3 && c < 0x10000) || c > 0x10FFFF ||
		    (c >= 0xD800 && c <= 0xDFFF) || (c >= 0x80 && c <= 0x9F))
			return false;
		i += n + 1;
	}
	return i <= VEIL_CLIENT_ID_MAX;
}
