"""Observability's parts without a server: request ids, log rendering, secrets, directories."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, cast

import pytest

from app.observability.logs import (
    BATCH_LINES,
    BATCH_SECONDS,
    CURRENT_REQUEST,
    AccessLog,
    RequestContext,
    json_formatter,
    logging_config,
    plain_formatter,
    printed_lines_logged,
    resolve_format,
    scrub,
)
from app.observability.middleware import MAX_REQUEST_ID, RequestObserver, request_id_from
from app.observability.multiprocess import VARIABLE, metrics_directory
from app.settings import Settings, SettingsError

if TYPE_CHECKING:
    from collections.abc import Iterator

    from litestar.types import Message, Receive, Scope, Send

ROOT = Path(__file__).resolve().parents[2]


# -- request ids -------------------------------------------------------------------------


def headers(value: bytes) -> list[tuple[bytes, bytes]]:
    return [(b"host", b"x"), (b"x-request-id", value), (b"accept", b"*/*")]


@pytest.mark.parametrize(
    "value",
    [b"abc-123", b"4bf92f3577b34da6a3ce929d0e0e4736", b"job:42/step.7+retry=1@edge_~", b"x" * 128],
)
def test_a_safe_request_id_is_kept(value: bytes) -> None:
    assert request_id_from(headers(value)) == value.decode()


@pytest.mark.parametrize(
    "value",
    [
        b"x" * 10_240,  # 10 KB
        b"x" * (MAX_REQUEST_ID + 1),
        b"abc\x01def",  # a control character
        b"line\r\nInjected: yes",
        b"with space",
        b'quote"',
        "caf\u00e9".encode(),
        b"",
    ],
)
def test_an_unsafe_request_id_is_replaced(value: bytes) -> None:
    generated = request_id_from(headers(value))
    assert generated != value.decode(errors="replace")
    assert len(generated) == 32
    int(generated, 16)


def test_a_missing_request_id_is_generated_fresh_each_time() -> None:
    ids = {request_id_from([(b"host", b"x")]) for _ in range(100)}
    assert len(ids) == 100
    assert all(len(i) == 32 for i in ids)


# -- rendering -------------------------------------------------------------------------------


def render(formatter: logging.Formatter, record: logging.LogRecord) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    handler.emit(record)
    return stream.getvalue()


def record(
    message: str, level: int = logging.INFO, exc: BaseException | None = None, **extra: object
) -> logging.LogRecord:
    made = logging.LogRecord(
        "cellar.access",
        level,
        __file__,
        1,
        message,
        (),
        (type(exc), exc, exc.__traceback__) if exc is not None else None,
    )
    made.__dict__.update(extra)
    return made


def failing() -> BaseException:
    secret_local = "local-variable-secret-xyz"  # noqa: F841  (a traceback must not show locals)
    try:
        raise RuntimeError("boom")
    except RuntimeError as exc:
        return exc


def test_json_lines_have_the_fields_in_one_object() -> None:
    line = render(
        json_formatter(),
        record(
            "GET /notebooks/n1 200",
            request_id="r-1",
            method="GET",
            route="/notebooks/{notebook_id}",
            status=200,
            duration_ms=1.25,
            user_id="u-1",
            notebook_id="n1",
            color_message="\x1b[1mGET\x1b[0m",
        ),
    )
    assert line.endswith("\n") and line.count("\n") == 1
    event = json.loads(line)
    assert list(event)[:3] == ["time", "level", "message"]
    assert event["time"].endswith("Z")
    assert event["level"] == "info"
    assert event["message"] == "GET /notebooks/n1 200"
    assert event["logger"] == "cellar.access"
    for key, value in {
        "request_id": "r-1",
        "method": "GET",
        "route": "/notebooks/{notebook_id}",
        "status": 200,
        "duration_ms": 1.25,
        "user_id": "u-1",
        "notebook_id": "n1",
    }.items():
        assert event[key] == value
    assert "color_message" not in event


def test_an_error_is_one_json_line_with_its_traceback_and_no_locals() -> None:
    line = render(json_formatter(), record("GET /x 500", logging.ERROR, exc=failing()))
    assert line.count("\n") == 1
    event = json.loads(line)
    assert event["level"] == "error"
    assert "Traceback" in event["exception"]
    assert "RuntimeError: boom" in event["exception"]
    assert "local-variable-secret-xyz" not in line


def test_plain_text_has_the_fields_and_the_traceback_without_locals() -> None:
    text = render(
        plain_formatter(), record("GET /x 500", logging.ERROR, exc=failing(), request_id="r-9")
    )
    assert "GET /x 500" in text
    assert "request_id=r-9" in text
    assert "RuntimeError: boom" in text
    assert "local-variable-secret-xyz" not in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text.splitlines()[0])


def test_lines_written_during_a_request_carry_its_id() -> None:
    token = CURRENT_REQUEST.set(RequestContext("req-during"))
    try:
        line = render(json_formatter(), record("something happened"))
    finally:
        CURRENT_REQUEST.reset(token)
    assert json.loads(line)["request_id"] == "req-during"
    assert "request_id" not in json.loads(render(json_formatter(), record("outside")))


def test_the_access_line_renders_like_every_other_line(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="cellar.access")
    log = AccessLog("json")
    assert log.enabled(logging.INFO)
    fields: dict[str, object] = {"request_id": "r-2", "route": "/x/{y}", "status": 200}
    log.write(logging.INFO, "GET /x/1 200", fields, None)
    log.write(logging.ERROR, "GET /x/2 500", {"request_id": "r-3", "status": 500}, failing())
    first, second = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert list(first)[:3] == ["time", "level", "message"]
    assert first == {
        "time": first["time"],
        "level": "info",
        "message": "GET /x/1 200",
        "logger": "cellar.access",
        "request_id": "r-2",
        "route": "/x/{y}",
        "status": 200,
    }
    assert second["level"] == "error"
    assert "RuntimeError: boom" in second["exception"]
    assert "local-variable-secret-xyz" not in second["exception"]

    plain = AccessLog("plain")
    plain.write(logging.INFO, "GET /x/1 200", {"request_id": "r-4"}, None)
    text = capsys.readouterr().out
    assert "GET /x/1 200" in text and "request_id=r-4" in text
    caplog.set_level(logging.WARNING, logger="cellar.access")
    assert not log.enabled(logging.INFO)
    assert log.enabled(logging.ERROR)


class CountedWrites(io.StringIO):
    """stdout that counts its ``write`` calls (each is one system call on a real file)."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)

    def lines(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.getvalue().splitlines()]


