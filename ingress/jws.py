"""PyJWT's base64url segment check, at the speed of a compiled pattern.

PyJWT refuses a segment holding any character outside the base64url alphabet
(GHSA-hxm8-2xgr-2p9m) by testing each character in a Python generator. Apple's library
decodes every token three times and a notification holds three tokens, the outer one
carrying the other two, so that loop was the larger part of the cost of a notification.
`install()` replaces it with the same rules, the alphabet checked by one regular
expression; tests hold it to PyJWT's own answers.

Since the outer payload holds the nested tokens whole and each token is decoded three
times, the segments decoded last are kept, a few of them: the same bytes decode to the
same bytes, so a segment asked for again costs a lookup instead of a check, a decode and a
re-encode. A refused segment is not kept.
"""

from __future__ import annotations

import binascii
import re

from jwt import api_jws
from jwt.exceptions import DecodeError
from jwt.utils import base64url_decode, base64url_encode

_ALPHABET = re.compile(rb"[A-Za-z0-9_-]*")
ORIGINAL = api_jws.PyJWS._decode_base64url_segment
# One notification's segments: three tokens of header, payload and signature.
RECENT = 16
_recent: dict[bytes, bytes] = {}


def decode_segment(segment: bytes, name: str) -> bytes:
    """PyJWS._decode_base64url_segment: trailing '=' padding accepted, nothing else."""
    decoded = _recent.get(segment)
    if decoded is None:
        decoded = _decode(segment, name)
        if len(_recent) >= RECENT:
            _recent.clear()
        _recent[segment] = decoded
    return decoded


def _decode(segment: bytes, name: str) -> bytes:
    stripped = segment.rstrip(b"=")
    padding = len(segment) - len(stripped)
    if padding > 2:
        raise DecodeError(f"Invalid {name} padding")
    if padding and len(segment) % 4 != 0:
        raise DecodeError(f"Invalid {name} padding")
    if len(stripped) % 4 == 1 or _ALPHABET.fullmatch(stripped) is None:
        raise DecodeError(f"Invalid {name} padding")
    try:
        decoded = base64url_decode(stripped)
    except (TypeError, binascii.Error) as err:
        raise DecodeError(f"Invalid {name} padding") from err
    if base64url_encode(decoded) != stripped:
        raise DecodeError(f"Invalid {name} padding")
    return decoded


def install() -> None:
    api_jws.PyJWS._decode_base64url_segment = staticmethod(decode_segment)  # type: ignore[method-assign]
