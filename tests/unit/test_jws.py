"""The compiled base64url segment check answers exactly as PyJWT's own."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st
from jwt import api_jws
from jwt.exceptions import DecodeError

from ingress.apple import AppleVerifier
from ingress.jws import ORIGINAL, decode_segment

ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def outcome(check: object, segment: bytes) -> bytes | str:
    try:
        return check(segment, "payload")  # type: ignore[operator,no-any-return]
    except DecodeError as error:
        return f"refused: {error}"


@pytest.mark.parametrize(
    "segment",
    [
        b"",
        b"eyJhbGciOiJFUzI1NiJ9",
        b"eyJhbGciOiJFUzI1NiJ9==",
        b"YQ",
        b"YQ==",
        b"YQ=",
        b"YQ===",
        b"YR",  # not canonical: the last character carries bits the encoding never sets
        b"!!!!",
        b"YWJj\n",
        b"YW Jj",
        b"YWJj+/",
        b"A",
        b"AAAAA",
        b"====",
        "é".encode(),
    ],
)
def test_known_segments(segment: bytes) -> None:
    assert outcome(decode_segment, segment) == outcome(ORIGINAL, segment)


@given(
    st.binary(max_size=40).map(base64.urlsafe_b64encode)
    | st.lists(st.sampled_from(list(ALPHABET + b"=+/!. \n\x00\xff"))).map(bytes)
)
def test_any_segment(segment: bytes) -> None:
    assert outcome(decode_segment, segment) == outcome(ORIGINAL, segment)


def test_the_app_store_verifier_installs_it() -> None:
    AppleVerifier([b"not used here"], "Production", "com.example", 1)
    assert api_jws.PyJWS._decode_base64url_segment is decode_segment


def test_a_segment_asked_again_answers_the_same() -> None:
    accepted, refused = base64.urlsafe_b64encode(b"payload" * 50).rstrip(b"="), b"YR"
    for _ in range(3):
        assert outcome(decode_segment, accepted) == b"payload" * 50
        assert outcome(decode_segment, refused) == outcome(ORIGINAL, refused)
    for n in range(40):  # more segments than are kept
        segment = base64.urlsafe_b64encode(b"%d" % n)
        assert outcome(decode_segment, segment) == outcome(ORIGINAL, segment)
