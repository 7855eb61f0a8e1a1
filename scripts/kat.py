#!/usr/bin/env python3
"""Recomputes keyturn's known-answer values from the documented formats,
independently of the Rust code (needs the `cryptography` package).
The tests in src/keys.rs and src/token.rs pin the same values."""
import base64, hashlib, hmac
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

def fingerprint(key, tag):
    fp = hmac.new(key, b"keyturn fingerprint v1\0" + tag, hashlib.sha256).digest()[:8].hex().upper()
    return "-".join(fp[i:i + 4] for i in range(0, 16, 4))

key = bytes(range(32))
for tag in (b"enc", b"com"):
    checksum = hashlib.sha256(b"keyturn key text v1\0" + tag + key).digest()[:4]
    print("text", tag.decode(), "kt1:%s:" % tag.decode() + base64.b64encode(key + checksum).decode())
    print("fingerprint", tag.decode(), fingerprint(key, tag))
    default = hashlib.sha256(b"keyturn built-in default key v1\0" + tag).digest()
    print("default fingerprint", tag.decode(), fingerprint(default, tag))

key = bytes((31 + i) & 255 for i in range(32))
kid = hmac.new(key, b"keyturn fingerprint v1\0enc", hashlib.sha256).digest()[:8].hex()
cipher_key = hmac.new(key, b"keyturn token key v1\0", hashlib.sha256).digest()
header = "ktsec:1:%s:" % kid
nonce = bytes([7] * 12)
sealed = AESGCM(cipher_key).encrypt(nonce, b"P@ssw0rd!", header.encode())
print("token", header + base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("="))