@contextlib.contextmanager
def counted_stdout(caplog: pytest.LogCaptureFixture) -> Iterator[CountedWrites]:
    """Access lines on and stdout counted, inside a test (pytest's capture resets fixtures')."""
    caplog.set_level(logging.INFO, logger="cellar.access")
    stream = CountedWrites()
    with contextlib.redirect_stdout(stream):
        yield stream


async def test_access_lines_of_overlapping_requests_are_written_together(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = AccessLog("json")
    with counted_stdout(caplog) as stdout:
        for n in range(3):
            log.write(
                logging.INFO, f"GET /x/{n} 200", {"request_id": f"r-{n}"}, None, more_coming=True
            )
        assert stdout.getvalue() == ""  # held: other requests are in flight
        log.write(logging.ERROR, "GET /y 500", {"request_id": "r-err"}, failing())
        # The error line is written at once, after the lines held before it.
        assert [line["request_id"] for line in stdout.lines()] == ["r-0", "r-1", "r-2", "r-err"]
        assert stdout.writes == 2
        log.flush()
        assert stdout.writes == 2  # nothing held, nothing written


async def test_held_access_lines_wait_at_most_a_batch_or_a_moment(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = AccessLog("json")
    with counted_stdout(caplog) as stdout:
        for n in range(BATCH_LINES):
            log.write(logging.INFO, "GET /x 200", {"request_id": f"r-{n}"}, None, more_coming=True)
        assert len(stdout.lines()) == BATCH_LINES
        assert stdout.writes == 1
        log.write(logging.INFO, "GET /x 200", {"request_id": "late"}, None, more_coming=True)
        assert len(stdout.lines()) == BATCH_LINES
        await asyncio.sleep(BATCH_SECONDS * 3)
        assert stdout.lines()[-1]["request_id"] == "late"
        assert stdout.writes == 2


def test_without_an_event_loop_an_access_line_is_written_at_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with counted_stdout(caplog) as stdout:
        AccessLog("json").write(
            logging.INFO, "GET /x 200", {"request_id": "r-now"}, None, more_coming=True
        )
        assert [line["request_id"] for line in stdout.lines()] == ["r-now"]


async def test_the_observer_writes_held_lines_when_no_request_is_left(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A slow request holds a quick one's line back; its end writes both, in one call."""
    release = asyncio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"] == "/slow":
            await release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    observer = RequestObserver(app, metrics=None, log=AccessLog("json"), access_log=True)

    async def receive() -> Message:
        return {"type": "http.disconnect"}

    async def send(_: Message) -> None:
        return None

    def request(path: str) -> Scope:
        return cast("Scope", {"type": "http", "method": "GET", "path": path, "headers": []})

    with counted_stdout(caplog) as stdout:
        slow = asyncio.create_task(observer(request("/slow"), receive, send))
        await asyncio.sleep(0)
        await observer(request("/quick"), receive, send)
        assert stdout.getvalue() == ""
        release.set()
        await slow
        assert [line["path"] for line in stdout.lines()] == ["/quick", "/slow"]
        assert stdout.writes == 1


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl", "eyJhbGci"),
        ("token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl in text", "c2lnbmF0dXJl"),
        ("bearer abcdef0123456789", "abcdef0123456789"),
        ("BEARER ABCDEF0123456789", "ABCDEF0123456789"),
        ("connect to postgresql://cellar:hunter2@db:5432/cellar failed", "hunter2"),
        ("dsn postgres://db.internal/cellar?sslmode=require", "db.internal"),
        ("mysql://root:pw-777@10.0.0.1/x", "pw-777"),
        ("password=s3cret-value user=x", "s3cret-value"),
        ("login with password: opensesame!", "opensesame!"),
    ],
)
def test_scrub_removes_tokens_passwords_and_connection_strings(text: str, secret: str) -> None:
    cleaned = scrub(text)
    assert secret not in cleaned
    assert "***" in cleaned


@pytest.mark.parametrize(
    "text",
    [
        "Uvicorn running on http://127.0.0.1:8000 (Press CTRL+C to quit)",
        "GET /notebooks/3f2a/cells/c-1 409",
        "password authentication failed for user cellar",
    ],
)
def test_scrub_keeps_ordinary_text(text: str) -> None:
    assert scrub(text) == text


def test_messages_and_tracebacks_are_scrubbed_when_rendered() -> None:
    try:
        raise ConnectionError("postgresql://u:leaked-pw@db/x unreachable")
    except ConnectionError as exc:
        error = exc
    line = render(
        json_formatter(),
        record("retrying postgresql://u:leaked-pw@db/x", logging.ERROR, exc=error),
    )
    assert "leaked-pw" not in line
    assert json.loads(line)["message"] == "retrying postgresql://***"


# -- configuration -------------------------------------------------------------------------


class Stream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def test_format_defaults_to_plain_on_a_terminal_and_json_otherwise() -> None:
    assert resolve_format(None, Stream(tty=True)) == "plain"
    assert resolve_format(None, Stream(tty=False)) == "json"
    assert resolve_format("json", Stream(tty=True)) == "json"
    assert resolve_format("plain", Stream(tty=False)) == "plain"


def test_log_format_setting_is_validated() -> None:
    assert Settings.from_env({"LOG_FORMAT": "json"}).log_format == "json"
    assert Settings.from_env({}).log_format is None
    with pytest.raises(SettingsError, match=r"^LOG_FORMAT: "):
        Settings.from_env({"LOG_FORMAT": "xml"})
    with pytest.raises(SettingsError, match=r"^METRICS_ENABLED: "):
        Settings.from_env({"METRICS_ENABLED": "perhaps"})


def test_uvicorn_access_log_is_silenced_and_its_other_lines_reach_our_handler() -> None:
    config = logging_config("json", "warning")
    assert config["root"] == {"handlers": ["stdout"], "level": "WARNING"}
    loggers = config["loggers"]
    assert loggers["uvicorn.access"] == {"handlers": [], "propagate": False}
    assert loggers["uvicorn.error"]["propagate"] is True
    assert config["formatters"]["cellar"]["()"].endswith(".json_formatter")
    # uvicorn hands the configuration to every worker process: it must pickle.
    import pickle

    assert pickle.loads(pickle.dumps(config)) == config


def test_printed_lines_become_log_lines(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="piccolo.migrations")
    streams = sys.stdout, sys.stderr
    with printed_lines_logged("piccolo.migrations"):
        print("👍 1 migration already complete")
        print("Migration failed", file=sys.stderr)
        sys.stdout.write("no newline at the end")
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("INFO", "👍 1 migration already complete"),
        ("ERROR", "Migration failed"),
        ("INFO", "no newline at the end"),
    ]
    assert (sys.stdout, sys.stderr) == streams


