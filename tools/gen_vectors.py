#!/usr/bin/env python3
"""Independent implementation of Veil's wire formats (docs/PROTOCOL.md), used
to generate the hex test vectors in tests/vectors/core.txt.

It shares no code with the C library: XChaCha20-Poly1305 is built here from
HChaCha20 (written out below) plus the `cryptography` package's IETF
ChaCha20-Poly1305, Ed25519 and X25519 come from `cryptography`, BLAKE2b from
hashlib.
If the C code and this script disagree, one of them does not follow the
document.

  python3 tools/gen_vectors.py > tests/vectors/core.txt    the C tests' vectors
  python3 tools/gen_vectors.py --doc                       section 9's vector block
  python3 tools/gen_vectors.py --names > tests/vectors/names.txt   names and their verdicts
  python3 tools/gen_vectors.py --check-doc docs/PROTOCOL.md [--check-vectors tests/vectors/core.txt]
                               [--check-names tests/vectors/names.txt]
      exit 1 (with a diff) unless the document's block, and the vector files,
      are exactly what this implementation computes (ctest protocol_vectors)
"""
import difflib
import hashlib
import struct
import sys

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives import serialization


def rotl(v, c):
    return ((v << c) & 0xFFFFFFFF) | (v >> (32 - c))


def quarter(s, a, b, c, d):
    s[a] = (s[a] + s[b]) & 0xFFFFFFFF; s[d] = rotl(s[d] ^ s[a], 16)
    s[c] = (s[c] + s[d]) & 0xFFFFFFFF; s[b] = rotl(s[b] ^ s[c], 12)
    s[a] = (s[a] + s[b]) & 0xFFFFFFFF; s[d] = rotl(s[d] ^ s[a], 8)
    s[c] = (s[c] + s[d]) & 0xFFFFFFFF; s[b] = rotl(s[b] ^ s[c], 7)


def hchacha20(key, nonce16):
    s = [0x61707865, 0x3320646E, 0x79622D32, 0x6B206574]
    s += list(struct.unpack("<8I", key)) + list(struct.unpack("<4I", nonce16))
    for _ in range(10):
        quarter(s, 0, 4, 8, 12); quarter(s, 1, 5, 9, 13)
        quarter(s, 2, 6, 10, 14); quarter(s, 3, 7, 11, 15)
        quarter(s, 0, 5, 10, 15); quarter(s, 1, 6, 11, 12)
        quarter(s, 2, 7, 8, 13); quarter(s, 3, 4, 9, 14)
    return struct.pack("<8I", *(s[0:4] + s[12:16]))


def xchacha_encrypt(key, nonce24, pt, aad):
    sub = hchacha20(key, nonce24[:16])
    return ChaCha20Poly1305(sub).encrypt(b"\0" * 4 + nonce24[16:], pt, aad)


def b2b(data, n=32, key=b""):
    return hashlib.blake2b(data, digest_size=n, key=key).digest()


class Ident:
    def __init__(self, seed):
        self.sk = Ed25519PrivateKey.from_private_bytes(seed)
        self.pk = self.sk.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

    def sign(self, msg):
        return self.sk.sign(msg)


def sender_id(pk):
    return b2b(b"veil-sender-v1" + pk)[:8]


def authority_id(pk):
    return b2b(b"veil-authority-v1" + pk)[:8]


def kcv(key):
    return b2b(b"veil-kcv-v1", 16, key)[:2]


NAME_KINDS = ("username", "client_id", "passwd_user")


def name_ok(name, kind):
    """docs/PROTOCOL.md section 3: a name is 1..128 bytes of well-formed UTF-8
    without control characters (C0, DEL, C1), '+' or '#', and without a space
    at either end; a credential's client id also has no '/', a password-file
    user no ':'."""
    if not 1 <= len(name) <= 128 or name[:1] == b" " or name[-1:] == b" ":
        return False
    try:
        text = name.decode("utf-8", errors="strict")  # refuses overlongs, surrogates, > U+10FFFF
    except UnicodeDecodeError:
        return False
    forbidden = "+#" + {"username": "", "client_id": "/", "passwd_user": ":"}[kind]
    return not any(ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F or ch in forbidden for ch in text)


