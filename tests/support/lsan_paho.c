/*
 * LeakSanitizer suppressions (ASan builds) for the test programs that drive
 * Paho MQTTClient directly with MQTT 5 (the plugin-ACL and plugin-auth
 * tests). Paho C 1.3.11's MQTTClient_connect5 leaks its copy of the CONNACK
 * properties (MQTTProperties_copy), and with both Paho libraries linked
 * (paho-mqtt3as and -3cs, each with its own heap bookkeeping) MQTT 5
 * property copies made by one are released by the other. Paho has no frame
 * pointers, so the default unwinder only sees the library: allocations made
 * inside Paho (third-party client code, not Veil's) are suppressed. The
 * plugin runs in the broker process, checked separately.
 *
 * Not part of the veil_test_support archive: nothing references this
 * symbol (the ASan runtime looks it up), so an archive member would never
 * be linked. tests/CMakeLists.txt links this object into exactly the
 * programs that need it. The libveil tests do not get it: there a Paho
 * object leaked by libveil must be reported.
 */
const char *__lsan_default_suppressions(void) __attribute__((visibility("default"), used));

const char *__lsan_default_suppressions(void)
{
	return "leak:MQTTProperties_copy\nleak:libpaho-mqtt3\n";
}
