# Find Debian 12 packages; every failure names the package to install.
find_package(PkgConfig)
if(NOT PKG_CONFIG_FOUND)
  message(FATAL_ERROR "pkg-config not found: apt-get install pkg-config")
endif()

pkg_check_modules(SODIUM IMPORTED_TARGET libsodium>=1.0.18)
if(NOT SODIUM_FOUND)
  message(FATAL_ERROR "libsodium not found: apt-get install libsodium-dev")
endif()

# Debian's Paho CMake package lists OpenSSL::SSL/Crypto in the link interface
# of paho-mqtt3as/3cs without finding OpenSSL itself.
find_package(OpenSSL QUIET)
if(NOT OPENSSL_FOUND)
  message(FATAL_ERROR "OpenSSL not found (Paho's TLS libraries need it): apt-get install libssl-dev")
endif()
find_package(eclipse-paho-mqtt-c CONFIG QUIET)
if(NOT eclipse-paho-mqtt-c_FOUND)
  message(FATAL_ERROR "Eclipse Paho MQTT C not found: apt-get install libpaho-mqtt-dev")
endif()

find_path(MOSQUITTO_PLUGIN_INCLUDE_DIR mosquitto_broker.h)
find_path(MOSQUITTO_PLUGIN_H mosquitto_plugin.h)
if(NOT MOSQUITTO_PLUGIN_INCLUDE_DIR OR NOT MOSQUITTO_PLUGIN_H)
  message(FATAL_ERROR "Mosquitto plugin headers not found: apt-get install mosquitto-dev libmosquitto-dev")
endif()

find_path(UTHASH_INCLUDE_DIR uthash.h)
if(NOT UTHASH_INCLUDE_DIR)
  message(FATAL_ERROR "uthash not found: apt-get install uthash-dev")
endif()

# JSON in the veil CLI (sub --json, credential show --json, inspect --json),
# as Mosquitto's dynamic-security plugin and tools use it.
pkg_check_modules(CJSON IMPORTED_TARGET libcjson)
if(NOT CJSON_FOUND)
  message(FATAL_ERROR "cJSON not found: apt-get install libcjson-dev")
endif()

find_package(Threads REQUIRED)

if(VEIL_BUILD_TESTS)
  pkg_check_modules(CHECK IMPORTED_TARGET check)
  if(NOT CHECK_FOUND)
    message(FATAL_ERROR "Check not found: apt-get install check (or configure with -DVEIL_BUILD_TESTS=OFF)")
  endif()
  find_program(MOSQUITTO_BIN mosquitto PATHS /usr/sbin /sbin)
  if(NOT MOSQUITTO_BIN)
    message(FATAL_ERROR "mosquitto broker not found: apt-get install mosquitto")
  endif()
endif()

# veil-keyd's store (keyd/store.c).
pkg_check_modules(SQLITE3 IMPORTED_TARGET sqlite3)
if(NOT SQLITE3_FOUND)
  message(FATAL_ERROR "SQLite 3 not found (veil-keyd's store): apt-get install libsqlite3-dev")
endif()
