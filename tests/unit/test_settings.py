"""Settings.from_env (SPEC §10): typed, validated, and every error names its variable first.

Also the asyncpg options derived from the settings (``app.database.engine_config`` and
``pool_options``): no prepared-statement cache behind PgBouncer, pool sizes passed on.
"""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.fernet import Fernet

from app.database import engine_config, pool_options
from app.settings import KIB, MIB, Settings, SettingsError, is_fernet_key

DATABASE_URL = "postgresql://cellar:pw@db.internal:5432/cellar"
SECRET = "s" * 32
FERNET_KEY = Fernet.generate_key().decode()

# A complete, valid production environment; each error case spoils one thing in it.
VALID_ENV = {
    "DATABASE_URL": DATABASE_URL,
    "APP_SECRET_KEY": SECRET,
    "ENCRYPTION_KEY": FERNET_KEY,
}


def settings_error(environ: dict[str, str]) -> str:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(environ)
    return str(caught.value)


def named_variables(message: str) -> list[str]:
    """``"A and B: reason"`` -> ``["A", "B"]``: what the message names before its reason."""
    head, sep, reason = message.partition(":")
    assert sep, f"no 'VARIABLE: reason' shape in {message!r}"
    assert reason.strip(), f"no reason in {message!r}"
    return head.split(" and ")


# --------------------------------------------------------------------------- defaults


def test_defaults_from_an_empty_environment() -> None:
    settings = Settings.from_env({})

    assert settings.database_url is None
    assert settings.app_secret_key is None
    assert settings.encryption_key is None
    assert settings.cors_origins == ()
    assert settings.database_pooler == "none"
    assert settings.database_pool_min_size == 1
    assert settings.database_pool_max_size == 10
    assert settings.database_connect_timeout == 2.0
    assert settings.cellar_data_dir == ".cellar"
    assert settings.token_lifetime_seconds == 3600
    assert settings.auth_token_rate_limit_per_minute == 20
    assert settings.auth_jwks_url is None
    assert settings.auth_public_key is None
    assert settings.auth_issuer is None
    assert settings.auth_audience is None
    assert settings.max_cell_code_bytes == 256 * KIB
    assert settings.max_cells_per_notebook == 2000
    assert settings.max_name_length == 255
    assert settings.max_request_body_bytes == 32 * MIB
    assert settings.max_cell_outputs_bytes == 16 * MIB
    assert settings.health_timeout_seconds == 1.5
    assert settings.external_auth_enabled is False


def test_blank_values_count_as_unset() -> None:
    blank = {"DATABASE_POOL_MAX_SIZE": "", "CORS_ORIGINS": "   ", "DATABASE_POOLER": " "}
    assert Settings.from_env(blank) == Settings.from_env({})


def test_unrelated_variables_are_ignored() -> None:
    assert Settings.from_env({"PATH": "/usr/bin", "HOME": "/root"}) == Settings.from_env({})


def test_health_deadline_default_fits_the_two_second_contract() -> None:
    # /health must answer within 2 s with the database gone (SPEC §10 and its issue).
    assert Settings.from_env({}).health_timeout_seconds < 2.0


# --------------------------------------------------------------------------- conversion