# -- the multiprocess directory ----------------------------------------------------------------


def test_a_configured_metrics_directory_is_emptied_at_start(tmp_path: Path) -> None:
    directory = tmp_path / "metrics"
    directory.mkdir()
    (directory / "counter_123.db").write_bytes(b"old")
    (directory / "keep.txt").write_text("not ours")
    environ = {VARIABLE: str(directory)}
    with metrics_directory(2, environ) as used:
        assert used == directory
        assert not (directory / "counter_123.db").exists()
        assert (directory / "keep.txt").exists()
    assert environ == {VARIABLE: str(directory)}
    assert directory.exists()


def test_several_workers_get_a_private_directory_removed_at_the_end() -> None:
    environ: dict[str, str] = {}
    with metrics_directory(3, environ) as used:
        assert used is not None and used.is_dir()
        assert environ[VARIABLE] == str(used)
    assert VARIABLE not in environ
    assert not used.exists()


def test_one_worker_needs_no_directory() -> None:
    environ: dict[str, str] = {}
    with metrics_directory(1, environ) as used:
        assert used is None
        assert environ == {}


# -- tracing is loaded only when asked for ---------------------------------------------------

PROBE = textwrap.dedent(
    """
    import os, sys
    from app.main import create_app
    from app.settings import Settings
    app = create_app(Settings.from_env(os.environ))
    # Imported whatever we do, and inert: the OpenTelemetry API (by FastAPI, piccolo-admin's
    # dependency) and, when the otel extra is installed, Litestar's plugin module (Litestar
    # looks for it at every app build). What must stay out is everything that records.
    ours = ("opentelemetry.sdk", "opentelemetry.exporter", "opentelemetry.instrumentation.asyncpg",
            "app.observability.otel")
    loaded = sorted(m for m in sys.modules if m.startswith(ours))
    traced = any(type(p).__name__ == "OpenTelemetryPlugin" for p in app.plugins)
    print(len(loaded), int(traced), sep=",")
    """
)


