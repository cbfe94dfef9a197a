"""The replicas' pure parts: tokens, names, the lag from the primary's samples, settings."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.replicas import tokens
from app.replicas.replicaset import lag_seconds, replica_name
from app.settings import Settings, SettingsError

SECRETS = {
    "APP_SECRET_KEY": "x" * 40,
    "ENCRYPTION_KEY": "Vt1oVq5mLcg4tMMA0SDf2wFqQ2yqZQ2pW3rXkR9hJ7w=",
    "DATABASE_URL": "postgresql://u:p@primary/cellar",
}


@given(st.integers(min_value=0, max_value=2**64 - 1))
def test_a_token_reads_back_as_the_same_position(position: int) -> None:
    assert tokens.parse(tokens.format_lsn(position)) == position


def test_tokens_are_postgresql_text_lsns() -> None:
    assert tokens.format_lsn(0x16_B374D848) == "16/B374D848"
    assert tokens.parse("0/16B3748") == 0x16B3748
    assert tokens.parse(" 16/b374d848 ") == 0x16_B374D848
    assert tokens.parse("0/0") == 0


@pytest.mark.parametrize("text", ["", "12", "0/", "/1", "0/123456789", "g/1", "0/1/2", "1 / 2"])
def test_a_malformed_token_is_refused(text: str) -> None:
    with pytest.raises(tokens.MalformedToken):
        tokens.parse(text)


def test_a_replica_is_named_without_credentials() -> None:
    assert replica_name("postgresql://user:secret@db-2:6432/cellar") == "db-2:6432/cellar"
    assert replica_name("postgres://db-3/cellar") == "db-3:5432/cellar"
    assert (
        replica_name("postgresql:///cellar?host=/run/postgresql") == "/run/postgresql:5432/cellar"
    )


def test_the_lag_is_zero_once_the_latest_sample_is_replayed() -> None:
    samples = [(10.0, 100), (11.0, 200), (12.0, 300)]
    assert lag_seconds(samples, 300, now=12.5) == 0.0
    assert lag_seconds(samples, 350, now=12.5) == 0.0
    assert lag_seconds([], 0, now=1.0) == 0.0


def test_the_lag_grows_while_replay_stands_still() -> None:
    samples = [(10.0, 100), (11.0, 200), (12.0, 300)]
    assert lag_seconds(samples, 200, now=12.5) == pytest.approx(1.5)
    assert lag_seconds(samples, 200, now=20.0) == pytest.approx(9.0)
    # Replayed none of the samples: at least as old as the oldest.
    assert lag_seconds(samples, 50, now=20.0) == pytest.approx(10.0)


def test_a_replica_just_behind_a_busy_primary_lags_milliseconds_not_a_second() -> None:
    samples = [(10.0, 1_000_000), (11.0, 2_000_000)]
    assert lag_seconds(samples, 1_999_000, now=11.01) == pytest.approx(0.011)


def test_replica_settings() -> None:
    settings = Settings.from_env(
        {**SECRETS, "DATABASE_REPLICA_URLS": "postgresql://r1/cellar, postgresql://r2/cellar"}
    )
    assert settings.database_replica_urls == ("postgresql://r1/cellar", "postgresql://r2/cellar")
    assert settings.replica_max_lag_seconds == 5.0
    assert Settings.from_env({**SECRETS, "DATABASE_REPLICA_URLS": " "}).database_replica_urls == ()
    with pytest.raises(SettingsError, match=r"^DATABASE_REPLICA_URLS: "):
        Settings.from_env({**SECRETS, "DATABASE_REPLICA_URLS": "mysql://r1/cellar"})
    with pytest.raises(SettingsError, match=r"^REPLICA_MAX_LAG_SECONDS: "):
        Settings.from_env({**SECRETS, "REPLICA_MAX_LAG_SECONDS": "0"})