def test_every_variable_is_converted_to_its_type() -> None:
    environ = {
        **VALID_ENV,
        "CORS_ORIGINS": "https://app.example.com, http://localhost:5173 ,,",
        "DATABASE_POOLER": "pgbouncer",
        "DATABASE_POOL_MIN_SIZE": "3",
        "DATABASE_POOL_MAX_SIZE": "25",
        "DATABASE_CONNECT_TIMEOUT": "4.5",
        "CELLAR_DATA_DIR": "/var/lib/cellar",
        "TOKEN_LIFETIME_SECONDS": "600",
        "AUTH_TOKEN_RATE_LIMIT_PER_MINUTE": "7",
        "AUTH_JWKS_URL": "https://idp.example.com/.well-known/jwks.json",
        "AUTH_PUBLIC_KEY": "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----",
        "AUTH_ISSUER": "https://idp.example.com/",
        "AUTH_AUDIENCE": "cellar",
        "MAX_CELL_CODE_BYTES": "1024",
        "MAX_CELLS_PER_NOTEBOOK": "50",
        "MAX_NAME_LENGTH": "100",
        "MAX_REQUEST_BODY_BYTES": "2048",
        "MAX_CELL_OUTPUTS_BYTES": "4096",
        "HEALTH_TIMEOUT_SECONDS": "0.75",
    }
    settings = Settings.from_env(environ)

    assert settings.database_url == DATABASE_URL
    assert settings.app_secret_key == SECRET
    assert settings.encryption_key == FERNET_KEY
    assert settings.cors_origins == ("https://app.example.com", "http://localhost:5173")
    assert settings.database_pooler == "pgbouncer"
    assert settings.database_pool_min_size == 3
    assert settings.database_pool_max_size == 25
    assert settings.database_connect_timeout == 4.5
    assert settings.cellar_data_dir == "/var/lib/cellar"
    assert settings.token_lifetime_seconds == 600
    assert settings.auth_token_rate_limit_per_minute == 7
    assert settings.auth_jwks_url == "https://idp.example.com/.well-known/jwks.json"
    assert settings.auth_public_key == environ["AUTH_PUBLIC_KEY"]
    assert settings.auth_issuer == "https://idp.example.com/"
    assert settings.auth_audience == "cellar"
    assert settings.max_cell_code_bytes == 1024
    assert settings.max_cells_per_notebook == 50
    assert settings.max_name_length == 100
    assert settings.max_request_body_bytes == 2048
    assert settings.max_cell_outputs_bytes == 4096
    assert settings.health_timeout_seconds == 0.75
    assert settings.external_auth_enabled is True

    ints = (
        settings.database_pool_min_size,
        settings.database_pool_max_size,
        settings.token_lifetime_seconds,
        settings.auth_token_rate_limit_per_minute,
        settings.max_cell_code_bytes,
        settings.max_cells_per_notebook,
        settings.max_name_length,
        settings.max_request_body_bytes,
        settings.max_cell_outputs_bytes,
    )
    assert all(type(value) is int for value in ints)
    assert type(settings.database_connect_timeout) is float
    assert type(settings.health_timeout_seconds) is float


def test_surrounding_whitespace_is_stripped() -> None:
    settings = Settings.from_env(
        {
            "DATABASE_URL": f"  {DATABASE_URL}\n",
            "APP_SECRET_KEY": f" {SECRET} ",
            "ENCRYPTION_KEY": f"{FERNET_KEY}\n",
            "DATABASE_POOL_MAX_SIZE": " 12 ",
            "DATABASE_POOLER": " none ",
        }
    )
    assert settings.database_url == DATABASE_URL
    assert settings.app_secret_key == SECRET
    assert settings.encryption_key == FERNET_KEY
    assert settings.database_pool_max_size == 12
    assert settings.database_pooler == "none"


@pytest.mark.parametrize("value", ["none", "pgbouncer"])
def test_database_pooler_accepts_its_two_values(value: str) -> None:
    assert Settings.from_env({"DATABASE_POOLER": value}).database_pooler == value


def test_no_proxy_is_trusted_by_default() -> None:
    assert Settings.from_env({}).forwarded_allow_ips == ()


def test_forwarded_allow_ips_takes_addresses_networks_and_star() -> None:
    settings = Settings.from_env({"FORWARDED_ALLOW_IPS": " 10.0.0.7, 172.16.0.0/12,::1 ,*"})
    assert settings.forwarded_allow_ips == ("10.0.0.7", "172.16.0.0/12", "::1", "*")


def test_single_cors_origin() -> None:
    settings = Settings.from_env({"CORS_ORIGINS": "https://only.example.com"})
    assert settings.cors_origins == ("https://only.example.com",)


@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
def test_both_postgres_url_schemes_are_accepted(scheme: str) -> None:
    url = f"{scheme}://u@localhost/db"
    assert Settings.from_env({**VALID_ENV, "DATABASE_URL": url}).database_url == url


def test_unix_socket_url_is_accepted() -> None:
    url = "postgresql://postgres:@/cellar?host=/tmp/pgdata"
    assert Settings.from_env({**VALID_ENV, "DATABASE_URL": url}).database_url == url


@pytest.mark.parametrize(("minimum", "maximum"), [("0", "1"), ("5", "5")])
def test_pool_bounds_at_their_limits_are_valid(minimum: str, maximum: str) -> None:
    settings = Settings.from_env(
        {"DATABASE_POOL_MIN_SIZE": minimum, "DATABASE_POOL_MAX_SIZE": maximum}
    )
    assert (settings.database_pool_min_size, settings.database_pool_max_size) == (
        int(minimum),
        int(maximum),
    )


def test_secrets_are_optional_without_database_url() -> None:
    # The embedded default generates them (app.database); Settings must not invent any.
    settings = Settings.from_env({"CELLAR_DATA_DIR": "/tmp/x"})
    assert settings.app_secret_key is None
    assert settings.encryption_key is None


def test_external_auth_with_issuer_and_audience_is_valid() -> None:
    settings = Settings.from_env(
        {"AUTH_JWKS_URL": "https://idp/jwks", "AUTH_ISSUER": "https://idp/", "AUTH_AUDIENCE": "a"}
    )
    assert settings.external_auth_enabled is True