def credential(auth, cid, issued, expires, dev_pk, client_id, roles):
    assert name_ok(client_id, "client_id"), client_id
    body = bytes([1, 0]) + cid + authority_id(auth.pk) + struct.pack(">QQ", issued, expires) + dev_pk
    body += bytes([len(client_id)]) + client_id + bytes([len(roles)]) + roles
    return body + auth.sign(b"veil-cred-v1" + body)


def token(dev, cred, client_id, ts, nonce, audience=None):
    """Version 1 without an audience, version 2 bound to one (section 4)."""
    if audience is None:
        body = bytes([1]) + struct.pack(">Q", ts) + nonce
    else:
        assert name_ok(audience, "client_id"), audience  # an audience follows a credential client id's rule
        body = bytes([2]) + struct.pack(">Q", ts) + nonce + bytes([len(audience)]) + audience
    body += struct.pack(">H", len(cred)) + cred
    domain = b"veil-token-v1" if audience is None else b"veil-token-v2"
    return body + dev.sign(domain + body + bytes([len(client_id)]) + client_id)


def envelope(key, key_id, sender, seq, nonce, topic, pt, signer=None, cred=b""):
    flags = 1 if signer else 0
    header = bytes([1, flags]) + struct.pack(">I", key_id) + kcv(key) + sender + struct.pack(">Q", seq) + nonce
    aad = header + struct.pack(">H", len(topic)) + topic
    ct = xchacha_encrypt(key, nonce, pt, aad)
    out = header + ct
    if signer:
        sig_in = b"veil-sig-v1" + header + struct.pack(">H", len(topic)) + topic + ct
        sig_in += struct.pack(">H", len(cred)) + cred
        out += cred + struct.pack(">H", len(cred)) + signer.sign(sig_in)
    return out


# Key service (sections 10-13).

def x25519_pk(sk):
    return X25519PrivateKey.from_private_bytes(sk).public_key().public_bytes(serialization.Encoding.Raw,
                                                                             serialization.PublicFormat.Raw)


def x25519(sk, pk):
    # cryptography refuses an all-zero result (small-order point), as section 12 requires
    return X25519PrivateKey.from_private_bytes(sk).exchange(X25519PublicKey.from_public_bytes(pk))


def devmsg(dev, cred, client_id, kind, ts, nonce, rx_pk, version):
    body = bytes([1, kind]) + struct.pack(">Q", ts) + nonce + rx_pk + struct.pack(">QH", version, len(cred)) + cred
    return body + dev.sign(b"veil-devmsg-v1" + body + bytes([len(client_id)]) + client_id)


def grant(scope, key_id, epoch, send_from, send_until, accept_until, grace, flags, key):
    return (bytes([len(scope)]) + scope
            + struct.pack(">IIQQQIB", key_id, epoch, send_from, send_until, accept_until, grace, flags) + key)


def bundle_key(eph_sk, rx_pk):
    return b2b(b"veil-bundle-key-v1" + x25519(eph_sk, rx_pk) + x25519_pk(eph_sk) + rx_pk)


def bundle(keyd, keyd_cred, version, echo, rx_pk, cred_id, sid, client_id, eph_sk, xnonce, pt):
    head = bytes([1, 3]) + struct.pack(">Q", version) + echo + rx_pk + cred_id + sid
    head += bytes([len(client_id)]) + client_id + x25519_pk(eph_sk) + xnonce + struct.pack(">I", len(pt) + 16)
    body = head + xchacha_encrypt(bundle_key(eph_sk, rx_pk), xnonce, pt, head)
    body += struct.pack(">H", len(keyd_cred)) + keyd_cred
    return body + keyd.sign(b"veil-bundle-v1" + body)


