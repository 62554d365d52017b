"""WireGuard key math (Curve25519) for offline rendering; keys never leave memory from here."""

from __future__ import annotations

import base64
import os

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat


def generate_private_key() -> str:
    # X25519PrivateKey clamps the scalar exactly as `wg genkey` does.
    raw = X25519PrivateKey.generate().private_bytes_raw()
    return base64.b64encode(raw).decode("ascii")


def public_key(private_key: str) -> str:
    raw = base64.b64decode(private_key, validate=True)
    pub = X25519PrivateKey.from_private_bytes(raw).public_key()
    return base64.b64encode(pub.public_bytes(Encoding.Raw, PublicFormat.Raw)).decode("ascii")


def generate_preshared_key() -> str:
    return base64.b64encode(os.urandom(32)).decode("ascii")