# --------------------------------------------------------------------------- errors

ERROR_CASES: list[tuple[str, dict[str, Any], str]] = [
    ("pool max not an int", {"DATABASE_POOL_MAX_SIZE": "abc"}, "DATABASE_POOL_MAX_SIZE"),
    ("pool max zero", {"DATABASE_POOL_MAX_SIZE": "0"}, "DATABASE_POOL_MAX_SIZE"),
    ("pool min negative", {"DATABASE_POOL_MIN_SIZE": "-1"}, "DATABASE_POOL_MIN_SIZE"),
    (
        "pool min above max",
        {"DATABASE_POOL_MIN_SIZE": "8", "DATABASE_POOL_MAX_SIZE": "4"},
        "DATABASE_POOL_MIN_SIZE",
    ),
    ("unknown pooler", {"DATABASE_POOLER": "pgpool"}, "DATABASE_POOLER"),
    ("pooler wrong case", {"DATABASE_POOLER": "PgBouncer"}, "DATABASE_POOLER"),
    ("name length above 255", {"MAX_NAME_LENGTH": "300"}, "MAX_NAME_LENGTH"),
    ("name length zero", {"MAX_NAME_LENGTH": "0"}, "MAX_NAME_LENGTH"),
    ("connect timeout text", {"DATABASE_CONNECT_TIMEOUT": "fast"}, "DATABASE_CONNECT_TIMEOUT"),
    ("connect timeout zero", {"DATABASE_CONNECT_TIMEOUT": "0"}, "DATABASE_CONNECT_TIMEOUT"),
    ("health timeout negative", {"HEALTH_TIMEOUT_SECONDS": "-1"}, "HEALTH_TIMEOUT_SECONDS"),
    ("token lifetime zero", {"TOKEN_LIFETIME_SECONDS": "0"}, "TOKEN_LIFETIME_SECONDS"),
    (
        "rate limit fractional",
        {"AUTH_TOKEN_RATE_LIMIT_PER_MINUTE": "1.5"},
        "AUTH_TOKEN_RATE_LIMIT_PER_MINUTE",
    ),
    ("cells limit text", {"MAX_CELLS_PER_NOTEBOOK": "many"}, "MAX_CELLS_PER_NOTEBOOK"),
    ("code limit negative", {"MAX_CELL_CODE_BYTES": "-5"}, "MAX_CELL_CODE_BYTES"),
    ("body limit text", {"MAX_REQUEST_BODY_BYTES": "32MB"}, "MAX_REQUEST_BODY_BYTES"),
    ("outputs limit zero", {"MAX_CELL_OUTPUTS_BYTES": "0"}, "MAX_CELL_OUTPUTS_BYTES"),
    ("encryption key not fernet", {"ENCRYPTION_KEY": "not-fernet"}, "ENCRYPTION_KEY"),
    (
        "encryption key 16 bytes",
        {"ENCRYPTION_KEY": "MDEyMzQ1Njc4OWFiY2RlZg=="},
        "ENCRYPTION_KEY",
    ),
    ("encryption key non-ascii", {"ENCRYPTION_KEY": "ключ" * 11}, "ENCRYPTION_KEY"),
    ("secret too short", {"APP_SECRET_KEY": "s" * 31}, "APP_SECRET_KEY"),
    ("url without secret", {"APP_SECRET_KEY": None}, "APP_SECRET_KEY"),
    ("url without encryption key", {"ENCRYPTION_KEY": None}, "ENCRYPTION_KEY"),
    ("url blank secret", {"APP_SECRET_KEY": "  "}, "APP_SECRET_KEY"),
    ("mysql url", {"DATABASE_URL": "mysql://u@localhost/db"}, "DATABASE_URL"),
    ("url without scheme", {"DATABASE_URL": "localhost:5432/cellar"}, "DATABASE_URL"),
    ("sqlalchemy-style url", {"DATABASE_URL": "postgresql+asyncpg://u@h/db"}, "DATABASE_URL"),
    ("public key without issuer", {"AUTH_PUBLIC_KEY": "k", "AUTH_AUDIENCE": "a"}, "AUTH_ISSUER"),
    (
        "public key without audience",
        {"AUTH_PUBLIC_KEY": "k", "AUTH_ISSUER": "i"},
        "AUTH_AUDIENCE",
    ),
    ("jwks url without audience", {"AUTH_JWKS_URL": "https://idp/jwks"}, "AUTH_AUDIENCE"),
    ("proxy host name", {"FORWARDED_ALLOW_IPS": "proxy.internal"}, "FORWARDED_ALLOW_IPS"),
    ("proxy bad network", {"FORWARDED_ALLOW_IPS": "10.0.0.0/33"}, "FORWARDED_ALLOW_IPS"),
]