def revocation(keyd, keyd_cred, version, issued_at, entries):
    body = bytes([1, 4]) + struct.pack(">QQI", version, issued_at, len(entries))
    for kind, ident, keep_until in entries:
        body += bytes([kind]) + ident + bytes(16 - len(ident)) + struct.pack(">Q", keep_until)
    body += struct.pack(">H", len(keyd_cred)) + keyd_cred
    return body + keyd.sign(b"veil-revocation-v1" + body)


INPUTS = {
    "device_seed": bytes(range(0, 32)),
    "authority_seed": bytes(range(32, 64)),
    "topic_key": bytes(range(64, 96)),
    "credential_id": bytes(range(0xA0, 0xB0)),
    "issued_at": 1700000000,
    "expires_at": 4102444800,
    "client_id": b"sensor-1",
    "roles": b"sensor,eu",
    "token_timestamp": 1700000100,
    "token_nonce": bytes(range(0xB0, 0xC0)),
    "token_audience": b"factory-eu",
    "key_id": 7,
    "envelope_nonce": bytes(range(0xC0, 0xD8)),
    "topic": b"factory/line1/temp",
    "plaintext": b"21.5C",
    "seq_unsigned": 1700000000000000,
    "seq_signed": 1700000000000001,
    "seq_empty": 1700000000000002,
    # key service (sections 10-13)
    "keyd_seed": bytes(range(96, 128)),
    "keyd_credential_id": bytes([0x4B]) * 16,
    "keyd_client_id": b"veil-keyd",
    "keyd_roles": b"veil-keyd",
    "receive_seed": bytes(range(128, 160)),
    "next_receive_seed": bytes([0xA5]) * 32,
    "request_timestamp": 1700000300,
    "request_nonce": bytes([0x51]) * 16,
    "request_version": 0,
    "bundle_version": 1700000350000000,
    "ephemeral_seed": bytes(range(224, 256)),
    "bundle_nonce": bytes([0x42]) * 24,
    "ack_timestamp": 1700000400,
    "ack_nonce": bytes([0x41]) * 16,
    "grants": [
        # scope, key id, epoch, send_from, send_until, accept_until, grace, flags, key
        (b"factory/sensor-1/#", 0x80000001, 1, 1700000000, 1700086400, 1700090000, 0, 0x03, bytes([0x67]) * 32),
        (b"factory/#", 0x80000002, 2, 1700086400, 1700172800, 1700176400, 30, 0x04, bytes([0x68]) * 32),
    ],
    "revocation_version": 1700000500000000,
    "revocation_issued_at": 1700000500,
    "revoked": [
        (1, bytes([0x52]) * 16, 1800000000),
        (2, bytes([0x53]) * 8, 1900000000),
    ],
}


