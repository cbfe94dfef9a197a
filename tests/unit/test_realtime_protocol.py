"""The realtime wire protocol and its settings (SPEC §11), without a database."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
import pytest

from app.realtime import protocol
from app.realtime.listener import parse_payload
from app.settings import Settings, SettingsError
from app.store.events import Event


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, None), ("0", 0), ("17", 17), (" 5 ", 5), ("9223372036854775807", 2**63 - 1)],
)
def test_a_position_is_a_seq(value: str | None, expected: int | None) -> None:
    assert protocol.parse_position(value) == expected


@pytest.mark.parametrize(
    "value", ["", "-1", "+1", "1.5", "abc", "1_000", "١٢", "9223372036854775808", "9" * 30]
)
def test_anything_else_is_a_bad_position(value: str) -> None:
    with pytest.raises(protocol.BadPosition):
        protocol.parse_position(value)


def test_refusals_are_4000_plus_the_http_status() -> None:
    assert [protocol.close_code(s) for s in (400, 401, 404, 410)] == [4400, 4401, 4404, 4410]
    assert protocol.CLOSE_TOO_SLOW == 4429


def test_the_token_comes_as_the_second_subprotocol_after_bearer() -> None:
    assert protocol.bearer_subprotocol(["bearer", "abc.def.ghi"]) == "abc.def.ghi"
    assert protocol.bearer_subprotocol(["Bearer", " t "]) == "t"
    assert protocol.bearer_subprotocol(["bearer"]) is None
    assert protocol.bearer_subprotocol(["chat", "bearer"]) is None
    assert protocol.bearer_subprotocol([]) is None


def test_the_first_message_carries_the_token() -> None:
    assert protocol.token_message('{"token": "abc"}') == "abc"
    assert protocol.token_message(b'{"token": "abc", "extra": 1}') == "abc"
    for bad in ('{"token": ""}', '{"token": 5}', "[]", "not json", '{"tok": "a"}'):
        assert protocol.token_message(bad) is None


def test_a_notification_payload_is_seq_colon_notebook() -> None:
    assert parse_payload("12:abc") == ("abc", 12)
    assert parse_payload("3:demo-user_x:y") == ("demo-user_x:y", 3)
    for bad in ("", "12", ":abc", "x:abc", "12:", "-1:abc"):
        assert parse_payload(bad) is None


def test_messages_carry_the_event_as_history_shows_it() -> None:
    at = datetime(2026, 12, 2, 1, 0, tzinfo=UTC)
    event = Event(7, 3, at, "system", "rename", None, msgspec.Raw(b'{"name":"n"}'))
    message = msgspec.json.decode(protocol.event_message(event))
    assert message == {
        "seq": 7,
        "revision": 3,
        "at": "2026-12-02T01:00:00Z",
        "actor": "system",
        "op": "rename",
        "cell_id": None,
        "data": {"name": "n"},
    }
    frame = protocol.sse_event(event)
    assert frame.startswith(b"id: 7\ndata: {") and frame.endswith(b"}\n\n")
    assert frame.count(b"\n") == 3  # one data line: the JSON has no newline
    assert msgspec.json.decode(protocol.heartbeat_message(7)) == {"type": "heartbeat", "seq": 7}
    assert protocol.sse_close(4429, "slow") == (
        b'event: close\ndata: {"code":4429,"reason":"slow"}\n\n'
    )


def test_with_replicas_each_message_carries_a_consistency_token() -> None:
    at = datetime(2026, 12, 2, 1, 0, tzinfo=UTC)
    event = Event(7, 3, at, "system", "rename", None, msgspec.Raw(b'{"name":"n"}'))
    plain = msgspec.json.decode(protocol.event_message(event))
    message = msgspec.json.decode(protocol.event_message(event, "16/B374D848"))
    assert message == {**plain, "consistency": "16/B374D848"}
    frame = protocol.sse_event(event, "0/16B3748")
    assert frame.startswith(b"id: 7\ndata: {")
    data = frame.removeprefix(b"id: 7\ndata: ").removesuffix(b"\n\n")
    assert msgspec.json.decode(data) == {**plain, "consistency": "0/16B3748"}
    # Without replicas (no token) the messages are the history's events, byte for byte.
    assert protocol.event_message(event, None) == msgspec.json.encode(event)


def test_realtime_settings() -> None:
    base = {"DATABASE_URL": "postgresql://db/cellar", "APP_SECRET_KEY": "k" * 40}
    from cryptography.fernet import Fernet

    base["ENCRYPTION_KEY"] = Fernet.generate_key().decode()
    settings = Settings.from_env(base)
    assert settings.database_listen_url is None
    assert settings.realtime_heartbeat_seconds <= 25
    assert settings.realtime_max_queued == 1000
    direct = Settings.from_env({**base, "DATABASE_LISTEN_URL": "postgresql://direct/cellar"})
    assert direct.database_listen_url == "postgresql://direct/cellar"
    with pytest.raises(SettingsError, match=r"^DATABASE_LISTEN_URL"):
        Settings.from_env({**base, "DATABASE_LISTEN_URL": "mysql://x"})
    with pytest.raises(SettingsError, match=r"^REALTIME_HEARTBEAT_SECONDS"):
        Settings.from_env({**base, "REALTIME_HEARTBEAT_SECONDS": "30"})
    with pytest.raises(SettingsError, match=r"^REALTIME_MAX_QUEUED"):
        Settings.from_env({**base, "REALTIME_MAX_QUEUED": "5000"})
