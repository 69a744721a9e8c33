# Runs at install time (install(SCRIPT) in CMakeLists.txt): installs
# mosquitto.conf.sample as <sysconfdir>/mosquitto/conf.d/veil.conf, its
# plugin line naming the plugin where this installation puts it, so the
# snippet is right for `cmake --install --prefix DIR` as for the packages.
# Set by CMakeLists.txt: VEIL_SAMPLE, VEIL_SNIPPET_TMP, VEIL_LIBDIR,
# VEIL_SYSCONFDIR (as GNUInstallDirs gives them, relative or absolute).
foreach(v LIBDIR SYSCONFDIR)
  if(IS_ABSOLUTE "${VEIL_${v}}")
    set(dir_${v} "${VEIL_${v}}")
  elseif(v STREQUAL "SYSCONFDIR" AND CMAKE_INSTALL_PREFIX MATCHES "^/(usr/?)?$")
    set(dir_${v} "/${VEIL_${v}}") # GNUInstallDirs' rule: /usr's config is in /etc
  else()
    set(dir_${v} "${CMAKE_INSTALL_PREFIX}/${VEIL_${v}}")
  endif()
endforeach()
file(READ "${VEIL_SAMPLE}" conf)
string(REGEX REPLACE "\nplugin [^\n]*" "\nplugin ${dir_LIBDIR}/mosquitto/mosquitto_veil.so" conf "${conf}")
file(WRITE "${VEIL_SNIPPET_TMP}/veil.conf" "${conf}")
file(INSTALL DESTINATION "${dir_SYSCONFDIR}/mosquitto/conf.d" TYPE FILE FILES "${VEIL_SNIPPET_TMP}/veil.conf")