def compute():
    i = INPUTS
    dev = Ident(i["device_seed"])
    auth = Ident(i["authority_seed"])
    key = i["topic_key"]
    sid = sender_id(dev.pk)
    cred = credential(auth, i["credential_id"], i["issued_at"], i["expires_at"], dev.pk, i["client_id"], i["roles"])
    tok = token(dev, cred, i["client_id"], i["token_timestamp"], i["token_nonce"])
    tok2 = token(dev, cred, i["client_id"], i["token_timestamp"], i["token_nonce"], i["token_audience"])
    env = lambda seq, pt, signer=None, c=b"": envelope(key, i["key_id"], sid, seq, i["envelope_nonce"], i["topic"],
                                                       pt, signer, c)
    keyd = Ident(i["keyd_seed"])
    keyd_cred = credential(auth, i["keyd_credential_id"], i["issued_at"], i["expires_at"], keyd.pk,
                           i["keyd_client_id"], i["keyd_roles"])
    rx_pk = x25519_pk(i["receive_seed"])
    next_rx_pk = x25519_pk(i["next_receive_seed"])
    request = devmsg(dev, cred, i["client_id"], 1, i["request_timestamp"], i["request_nonce"], rx_pk,
                     i["request_version"])
    pt = struct.pack(">H", len(i["grants"])) + b"".join(grant(*g) for g in i["grants"])
    bnd = bundle(keyd, keyd_cred, i["bundle_version"], i["request_nonce"], rx_pk, i["credential_id"], sid,
                 i["client_id"], i["ephemeral_seed"], i["bundle_nonce"], pt)
    ack = devmsg(dev, cred, i["client_id"], 2, i["ack_timestamp"], i["ack_nonce"], next_rx_pk, i["bundle_version"])
    rev = revocation(keyd, keyd_cred, i["revocation_version"], i["revocation_issued_at"], i["revoked"])
    return {
        "device_seed": i["device_seed"], "device_pk": dev.pk,
        "authority_seed": i["authority_seed"], "authority_pk": auth.pk,
        "sender_id": sid, "authority_id": authority_id(auth.pk),
        "topic_key": key, "kcv": kcv(key),
        "credential": cred, "token": tok, "token_v2": tok2,
        "envelope_unsigned": env(i["seq_unsigned"], i["plaintext"]),
        "envelope_signed": env(i["seq_signed"], i["plaintext"], dev, cred),
        "envelope_empty": env(i["seq_empty"], b""),
        "keyd_seed": i["keyd_seed"], "keyd_pk": keyd.pk, "keyd_credential": keyd_cred,
        "receive_seed": i["receive_seed"], "receive_pk": rx_pk,
        "next_receive_seed": i["next_receive_seed"], "next_receive_pk": next_rx_pk,
        "ephemeral_seed": i["ephemeral_seed"], "ephemeral_pk": x25519_pk(i["ephemeral_seed"]),
        "request_nonce": i["request_nonce"], "ack_nonce": i["ack_nonce"], "bundle_nonce": i["bundle_nonce"],
        "bundle_key": bundle_key(i["ephemeral_seed"], rx_pk),
        "devmsg_request": request, "devmsg_ack": ack,
        "bundle_plaintext": pt, "bundle": bnd, "revocation": rev,
        "relay_credential_topic": relay_record(cred_id=i["credential_id"])[0],
        "relay_credential_payload": relay_record(cred_id=i["credential_id"])[1],
        "relay_client_topic": relay_record(client_id=i["client_id"])[0],
        "relay_client_payload": relay_record(client_id=i["client_id"])[1],
    }


# Names every front door must judge alike (check_names.c runs them through
# the core, the credential issuer and parser, the plugin's password and
# revocation files, the client config and the CLI).
NAMES = [
    b"a", b"sensor-01", b"Gr\xc3\xbc\xc3\x9fe", b"\xe6\x97\xa5\xe6\x9c\xac", b"emoji-\xf0\x9f\x98\x80",
    b"x y", b"a:b", b"aa:bb:cc:dd:ee:ff", b"$weird", b"dev.example/x", b"site/a/b", b"/", b"a%c",
    b"auto-5A1E2F3C-1B2D-4E5F-8A9B-0C1D2E3F4A5B", b"\xc2\xa0nbsp", b"x" * 128, b"x" * 129,
    b"x" * 126 + b"\xc3\xa9", b"x" * 127 + b"\xc3\xa9",
    b"a+b", b"+", b"a#", b"#", b"#a", b"a #b", b" lead", b"trail ", b" ", b"tab\there", b"del\x7f",
    b"esc\x1b[0m", b"cr\rx",
    b"\xc2\x85", b"\xc2\x9f", b"\xc3\x28", b"\xc0\xaf", b"\xe0\x80\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80",
    b"\xff", b"trail\xe2\x82", b"\xf4\x8f\xbf\xbf",
]


def names_file():
    out = ["# Names (docs/PROTOCOL.md section 3) and the verdicts of tools/gen_vectors.py, the independent",
           "# implementation: the name in hex, then 1 (valid) or 0 as a " + ", ".join(NAME_KINDS)]
    out += [name.hex() + "".join(f" {int(name_ok(name, k))}" for k in NAME_KINDS) for name in NAMES]
    return "\n".join(out) + "\n"


