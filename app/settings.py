"""Typed settings read from the environment once, at start-up.

Every knob is an environment variable (twelve-factor), converted by msgspec so
that a wrong value stops the process with one line naming the variable and
what was expected, instead of failing later inside a request.  There are no
random default secrets here: with ``DATABASE_URL`` set, ``APP_SECRET_KEY`` and
``ENCRYPTION_KEY`` are required; the embedded default generates them once and
keeps them in the data directory (see ``app.database``).
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from typing import TYPE_CHECKING, Annotated, Literal

import msgspec

if TYPE_CHECKING:
    from collections.abc import Mapping

KIB = 1024
MIB = 1024 * KIB


class SettingsError(Exception):
    """A setting is missing or malformed; the message names the variable."""


PositiveInt = Annotated[int, msgspec.Meta(ge=1)]


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """All configuration; field ``foo_bar`` is read from ``FOO_BAR``."""

    database_url: str | None = None
    # The one LISTEN connection of each process (realtime, SPEC §11) goes here; unset: the
    # DATABASE_URL.  Behind PgBouncer in transaction pooling LISTEN cannot work through the
    # pooler: point this straight at PostgreSQL (docs/realtime.md).
    database_listen_url: str | None = None
    app_secret_key: str | None = None
    encryption_key: str | None = None
    cors_origins: tuple[str, ...] = ()
    database_pooler: Literal["none", "pgbouncer"] = "none"
    database_pool_min_size: Annotated[int, msgspec.Meta(ge=0)] = 1
    database_pool_max_size: PositiveInt = 10
    database_connect_timeout: Annotated[float, msgspec.Meta(gt=0)] = 2.0
    # Hot standbys that may serve reads (app.replicas, docs/scaling.md); empty: the
    # primary serves everything, as before.  A replica further behind than the lag
    # limit is skipped until it catches up.
    database_replica_urls: tuple[str, ...] = ()
    replica_max_lag_seconds: Annotated[float, msgspec.Meta(gt=0)] = 5.0
    cellar_data_dir: str = ".cellar"
    token_lifetime_seconds: PositiveInt = 3600
    auth_token_rate_limit_per_minute: PositiveInt = 20
    auth_jwks_url: str | None = None
    auth_public_key: str | None = None
    auth_issuer: str | None = None
    auth_audience: str | None = None
    max_cell_code_bytes: PositiveInt = 256 * KIB
    max_cells_per_notebook: PositiveInt = 2000
    max_name_length: Annotated[int, msgspec.Meta(ge=1, le=255)] = 255
    max_request_body_bytes: PositiveInt = 32 * MIB
    max_cell_outputs_bytes: PositiveInt = 16 * MIB
    # Exports kept per process while their notebook is unchanged (app.ipynb.cache); 0: none.
    ipynb_export_cache_bytes: Annotated[int, msgspec.Meta(ge=0)] = 64 * MIB
    # Encoded GET /notebooks/{id} answers kept per process, each valid at its notebook's
    # seq only (app.notebooks.read_cache); 0: none, every read is a full read.
    read_cache_bytes: Annotated[int, msgspec.Meta(ge=0)] = 256 * MIB
    health_timeout_seconds: Annotated[float, msgspec.Meta(gt=0)] = 1.5
    # The event log's retention (SPEC §11, docs/history.md): `cellar prune-history` and the
    # service's daily run remove events older than this many days (0: any age), but never
    # a notebook's last HISTORY_KEEP_LAST.
    history_retention_days: Annotated[int, msgspec.Meta(ge=0, le=100_000)] = 90
    history_keep_last: Annotated[int, msgspec.Meta(ge=1, le=2**62)] = 1000
    # Days a notebook stays in the trash before the daily purge deletes it for good
    # (SPEC §13; `cellar purge-trash`); 0: the next purge takes everything in the trash.
    trash_retention_days: Annotated[int, msgspec.Meta(ge=0, le=100_000)] = 30
    # Checkpoints kept per notebook: at the limit the oldest unnamed one goes, and when
    # all are named a new one is refused (409).
    max_checkpoints_per_notebook: PositiveInt = 50
    # Whether this process runs the daily jobs (purge-trash, prune-history: app.system.daily);
    # false: run `cellar purge-trash` / `cellar prune-history` from a scheduler instead.
    daily_jobs: bool = True
    # The admin's session cookie: Secure (HTTPS only) when true; set it behind TLS.
    admin_secure_cookies: bool = False
    # Host names the admin's CSRF check accepts in Origin/Referer on HTTPS requests.
    admin_allowed_hosts: tuple[str, ...] = ("localhost", "127.0.0.1", "::1")
    # Proxies whose X-Forwarded-For/-Proto uvicorn believes (addresses, networks or "*");
    # none by default, so the client address rate limits count cannot be forged.
    forwarded_allow_ips: tuple[str, ...] = ()
    # Observability (SPEC §14, docs/operations.md): log lines as JSON or plain text (unset:
    # plain on a terminal, json otherwise), one access line per request, GET /metrics,
    # and OpenTelemetry spans to this OTLP/HTTP endpoint (needs the `otel` extra).
    log_format: Literal["json", "plain"] | None = None
    access_log: bool = True
    metrics_enabled: bool = True
    otel_exporter_otlp_endpoint: str | None = None
    # Realtime (SPEC §11, docs/realtime.md): a heartbeat at least every 25 s, the events a
    # slow client may have queued before it is closed with 4429, how long a WebSocket may
    # take to send its token as the first message.
    realtime_heartbeat_seconds: Annotated[float, msgspec.Meta(gt=0, le=25)] = 20.0
    realtime_max_queued: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 1000
    realtime_auth_timeout_seconds: Annotated[float, msgspec.Meta(gt=0)] = 10.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        """Build settings from an environment mapping, or raise ``SettingsError``."""
        raw: dict[str, object] = {}
        for name in cls.__struct_fields__:
            value = environ.get(name.upper())
            if value is None or value.strip() == "":
                continue
            if name in (
                "cors_origins",
                "admin_allowed_hosts",
                "forwarded_allow_ips",
                "database_replica_urls",
            ):
                raw[name] = [item.strip() for item in value.split(",") if item.strip()]
            else:
                raw[name] = value.strip()
        try:
            settings = msgspec.convert(raw, type=cls, strict=False)
        except msgspec.ValidationError as exc:
            raise SettingsError(_describe(exc)) from None
        settings.check()
        return settings

    def check(self) -> None:
        """Cross-field rules msgspec constraints cannot express."""
        if self.database_pool_min_size > self.database_pool_max_size:
            raise SettingsError(
                "DATABASE_POOL_MIN_SIZE: must not exceed DATABASE_POOL_MAX_SIZE "
                f"({self.database_pool_max_size})"
            )
        if self.database_url is not None:
            if not re.match(r"^postgres(ql)?://", self.database_url):
                raise SettingsError("DATABASE_URL: expected a postgresql:// URL")
            if self.app_secret_key is None:
                raise SettingsError("APP_SECRET_KEY: required when DATABASE_URL is set")
            if self.encryption_key is None:
                raise SettingsError("ENCRYPTION_KEY: required when DATABASE_URL is set")
        listen_url = self.database_listen_url
        if listen_url is not None and not re.match(r"^postgres(ql)?://", listen_url):
            raise SettingsError("DATABASE_LISTEN_URL: expected a postgresql:// URL")
        for url in self.database_replica_urls:
            if not re.match(r"^postgres(ql)?://", url):
                raise SettingsError(
                    "DATABASE_REPLICA_URLS: expected postgresql:// URLs, comma-separated"
                )
        if self.app_secret_key is not None and len(self.app_secret_key) < 32:
            raise SettingsError("APP_SECRET_KEY: expected at least 32 characters")
        if self.encryption_key is not None and not is_fernet_key(self.encryption_key):
            raise SettingsError(
                "ENCRYPTION_KEY: expected a Fernet key (32 url-safe base64-encoded bytes)"
            )
        for proxy in self.forwarded_allow_ips:
            if proxy != "*" and not is_address_or_network(proxy):
                raise SettingsError(
                    f"FORWARDED_ALLOW_IPS: {proxy!r} is not an IP address, a network or *"
                )
        external_keys = self.auth_jwks_url is not None or self.auth_public_key is not None
        if external_keys and (self.auth_issuer is None or self.auth_audience is None):
            raise SettingsError(
                "AUTH_ISSUER and AUTH_AUDIENCE: required when AUTH_JWKS_URL or "
                "AUTH_PUBLIC_KEY is set"
            )

    @property
    def external_auth_enabled(self) -> bool:
        return self.auth_jwks_url is not None or self.auth_public_key is not None


def is_address_or_network(value: str) -> bool:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        return False
    return True


def is_fernet_key(value: str) -> bool:
    try:
        return len(base64.urlsafe_b64decode(value.encode("ascii"))) == 32
    except (binascii.Error, ValueError, UnicodeEncodeError):
        return False


def _describe(exc: msgspec.ValidationError) -> str:
    """Turn msgspec's ``... - at `$.field` `` into ``FIELD: ...``."""
    message = str(exc)
    match = re.search(r"at `\$\.(\w+)", message)
    if match is None:
        return message
    variable = match.group(1).upper()
    reason = message[: match.start()].rstrip(" -")
    return f"{variable}: {reason}"
