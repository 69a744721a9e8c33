/* Veil umbrella header. Call veil_init() once before anything else. */
#ifndef VEIL_VEIL_H
#define VEIL_VEIL_H

#include "veil/export.h"
#include "veil/error.h"
#include "veil/identity.h"
#include "veil/envelope.h"
#include "veil/keyring.h"
#include "veil/replay.h"
#include "veil/message.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The version this program is compiled against (CMakeLists.txt checks they
 * match the project's). VEIL_VERSION_NUMBER compares as an integer:
 * #if VEIL_VERSION_NUMBER >= VEIL_VERSION_ENCODE(1, 1, 0). */
#define VEIL_VERSION_MAJOR 1
#define VEIL_VERSION_MINOR 1
#define VEIL_VERSION_PATCH 0
#define VEIL_VERSION_STRING "1.1.0"
#define VEIL_VERSION_ENCODE(major, minor, patch) (((major) << 16) | ((minor) << 8) | (patch))
#define VEIL_VERSION_NUMBER VEIL_VERSION_ENCODE(VEIL_VERSION_MAJOR, VEIL_VERSION_MINOR, VEIL_VERSION_PATCH)

/* Initialises libsodium; safe to call more than once and from several threads. */
VEIL_EXPORT int veil_init(void);
/* The version of the library actually loaded. */
VEIL_EXPORT const char *veil_version(void);
VEIL_EXPORT unsigned veil_version_number(void);

#ifdef __cplusplus
}
#endif
#endif