@pytest.mark.parametrize(
    ("overrides", "variable"),
    [pytest.param(overrides, variable, id=case) for case, overrides, variable in ERROR_CASES],
)
def test_a_wrong_value_names_its_variable_first(overrides: dict[str, Any], variable: str) -> None:
    environ = {**VALID_ENV, **overrides}
    environ = {name: value for name, value in environ.items() if value is not None}

    message = settings_error(environ)

    assert "\n" not in message, "one line, fit for `cellar: error: ...`"
    named = named_variables(message)
    assert message.startswith(named[0])
    assert variable in named, f"{message!r} does not name {variable}"


@pytest.mark.parametrize(
    ("environ", "variable"),
    [
        ({"DATABASE_POOL_MAX_SIZE": "abc"}, "DATABASE_POOL_MAX_SIZE"),
        ({"DATABASE_POOLER": "pgpool"}, "DATABASE_POOLER"),
        ({"MAX_NAME_LENGTH": "300"}, "MAX_NAME_LENGTH"),
        ({"ENCRYPTION_KEY": "not-fernet"}, "ENCRYPTION_KEY"),
        ({"APP_SECRET_KEY": "short"}, "APP_SECRET_KEY"),
        ({"DATABASE_URL": DATABASE_URL, "ENCRYPTION_KEY": FERNET_KEY}, "APP_SECRET_KEY"),
        ({"DATABASE_URL": DATABASE_URL, "APP_SECRET_KEY": SECRET}, "ENCRYPTION_KEY"),
        ({**VALID_ENV, "DATABASE_URL": "sqlite:///cellar.db"}, "DATABASE_URL"),
        ({"DATABASE_POOL_MIN_SIZE": "11"}, "DATABASE_POOL_MIN_SIZE"),
    ],
)
def test_the_message_starts_with_the_exact_variable(environ: dict[str, str], variable: str) -> None:
    message = settings_error(environ)
    assert message.startswith(f"{variable}: "), message


def test_pool_min_above_the_default_max_mentions_the_max() -> None:
    message = settings_error({"DATABASE_POOL_MIN_SIZE": "11"})
    assert "DATABASE_POOL_MAX_SIZE" in message
    assert "10" in message


def test_the_reason_says_what_was_expected() -> None:
    assert "int" in settings_error({"DATABASE_POOL_MAX_SIZE": "abc"})
    assert "255" in settings_error({"MAX_NAME_LENGTH": "300"})
    assert "pgpool" in settings_error({"DATABASE_POOLER": "pgpool"})
    assert "Fernet" in settings_error({"ENCRYPTION_KEY": "not-fernet"})
    assert "32" in settings_error({"APP_SECRET_KEY": "short"})


def test_fernet_key_check() -> None:
    assert is_fernet_key(FERNET_KEY)
    assert not is_fernet_key("not-fernet")
    assert not is_fernet_key("")
    assert not is_fernet_key(FERNET_KEY[:-4])


# --------------------------------------------------------------------------- asyncpg options


def settings_with(**environ: str) -> Settings:
    return Settings.from_env({**VALID_ENV, **environ})


def test_engine_config_keeps_the_statement_cache_without_a_pooler() -> None:
    config = engine_config(settings_with())
    assert "statement_cache_size" not in config
    assert config["dsn"] == DATABASE_URL
    assert config["timeout"] == 2.0


def test_engine_config_disables_the_statement_cache_behind_pgbouncer() -> None:
    config = engine_config(settings_with(DATABASE_POOLER="pgbouncer"))
    assert config["statement_cache_size"] == 0
    assert config["dsn"] == DATABASE_URL


def test_engine_config_uses_the_connect_timeout() -> None:
    assert engine_config(settings_with(DATABASE_CONNECT_TIMEOUT="0.5"))["timeout"] == 0.5


def test_pool_options_carry_the_pool_sizes() -> None:
    options = pool_options(settings_with(DATABASE_POOL_MIN_SIZE="2", DATABASE_POOL_MAX_SIZE="7"))
    assert options["min_size"] == 2
    assert options["max_size"] == 7
    assert options["dsn"] == DATABASE_URL
    assert "statement_cache_size" not in options


def test_pool_options_keep_the_pgbouncer_rule() -> None:
    options = pool_options(settings_with(DATABASE_POOLER="pgbouncer"))
    assert options["statement_cache_size"] == 0
    assert (options["min_size"], options["max_size"]) == (1, 10)
