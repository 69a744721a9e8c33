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

#define VEIL_VERSION_STRING "0.1.0"

/* Initialises libsodium; safe to call more than once and from several threads. */
VEIL_EXPORT int veil_init(void);
VEIL_EXPORT const char *veil_version(void);

#ifdef __cplusplus
}
#endif
#endif