def vector_file(v):
    out = ["# Veil v1 test vectors, generated by tools/gen_vectors.py (independent implementation)",
           "# inputs: see docs/PROTOCOL.md section 9"]
    out += [f"{name} {val.hex()}" for name, val in v.items()]
    return "\n".join(out) + "\n"


HEX_PER_LINE = 64


def fields(parts):
    """Field-by-field listing: hex (wrapped at 32 bytes) and what it is."""
    out = []
    for data, label in parts:
        h = data if isinstance(data, str) else data.hex()
        chunks = [h[k:k + HEX_PER_LINE] for k in range(0, len(h), HEX_PER_LINE)]
        out.append(f"{chunks[0]:<{HEX_PER_LINE}}  {label}".rstrip())
        out += chunks[1:]
    return out


def whole(name, data):
    h = data.hex()
    return [f"{name} ({len(data)} bytes)"] + ["  " + h[k:k + HEX_PER_LINE] for k in range(0, len(h), HEX_PER_LINE)]


def doc_block(v):
    """Section 9's vector block, every byte in hex (docs/PROTOCOL.md)."""
    i = INPUTS
    cred, tok = v["credential"], v["token"]
    L, R = len(i["client_id"]), len(i["roles"])
    out = ["```", "# inputs"]
    out += whole("device_seed", i["device_seed"]) + whole("authority_seed", i["authority_seed"])
    out += whole("topic_key", i["topic_key"])
    out += ["# identifiers (section 1)"]
    for name in ("device_pk", "authority_pk", "sender_id", "authority_id", "kcv"):
        out += whole(name, v[name])
    out += ["```", "", f"Credential ({len(cred)} bytes = 76 + {L} + {R} + 64), field by field:", "", "```"]
    out += fields([
        (cred[0:1], "version"), (cred[1:2], "flags"), (cred[2:18], "credential id"),
        (cred[18:26], "authority id"), (cred[26:34], f"issued_at {i['issued_at']}"),
        (cred[34:42], f"expires_at {i['expires_at']}"), (cred[42:74], "device public key"),
        (cred[74:75], f"client id length {L}"), (cred[75:75 + L], f"client id \"{i['client_id'].decode()}\""),
        (cred[75 + L:76 + L], f"roles length {R}"), (cred[76 + L:76 + L + R], f"roles \"{i['roles'].decode()}\""),
        (cred[76 + L + R:], "authority signature"),
    ])
    C = len(cred)
    out += ["```", "", f"Token ({len(tok)} bytes = 27 + {C} + 64) for client id `{i['client_id'].decode()}`, "
            "field by field:", "", "```"]
    out += fields([
        (tok[0:1], "version"), (tok[1:9], f"timestamp {i['token_timestamp']}"), (tok[9:25], "nonce"),
        (tok[25:27], f"credential length C = {C}"), (f"<{C} bytes>", "credential (above)"),
        (tok[27 + C:], "device signature"),
    ])
    tok2, aud = v["token_v2"], i["token_audience"]
    A = len(aud)
    out += ["```", "", f"Token version 2 ({len(tok2)} bytes = 28 + {A} + {C} + 64) for client id "
            f"`{i['client_id'].decode()}`, audience `{aud.decode()}`, the same timestamp and nonce, field by field:",
            "", "```"]
    out += fields([
        (tok2[0:1], "version"), (tok2[1:9], f"timestamp {i['token_timestamp']}"), (tok2[9:25], "nonce"),
        (tok2[25:26], f"audience length A = {A}"), (tok2[26:26 + A], f"audience \"{aud.decode()}\""),
        (tok2[26 + A:28 + A], f"credential length C = {C}"), (f"<{C} bytes>", "credential (above)"),
        (tok2[28 + A + C:], "device signature"),
    ])
    out += ["```"]
    for name, seq, pt, signed in (("envelope_unsigned", i["seq_unsigned"], i["plaintext"], False),
                                  ("envelope_signed", i["seq_signed"], i["plaintext"], True),
                                  ("envelope_empty", i["seq_empty"], b"", False)):
        e = v[name]
        n = len(pt)
        ct = e[48:48 + n]
        tag = e[48 + n:64 + n]
        desc = f"{len(e)} bytes = {n} + 64" + (f" + {C} + 2 + 64" if signed else "")
        what = "signed with the credential above" if signed else "unsigned"
        out += ["", f"`{name}` ({desc}): {what}, plaintext "
                f"{'`' + pt.decode() + '`' if pt else 'empty'}, sequence {seq}:", "", "```"]
        parts = [
            (e[0:1], "version"), (e[1:2], "flags" + (" (signed)" if signed else "")),
            (e[2:6], f"key id {i['key_id']}"), (e[6:8], "key check value"), (e[8:16], "sender id"),
            (e[16:24], f"sequence {seq}"), (e[24:48], "nonce"),
        ]
        parts += [(ct, f"ciphertext ({n} bytes)") if n else ("<0 bytes>", "ciphertext (none: empty plaintext)")]
        parts += [(tag, "tag")]
        if signed:
            parts += [(f"<{C} bytes>", "credential (above)"), (e[64 + n + C:66 + n + C], f"C = {C}"),
                      (e[66 + n + C:], "device signature")]
        out += fields(parts) + ["```"]
    out += ["", "The same vectors, each as one string:", "", "```"]
    for name in ("credential", "token", "token_v2", "envelope_unsigned", "envelope_signed", "envelope_empty"):
        out += whole(name, v[name])
    out += ["```"]
    out += key_service_block(v)
    out += relay_block()
    return "\n".join(out) + "\n"