def run_probe(**variables: str) -> tuple[int, bool]:
    env = {
        "PATH": "/usr/bin:/bin",
        "DATABASE_URL": "postgresql://probe@127.0.0.1:9/none",
        "APP_SECRET_KEY": "k" * 40,
        "ENCRYPTION_KEY": "x" * 43 + "=",
        **variables,
    }
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    modules, traced = done.stdout.strip().splitlines()[-1].split(",")
    return int(modules), traced == "1"


def test_without_an_otlp_endpoint_opentelemetry_is_never_imported() -> None:
    modules, traced = run_probe()
    assert modules == 0
    assert not traced


def test_with_an_otlp_endpoint_the_app_loads_the_tracing_plugin() -> None:
    pytest.importorskip("opentelemetry.sdk", reason="the otel extra is not installed")
    modules, traced = run_probe(OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9")
    assert modules > 0
    assert traced


def test_tracing_without_the_extra_is_a_one_line_error(tmp_path: Path) -> None:
    """OTEL_EXPORTER_OTLP_ENDPOINT where the extra is missing: a settings error, not a crash."""
    probe = textwrap.dedent(
        """
        import builtins, os, sys
        real_import = builtins.__import__
        def no_otel(name, *args, **kwargs):
            if name.startswith("opentelemetry.sdk"):
                raise ImportError(name)
            return real_import(name, *args, **kwargs)
        builtins.__import__ = no_otel
        from app.settings import Settings, SettingsError
        from app.observability.tracing import build_tracing
        try:
            build_tracing(Settings.from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x"}), "v")
        except SettingsError as exc:
            print(exc)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        env={"PATH": os.environ.get("PATH", "")},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        "OTEL_EXPORTER_OTLP_ENDPOINT: set, but the otel extra is not installed "
        "(pip install 'cellar[otel]')"
    )
