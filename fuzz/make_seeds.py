#!/usr/bin/env python3
"""Writes the committed seed corpora fuzz/corpus/<target>/ from the unit-test
vectors (tests/vectors/core.txt) and small text samples. Deterministic: run it
again after the vectors change; file names are fixed, contents only depend on
the vectors. Input formats are described at the top of each fuzz_<name>.c."""
import base64
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
vec = {}
with open(os.path.join(ROOT, "tests", "vectors", "core.txt")) as f:
    for line in f:
        line = line.strip()
        if line and not line.startswith("#"):
            k, v = line.split(None, 1)
            vec[k] = v
b = {k: bytes.fromhex(v) for k, v in vec.items() if k not in ()}
apk = base64.b64encode(b["authority_pk"]).decode()
tkey = base64.b64encode(b["topic_key"]).decode()

KEYRING = (f"# sample keyring\nauthority {apk}\n"
           f"key factory/# 7 {tkey} send\n"
           f"key sensors/+/temp 9 {tkey}\n"
           "policy sensors/+/temp signed\npolicy legacy/# plaintext\n"
           f"key $SYS/# 3 {tkey}\n")

seeds = {
    "envelope": {
        # selector 0 = factory/line1/temp (the vectors' topic)
        "unsigned": b"\x00" + b["envelope_unsigned"],
        "signed": b"\x00" + b["envelope_signed"],
        "empty": b"\x00" + b["envelope_empty"],
        "signed_on_secure": b"\x01" + b["envelope_signed"],
        "plaintext": b"\x02" + b"21.5C",
        "own_topic": b"\xff" + bytes([18]) + b"factory/line1/temp" + b["envelope_unsigned"],
    },
    "token": {
        "credential": b["credential"],
        "token": b["token"],
        "token_v2": b["token_v2"],
        "password": b"veil1:" + base64.b64encode(b["token"]),
        "password_v2": b"veil1:" + base64.b64encode(b["token_v2"]),
    },
    "bundle": {
        # the key service's vectors (docs/PROTOCOL.md section 9); fuzz_bundle reads each as all three formats
        "request": b["devmsg_request"],
        "ack": b["devmsg_ack"],
        "bundle": b["bundle"],
        "revocation": b["revocation"],
    },
    "grants": {
        # the bundle plaintext (u16 N, N grants) of the vectors, also the body of a device's keys file
        "bundle_plaintext": b["bundle_plaintext"],
        "empty": b"\x00\x00",
    },
    "device_state": {
        # <state_dir>/keys (both versions) and <state_dir>/revoked, each read by both loaders
        "keys": b"VEILKEY2" + (1700000500000000).to_bytes(8, "big") + bytes(range(0xD0, 0xE0)) + b["bundle_plaintext"],
        "keys_v1": b"VEILKEYS" + (1700000500000000).to_bytes(8, "big") + b["bundle_plaintext"],
        # the revocation statement vector's entries: u32 n at offset 18, entries from 22
        "revoked": b"VEILREV1" + b["revocation"][18:22] +
                   b["revocation"][22:22 + 25 * int.from_bytes(b["revocation"][18:22], "big")],
    },
    "keyring": {
        "sample": KEYRING.encode(),
        "minimal": f"key # 1 {tkey}\n".encode(),
        "plaintext_only": b"policy # plaintext\n",
    },
    "acl": {
        "mosquitto": (b"# comment\ntopic read anon/r\ntopic anon/rw\nuser alice\n"
                      b"topic write a/w\ntopic readwrite a/rw\ntopic deny a/rw/secret\n"
                      b"pattern read p/%c/%u\nuser bob smith\ntopic read  b/with space  \n"),
        "attrs": (b"topic subscribe s/#\ntopic readwrite,encrypted enc/#\n"
                  b"topic write,signed sig/+\ntopic read,subscribe rs/#\nrole sensor\n"
                  b"topic write sensors/%c/#\npattern readwrite devices/%c/#\n"),
        "with_topic": b"user alice\ntopic readwrite,encrypted x/+/y\n\x00x/1/y",
    },
    "passwd": {
        "two": (b"# users\nalice:$argon2id$v=19$m=65536,t=2,p=1$c2FsdHNhbHRzYWx0$"
                b"aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g\n\n"
                b"bob:$argon2id$v=19$m=65536,t=2,p=1$AAAAAAAAAAAAAAAAAAAAAA$"
                b"BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB\n"),
    },
    "revoke": {
        "both": (b"credential 756e21c993b5844592b03e5aee5368f2\n# retired\nclient sensor-3\n\n"
                 b"credential A0A1A2A3A4A5A6A7A8A9AAABACADAEAF\n"),
        "client_first": b"client sensor-1\n",
    },
    "relay": {
        # the topic level after $veil/v1/revoked/, NUL, the record's payload (plugin/relay.h)
        "credential": b"credential/756e21c993b5844592b03e5aee5368f2\0credential 756e21c993b5844592b03e5aee5368f2",
        "client": b"client/73656e736f722d32\0client sensor-2",
        "mismatch": b"client/73656e736f722d32\0client sensor-3",
        "payload_only": b"client sensor-1",
    },
    "control": {
        # the admin API's requests ($CONTROL/veil/v1, docs/OPERATIONS.md)
        "every_command": (b'{"commands":[{"command":"listClients","offset":0,"count":10,"correlationData":"c1"},'
                          b'{"command":"kickClient","clientId":"sensor-1"},'
                          b'{"command":"revokeClient","clientid":"sensor-2"},'
                          b'{"command":"revokeCredential","credentialId":"756e21c993b5844592b03e5aee5368f2"},'
                          b'{"command":"removeRevocation","clientId":"sensor-2"},'
                          b'{"command":"listRevocations"},{"command":"listPasswordUsers"},'
                          b'{"command":"addPasswordUser","username":"alice","password":"wonderland"},'
                          b'{"command":"removePasswordUser","username":"alice"},'
                          b'{"command":"reload"},{"command":"getCounters"}]}'),
        "refused": (b'{"commands":[{"command":"kickClient","clientId":"a/#"},{"command":"nope"},5,'
                    b'{"command":"listClients","count":-1}]}'),
        "not_json": b'{"commands":[{"command":"reload"}',
    },
    "storage_key": {
        # veil-keyd's storage key file (keyd/store.c)
        "valid": f"veil-storage-key-v1 {tkey}\n".encode(),
        "blank_lines": f"\n  \nveil-storage-key-v1 {tkey}\n\n".encode(),
        "two_lines": f"veil-storage-key-v1 {tkey}\nveil-storage-key-v1 {tkey}\n".encode(),
        "short": b"veil-storage-key-v1 AAAA\n",
    },
    "config": {
        "full": (b"# client\nidentity device.id\ncredential /etc/veil/device.cred\n"
                 b"keyring keys/keyring\nstate_dir /var/lib/veil\nclient_id sensor-1\n"
                 b"auth credential\nsign always\nlog none\n"),
        "minimal": b"keyring k\n",
    },
}

out_root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "fuzz", "corpus")
for target, files in seeds.items():
    d = os.path.join(out_root, target)
    os.makedirs(d, exist_ok=True)
    for name, data in files.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)