def devmsg_fields(m, kind, ts, version, C):
    return fields([
        (m[0:1], "version"), (m[1:2], f"kind {kind}"), (m[2:10], f"timestamp {ts}"), (m[10:26], "nonce"),
        (m[26:58], "receive key (X25519 public)"), (m[58:66], f"bundle version {version}"),
        (m[66:68], f"credential length C = {C}"), (f"<{C} bytes>", "the device's `credential` (above)"),
        (m[68 + C:], "device signature"),
    ])


def key_service_block(v):
    """The vectors of sections 10-13, in section 9's vector block."""
    i = INPUTS
    kc, C, KC = v["keyd_credential"], len(v["credential"]), len(v["keyd_credential"])
    L, KL, KR = len(i["client_id"]), len(i["keyd_client_id"]), len(i["keyd_roles"])
    out = ["", "Key service (sections 10 to 13):", "", "```", "# inputs"]
    for name in ("keyd_seed", "receive_seed", "next_receive_seed", "ephemeral_seed"):
        out += whole(name, v[name])
    out += ["# derived"]
    for name in ("keyd_pk", "receive_pk", "next_receive_pk", "ephemeral_pk", "bundle_key"):
        out += whole(name, v[name])
    out += ["```", "", f"`keyd_credential` ({KC} bytes = 76 + {KL} + {KR} + 64), keyd's credential, field by field:", "", "```"]
    out += fields([
        (kc[0:1], "version"), (kc[1:2], "flags"), (kc[2:18], "credential id"), (kc[18:26], "authority id"),
        (kc[26:34], f"issued_at {i['issued_at']}"), (kc[34:42], f"expires_at {i['expires_at']}"),
        (kc[42:74], "keyd public key"), (kc[74:75], f"client id length {KL}"),
        (kc[75:75 + KL], f"client id \"{i['keyd_client_id'].decode()}\""),
        (kc[75 + KL:76 + KL], f"roles length {KR}"),
        (kc[76 + KL:76 + KL + KR], f"roles \"{i['keyd_roles'].decode()}\""),
        (kc[76 + KL + KR:], "authority signature"),
    ])
    rq, ack = v["devmsg_request"], v["devmsg_ack"]
    out += ["```", "", f"`devmsg_request` ({len(rq)} bytes = 68 + {C} + 64): a request from `sensor-1`, "
            "carrying the device's `credential`, holding no bundle yet:", "", "```"]
    out += devmsg_fields(rq, "1 (request)", i["request_timestamp"], i["request_version"], C)
    out += ["```", "", f"`devmsg_ack` ({len(ack)} bytes): the acknowledgement of the bundle below, "
            "introducing the next receive key:", "", "```"]
    out += devmsg_fields(ack, "2 (acknowledgement)", i["ack_timestamp"], i["bundle_version"], C)
    pt = v["bundle_plaintext"]
    out += ["```", "", f"`bundle_plaintext` ({len(pt)} bytes), two grants, the second superseding:", "", "```"]
    parts = [(pt[0:2], f"grant count {len(i['grants'])}")]
    pos = 2
    for n, (scope, key_id, epoch, sf, su, au, grace, flags, _key) in enumerate(i["grants"], 1):
        S = len(scope)
        g = pt[pos:pos + S + 70]
        names = {1: "signed", 2: "may send", 4: "supersedes"}
        fl = " + ".join(names[b] for b in (1, 2, 4) if flags & b)
        parts += [(g[0:1], f"grant {n}: scope length {S}"), (g[1:1 + S], f"scope \"{scope.decode()}\""),
                  (g[1 + S:5 + S], f"key id 0x{key_id:08x}"), (g[5 + S:9 + S], f"epoch {epoch}"),
                  (g[9 + S:17 + S], f"send_from {sf}"), (g[17 + S:25 + S], f"send_until {su}"),
                  (g[25 + S:33 + S], f"accept_until {au}"), (g[33 + S:37 + S], f"grace {grace} s"),
                  (g[37 + S:38 + S], f"flags ({fl})"), (g[38 + S:70 + S], "key")]
        pos += S + 70
    out += fields(parts)
    b = v["bundle"]
    n = len(pt) + 16
    f = 143 + L
    out += ["```", "", f"`bundle` ({len(b)} bytes = 143 + {L} + {n} + 2 + {KC} + 64) for `sensor-1`, sealed to "
            "the request's receive key:", "", "```"]
    out += fields([
        (b[0:1], "version"), (b[1:2], "kind 3"), (b[2:10], f"bundle version {i['bundle_version']}"),
        (b[10:26], "echoed nonce (the request's)"), (b[26:58], "receive key (the request's)"),
        (b[58:74], "recipient credential id"), (b[74:82], "recipient sender id"),
        (b[82:83], f"client id length {L}"), (b[83:83 + L], f"client id \"{i['client_id'].decode()}\""),
        (b[83 + L:115 + L], "ephemeral X25519 public key"), (b[115 + L:139 + L], "XChaCha20-Poly1305 nonce"),
        (b[139 + L:143 + L], f"ciphertext length n = {n}"), (b[f:f + n - 16], f"ciphertext ({n - 16} bytes)"),
        (b[f + n - 16:f + n], "tag"), (b[f + n:f + n + 2], f"keyd credential length C = {KC}"),
        (f"<{KC} bytes>", "`keyd_credential` (above)"), (b[f + n + 2 + KC:], "keyd signature"),
    ])
    r = v["revocation"]
    N = len(i["revoked"])
    out += ["```", "", f"`revocation` ({len(r)} bytes = 22 + 25 x {N} + 2 + {KC} + 64), one credential id and "
            "one sender id:", "", "```"]
    parts = [(r[0:1], "version"), (r[1:2], "kind 4"), (r[2:10], f"statement version {i['revocation_version']}"),
             (r[10:18], f"issued_at {i['revocation_issued_at']}"), (r[18:22], f"entry count {N}")]
    for k, (kind, _ident, keep) in enumerate(i["revoked"]):
        e = r[22 + 25 * k:47 + 25 * k]
        what = "credential id" if kind == 1 else "sender id, then 8 zero bytes"
        parts += [(e[0:1], f"entry {k + 1}: kind {kind}"), (e[1:17], what), (e[17:25], f"keep_until {keep}")]
    t = 22 + 25 * N
    parts += [(r[t:t + 2], f"keyd credential length C = {KC}"), (f"<{KC} bytes>", "`keyd_credential` (above)"),
              (r[t + 2 + KC:], "keyd signature")]
    out += fields(parts)
    out += ["```", "", "The same, each as one string:", "", "```"]
    for name in ("keyd_credential", "devmsg_request", "devmsg_ack", "bundle_plaintext", "bundle", "revocation"):
        out += whole(name, v[name])
    out += ["```"]
    return out


