"""Opaque page cursors: a position in a walk, signed so a client can only hand it back.

A cursor is ``<payload>.<mac>``, both base64url without padding: the payload
is a small JSON array (the position: timestamps as integer microseconds,
ids as text), the MAC an HMAC-SHA256 (first 16 bytes) keyed with a key
derived from ``APP_SECRET_KEY`` over the payload *and* what the cursor is
for: its kind (``list``, ``search``), the user it was made for, and for a
search the question asked.  So a cursor edited by hand, one made for another
user, one from a search handed to the list (or to another search), or one
signed with another secret is a 400 naming ``cursor``, never another user's
rows or a 500.  Every instance of the service shares ``APP_SECRET_KEY``, so a
cursor made by one is read by any.  Cursors do not expire: a position stays
meaningful (see docs/paging.md), and nothing in it is secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import msgspec

from app.errors import InvalidInput

T = TypeVar("T")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MAC_BYTES = 16
# Cursors are short; anything much longer is not one of ours (and is not decoded).
MAX_CURSOR_LENGTH = 1024


def micros(moment: datetime) -> int:
    """A timestamp as integer microseconds since the epoch: exact, unlike a float."""
    return (moment - _EPOCH) // timedelta(microseconds=1)


def moment(value: int) -> datetime:
    """The inverse of ``micros``."""
    return _EPOCH + timedelta(microseconds=value)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Cursors:
    """Makes and reads cursors; one per process, keyed from ``APP_SECRET_KEY``."""

    def __init__(self, secret: str) -> None:
        # A key of its own: a cursor's MAC can never serve as anything else signed
        # with the secret (the JWTs).
        self._key = hmac.new(secret.encode(), b"cellar page cursors v1", hashlib.sha256).digest()

    def _mac(self, scope: str, payload: bytes) -> bytes:
        return hmac.new(self._key, scope.encode() + b"\x00" + payload, hashlib.sha256).digest()[
            :_MAC_BYTES
        ]

    def make(self, scope: str, position: Any) -> str:
        """A cursor for ``position`` (anything msgspec encodes), valid only for ``scope``."""
        payload = msgspec.json.encode(position)
        return f"{_b64(payload)}.{_b64(self._mac(scope, payload))}"

    def read(self, scope: str, cursor: str, kind: type[T]) -> T:
        """The position in ``cursor``; a 400 naming ``cursor`` unless this service made it
        for ``scope``."""
        try:
            if len(cursor) > MAX_CURSOR_LENGTH:
                raise ValueError
            payload_text, mac_text = cursor.split(".")
            payload, mac = _unb64(payload_text), _unb64(mac_text)
        except (ValueError, binascii.Error):
            raise InvalidInput("cursor", "not a cursor this service made") from None
        if not hmac.compare_digest(mac, self._mac(scope, payload)):
            raise InvalidInput(
                "cursor", "not valid here: edited, from another user or another query"
            )
        try:
            return msgspec.json.decode(payload, type=kind)
        except msgspec.ValidationError:  # signed by us, but by another version
            raise InvalidInput("cursor", "from another version of the service") from None
