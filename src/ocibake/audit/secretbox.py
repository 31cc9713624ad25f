"""NaCl's secretbox (XSalsa20-Poly1305), which cosign's encrypted key files use: `cryptography` has Poly1305 but no
Salsa20, so the stream cipher is here, in plain Python (a key file holds ~150 bytes: speed does not matter)."""

from __future__ import annotations

import hmac
import struct

from cryptography.hazmat.primitives.poly1305 import Poly1305

SIGMA = (0x61707865, 0x3320646E, 0x79622D32, 0x6B206574)
M = 0xFFFFFFFF
# The quarter-rounds of a Salsa20 double round on the 4x4 state: down the columns, then along the rows.
COLUMNS = ((0, 4, 8, 12), (5, 9, 13, 1), (10, 14, 2, 6), (15, 3, 7, 11))
ROWS = ((0, 1, 2, 3), (5, 6, 7, 4), (10, 11, 8, 9), (15, 12, 13, 14))


def _rotl(v: int, c: int) -> int:
    v &= M
    return ((v << c) & M) | (v >> (32 - c))


def _rounds(x: list[int]) -> list[int]:
    x = list(x)

    def qr(a: int, b: int, c: int, d: int) -> None:
        x[b] ^= _rotl(x[a] + x[d], 7)
        x[c] ^= _rotl(x[b] + x[a], 9)
        x[d] ^= _rotl(x[c] + x[b], 13)
        x[a] ^= _rotl(x[d] + x[c], 18)

    for _ in range(10):
        for a, b, c, d in COLUMNS + ROWS:
            qr(a, b, c, d)
    return x


def _state(key: bytes, middle: bytes) -> list[int]:
    k = struct.unpack("<8I", key)
    n = struct.unpack("<4I", middle)
    return [SIGMA[0], *k[:4], SIGMA[1], *n, SIGMA[2], *k[4:], SIGMA[3]]


def hsalsa20(key: bytes, nonce16: bytes) -> bytes:
    x = _rounds(_state(key, nonce16))
    return struct.pack("<8I", *(x[i] for i in (0, 5, 10, 15, 6, 7, 8, 9)))


def xsalsa20_stream(key: bytes, nonce24: bytes, length: int) -> bytes:
    subkey = hsalsa20(key, nonce24[:16])
    out = bytearray()
    counter = 0
    while len(out) < length:
        state = _state(subkey, nonce24[16:24] + struct.pack("<Q", counter))
        x = _rounds(state)
        out += struct.pack("<16I", *((a + b) & M for a, b in zip(x, state, strict=True)))
        counter += 1
    return bytes(out[:length])


def seal(message: bytes, nonce: bytes, key: bytes) -> bytes:
    """secretbox.Seal: 16-byte Poly1305 tag, then the ciphertext."""
    stream = xsalsa20_stream(key, nonce, 32 + len(message))
    cipher = bytes(a ^ b for a, b in zip(message, stream[32:], strict=True))
    return Poly1305.generate_tag(stream[:32], cipher) + cipher


def open_box(box: bytes, nonce: bytes, key: bytes) -> bytes | None:
    """secretbox.Open: the message, or None when the tag does not match (wrong password, damaged file)."""
    if len(box) < 16:
        return None
    tag, cipher = box[:16], box[16:]
    stream = xsalsa20_stream(key, nonce, 32 + len(cipher))
    if not hmac.compare_digest(Poly1305.generate_tag(stream[:32], cipher), tag):
        return None
    return bytes(a ^ b for a, b in zip(cipher, stream[32:], strict=True))
