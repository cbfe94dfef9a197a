"""The realtime wire protocol (SPEC §11), pure: close codes, positions, messages.

One WebSocket (or one Server-Sent Events stream) follows one notebook.
Each event goes out as the JSON object ``GET /notebooks/{id}/history``
lists (``{seq, revision, at, actor, op, cell_id, data}``), in seq order,
each once.  A WebSocket heartbeat is ``{"type": "heartbeat", "seq": N}``
(N: the last seq sent, so a client can tell it is up to date); an SSE
heartbeat is a comment line, which ``EventSource`` ignores.

With read replicas configured (issue 18), each event message also carries
``"consistency": "<LSN>"``: a ``Cellar-Consistency`` token past that event's
commit, for the client to send with its next read so that a replica behind
the event cannot answer it.  Without replicas the messages are exactly the
history's events.

A refusal is the HTTP status of the same error for SSE, and 4000 + that
status as a WebSocket close code (401 → 4401, 404 → 4404, 410 → 4410,
400 → 4400): the domain errors of ``app.errors`` serve both.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

if TYPE_CHECKING:
    from collections.abc import Sequence

    from app.store.events import Event

MAX_SEQ = 2**63 - 1  # bigint
BEARER = "bearer"  # the subprotocol that carries the token, and the one the server answers

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001  # this instance is stopping: reconnect (with since) to another
CLOSE_TRY_AGAIN_LATER = 1013  # the database cannot be reached right now
CLOSE_UNAUTHORIZED = 4401
CLOSE_NOT_FOUND = 4404
CLOSE_BAD_REQUEST = 4400
CLOSE_GONE = 4410
CLOSE_TOO_SLOW = 4429  # more events queued than REALTIME_MAX_QUEUED: resume with since

_encoder = msgspec.json.Encoder()


class BadPosition(ValueError):
    """``since`` or ``Last-Event-ID`` is not a seq (an integer 0 … 2^63-1)."""


def parse_position(value: str | None) -> int | None:
    """``since`` / ``Last-Event-ID`` as a seq; None when absent (only new events)."""
    if value is None:
        return None
    text = value.strip()
    # ASCII digits only: int() would take "+1", "1_0" and other scripts' digits.
    if not text or not text.isascii() or not text.isdigit() or len(text) > 19:
        raise BadPosition("expected an integer from 0 to 9223372036854775807")
    seq = int(text)
    if seq > MAX_SEQ:
        raise BadPosition("expected an integer from 0 to 9223372036854775807")
    return seq


def close_code(status_code: int) -> int:
    """The WebSocket close code of an HTTP error status (401 → 4401)."""
    return 4000 + status_code


def bearer_subprotocol(subprotocols: Sequence[str]) -> str | None:
    """The token of ``Sec-WebSocket-Protocol: bearer, <token>``; None when not offered so."""
    if len(subprotocols) >= 2 and subprotocols[0].strip().lower() == BEARER:
        token = subprotocols[1].strip()
        return token or None
    return None


class TokenMessage(msgspec.Struct, forbid_unknown_fields=False):
    """The first text message of a WebSocket that sent no token in its handshake."""

    token: str


def token_message(text: str | bytes) -> str | None:
    """The token of ``{"token": "…"}``; None for anything else."""
    try:
        message = msgspec.json.decode(text, type=TokenMessage)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    return message.token.strip() or None


def event_message(event: Event, token: str | None = None) -> bytes:
    """One event as a WebSocket text message, with its consistency token if given."""
    return _with_token(_encoder.encode(event), token)


def _with_token(encoded: bytes, token: str | None) -> bytes:
    """The event's JSON object with ``"consistency"`` added as its last member."""
    if token is None:
        return encoded
    return b'%s,"consistency":"%s"}' % (encoded[:-1], token.encode("ascii"))


def heartbeat_message(seq: int) -> bytes:
    return b'{"type":"heartbeat","seq":%d}' % seq


def sse_event(event: Event, token: str | None = None) -> bytes:
    """One event as an SSE message: ``id`` is its seq (``Last-Event-ID`` on reconnect)."""
    return b"id: %d\ndata: %s\n\n" % (event.seq, _with_token(_encoder.encode(event), token))


SSE_HEARTBEAT = b": heartbeat\n\n"
# Tells EventSource to wait this long before reconnecting after the stream ends.
SSE_RETRY = b"retry: 1000\n\n"


def sse_close(code: int, reason: str) -> bytes:
    """The last message of a stream the server ends (4429, 4404…): ``event: close``."""
    return b"event: close\ndata: %s\n\n" % _encoder.encode({"code": code, "reason": reason})