RELAY_PREFIX = b"$veil/v1/revoked/"


def relay_record(cred_id=None, client_id=None):
    """Section 14: a relay record's topic and payload for one revocation entry."""
    if cred_id is not None:
        return RELAY_PREFIX + b"credential/" + cred_id.hex().encode(), b"credential " + cred_id.hex().encode()
    assert name_ok(client_id, "client_id"), client_id
    return RELAY_PREFIX + b"client/" + client_id.hex().encode(), b"client " + client_id


def relay_block():
    """The vectors of section 14, in section 9's vector block."""
    i = INPUTS
    out = ["", "Relay records (section 14), for the credential id of `credential` and for the client id "
           f"`{i['client_id'].decode()}`:", "", "```"]
    P = len(RELAY_PREFIX)
    for what, (topic, payload) in (("credential", relay_record(cred_id=i["credential_id"])),
                                   ("client", relay_record(client_id=i["client_id"]))):
        K = len(what) + 1
        ident = "credential id, 32 lower-case hex digits" if what == "credential" else \
            f"client id \"{i['client_id'].decode()}\" as lower-case hex"
        out += [f"# relay_{what}: topic ({len(topic)} bytes)"]
        out += fields([(topic[:P], f"\"{RELAY_PREFIX.decode()}\""), (topic[P:P + K], f"\"{what}/\""),
                       (topic[P + K:], ident)])
        out += [f"# relay_{what}: payload ({len(payload)} bytes)"]
        out += fields([(payload[:K], f"\"{what} \""),
                       (payload[K:], "credential id, 32 lower-case hex digits" if what == "credential"
                        else f"client id \"{i['client_id'].decode()}\" as it is")])
    out += ["```", "", "The same, each as one string:", "", "```"]
    for what, (topic, payload) in (("credential", relay_record(cred_id=i["credential_id"])),
                                   ("client", relay_record(client_id=i["client_id"]))):
        out += whole(f"relay_{what}_topic", topic) + whole(f"relay_{what}_payload", payload)
    out += ["```"]
    return out


