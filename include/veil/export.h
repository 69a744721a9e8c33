/* Symbol visibility: everything is hidden unless marked VEIL_EXPORT. */
#ifndef VEIL_EXPORT_H
#define VEIL_EXPORT_H

#if defined(__GNUC__)
#  define VEIL_EXPORT __attribute__((visibility("default")))
#  define VEIL_WARN_UNUSED __attribute__((warn_unused_result))
#else
#  define VEIL_EXPORT
#  define VEIL_WARN_UNUSED
#endif

#endif