BEGIN = "<!-- vectors: begin (generated by tools/gen_vectors.py --doc; checked by --check-doc) -->\n"
END = "<!-- vectors: end -->\n"


def check(what, have, want):
    if have == want:
        return True
    sys.stderr.write(f"{what} differs from what tools/gen_vectors.py computes:\n")
    sys.stderr.writelines(difflib.unified_diff(have.splitlines(True), want.splitlines(True), what, "computed"))
    return False


def main(argv):
    v = compute()
    if argv == ["--doc"]:
        sys.stdout.write(doc_block(v))
        return 0
    if argv == ["--names"]:
        sys.stdout.write(names_file())
        return 0
    if not argv:
        sys.stdout.write(vector_file(v))
        return 0
    ok = True
    args = list(argv)
    while args:
        opt = args.pop(0)
        if opt not in ("--check-doc", "--check-vectors", "--check-names") or not args:
            sys.stderr.write(__doc__)
            return 2
        path = args.pop(0)
        with open(path, encoding="utf-8") as f:
            text = f.read()
        if opt == "--check-vectors":
            ok = check(path, text, vector_file(v)) and ok
            continue
        if opt == "--check-names":
            ok = check(path, text, names_file()) and ok
            continue
        if text.count(BEGIN) != 1 or text.count(END) != 1 or text.index(BEGIN) > text.index(END):
            sys.stderr.write(f"{path}: no single vector block ({BEGIN.strip()} ... {END.strip()})\n")
            ok = False
            continue
        block = text[text.index(BEGIN) + len(BEGIN):text.index(END)]
        ok = check(path, block, doc_block(v)) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
