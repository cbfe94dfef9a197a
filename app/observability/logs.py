"""Log lines: JSON objects or plain text, every one through the same stdlib handler (SPEC §14).

Our code, uvicorn, Litestar and libraries all log through stdlib
``logging``; structlog's ``ProcessorFormatter`` renders every record, ours and
theirs, the same way: one JSON object a line (``LOG_FORMAT=json``) or
readable key=value text (``plain``; the default on a terminal, JSON
otherwise).  Fields: ``time`` (UTC, ISO 8601), ``level``, ``message``,
``logger``, the ``extra=`` a call passed (the access line's ``request_id``,
``method``, ``route``, ``status``, ``duration_ms``, ``user_id``,
``notebook_id``...), ``request_id`` for any line written while a request is
being served, and ``exception`` (the traceback as text) for errors.

Secrets: nothing logs a body, a header, a settings object or an asyncpg
query record.  As a second line of defence, messages and tracebacks are
scrubbed of bearer tokens, JWTs, passwords in ``key=value`` form and URLs
with credentials or of PostgreSQL.  Tracebacks never show local variables
(structlog's rich and dict tracebacks would: they are not used).

The configuration is a ``logging.config.dictConfig`` dict naming formatter
factories by import path, so uvicorn can hand it to each worker process.
"""

from __future__ import annotations

import asyncio
import logging
import logging.config
import re
import sys
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from time import time
from typing import TYPE_CHECKING, Any, Literal, TextIO

import msgspec
import structlog

if TYPE_CHECKING:
    from collections.abc import Iterator

    from structlog.typing import EventDict, Processor, WrappedLogger

LogFormat = Literal["json", "plain"]


class RequestContext:
    """What log lines written during one request share; set by the request middleware."""

    __slots__ = ("exception", "request_id")

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        self.exception: BaseException | None = None


CURRENT_REQUEST: ContextVar[RequestContext | None] = ContextVar("cellar_request", default=None)


def add_request_id(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    context = CURRENT_REQUEST.get()
    if context is not None:
        event.setdefault("request_id", context.request_id)
    return event


def drop_color_message(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    """uvicorn passes its message again with terminal colours as ``extra``: one is enough."""
    event.pop("color_message", None)
    return event


_SECRET = re.compile(
    r"(?P<url>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s/@]*@\S*|\bpostgres(?:ql)?://\S+)"
    r"|(?P<bearer>\b[Bb]earer\s+)\S+"
    r"|\beyJ[\w-]{4,}\.[\w-]+\.[\w-]*"
    r"|(?P<key>\b(?:password|passwd|pwd|secret|token|ticket)\s*[=:]\s*)[^\s,;&]+",
    re.IGNORECASE,
)


def _mask(match: re.Match[str]) -> str:
    if match.group("url"):
        return match.group("url").split("://", 1)[0] + "://***"
    prefix = match.group("bearer") or match.group("key") or ""
    return f"{prefix}***"


def scrub(text: str) -> str:
    """``text`` without tokens, passwords or connection strings."""
    # Every pattern needs one of these; most lines (an access line's path) have none.
    if ":" in text or "=" in text or "ey" in text or "earer" in text or "EARER" in text:
        return _SECRET.sub(_mask, text)
    return text


def scrub_secrets(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    for key in ("event", "exception", "path"):
        value = event.get(key)
        if isinstance(value, str):
            event[key] = scrub(value)
    return event


_ENCODER = msgspec.json.Encoder(enc_hook=str)
_FIRST = ("time", "level", "message")


def _json(event: EventDict, **_: object) -> str:
    """One JSON object, its first keys time, level and message (msgspec: fast, and any value)."""
    ordered = {key: event.pop(key) for key in _FIRST if key in event}
    ordered.update(event)
    return _ENCODER.encode(ordered).decode()


_TIMESTAMP = structlog.processors.TimeStamper(fmt="iso", utc=True, key="time")


def _rendered(log_format: LogFormat) -> list[Processor]:
    """The tail every line goes through, ours and stdlib records alike."""
    tail: list[Processor] = [structlog.processors.format_exc_info, scrub_secrets]
    if log_format == "json":
        return [
            *tail,
            structlog.processors.EventRenamer("message"),
            structlog.processors.JSONRenderer(serializer=_json),
        ]
    return [
        *tail,
        structlog.dev.ConsoleRenderer(
            colors=sys.stdout.isatty(),
            exception_formatter=structlog.dev.plain_traceback,
            timestamp_key="time",
        ),
    ]


def _formatter(log_format: LogFormat) -> logging.Formatter:
    """stdlib records (uvicorn, Litestar, libraries, the CLI) rendered as our own lines."""
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            _TIMESTAMP,
            structlog.stdlib.ExtraAdder(),
            drop_color_message,
            add_request_id,
        ],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            *_rendered(log_format),
        ],
    )


def json_formatter() -> logging.Formatter:
    return _formatter("json")


def plain_formatter() -> logging.Formatter:
    return _formatter("plain")


ACCESS_LOGGER_NAME = "cellar.access"


class _Stdout:
    """structlog's final logger: each rendered line to the current ``sys.stdout``, flushed."""

    def msg(self, line: str) -> None:
        stream = sys.stdout
        stream.write(line + "\n")
        stream.flush()

    info = error = msg


def _access_logger_name(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    event["logger"] = ACCESS_LOGGER_NAME
    return event


# Access lines held back before one write: at most this many, for at most this long.
BATCH_LINES = 64
BATCH_SECONDS = 0.1


class AccessLog:
    """The access line, once per request, in the fields and shape of every other line.

    Its cost is paid on every request, so the common case, an INFO line in
    JSON, skips the processor pipeline: the same fields in the same order,
    scrubbed the same way, encoded by the same msgspec encoder as
    ``JSONRenderer`` uses for the other lines.  Measured with callgrind per
    line: a stdlib record through the ProcessorFormatter ≈ 150 K
    instructions, structlog's own pipeline ≈ 93 K, this ≈ 35 K (a request
    is ≈ 2 M).  Errors (with their traceback) and plain text go through
    structlog's pipeline.  stdlib logging still decides: a line is written
    when the ``cellar.access`` logger is enabled for its level
    (``--log-level``), to ``sys.stdout``, where the handler writes the rest.

    Those JSON lines are also formed and written in batches while requests
    overlap: a ``write`` to a file costs the kernel several microseconds a call
    on these machines, as much as forming the line, and forming 64 lines in a
    row (msgspec's ``encode_lines``) keeps that code hot instead of running it
    between two requests' work.  The request observer says whether
    other requests are in flight (``more_coming``): when none is, the line and
    any held before it are written at once, so an idle or lightly used service
    writes each line as its request ends.  Under load, lines wait for at most
    ``BATCH_LINES`` others or ``BATCH_SECONDS``, for any error line (written
    after them, in order), and for shutdown (``flush``).
    """

    def __init__(self, log_format: LogFormat) -> None:
        self.level_source = logging.getLogger(ACCESS_LOGGER_NAME)
        self.json = log_format == "json"
        self._held: list[tuple[float, str, dict[str, Any]]] = []  # (time, message, fields)
        self._timer: asyncio.TimerHandle | None = None
        self._logger = structlog.wrap_logger(
            _Stdout(),
            processors=[
                structlog.processors.add_log_level,
                _access_logger_name,
                _TIMESTAMP,
                *_rendered(log_format),
            ],
            wrapper_class=structlog.make_filtering_bound_logger(logging.NOTSET),
            cache_logger_on_first_use=True,
        )

    def enabled(self, level: int) -> bool:
        return self.level_source.isEnabledFor(level)

    def write(
        self,
        level: int,
        message: str,
        fields: dict[str, Any],
        exc: BaseException | None,
        *,
        more_coming: bool = False,
    ) -> None:
        """One line; with ``more_coming`` (other requests in flight) a JSON line may be held."""
        if exc is None and level == logging.INFO and self.json:
            self._held.append((time(), message, fields))
            if more_coming and len(self._held) < BATCH_LINES:
                self._flush_soon()
            else:
                self.flush()
            return
        self.flush()
        if exc is not None:
            fields["exc_info"] = exc
        self._logger.log(level, message, **fields)

    def _flush_soon(self) -> None:
        if self._timer is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # no event loop to flush later: now
                self.flush()
            else:
                self._timer = loop.call_later(BATCH_SECONDS, self.flush)

    def flush(self) -> None:
        """Write the lines held back, if any, in one call."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._held:
            held, self._held = self._held, []
            lines = _ENCODER.encode_lines([_access_line(*line) for line in held])
            stream = sys.stdout
            stream.write(lines.decode())
            stream.flush()


def _access_line(at: float, message: str, fields: dict[str, Any]) -> dict[str, Any]:
    """An INFO access line as structlog's JSON pipeline would render it, fields in order."""
    line = {
        "time": datetime.fromtimestamp(at, UTC),  # msgspec writes it as TimeStamper does
        "level": "info",
        "message": scrub(message),
        "logger": ACCESS_LOGGER_NAME,
        **fields,
    }
    if "path" in fields:
        line["path"] = scrub(fields["path"])
    return line


def resolve_format(configured: LogFormat | None, stream: TextIO) -> LogFormat:
    """``LOG_FORMAT``, else plain on a terminal and JSON otherwise (files, pipes, containers)."""
    if configured is not None:
        return configured
    return "plain" if stream.isatty() else "json"


def logging_config(log_format: LogFormat, level: str = "info") -> dict[str, Any]:
    """A dictConfig: one stdout handler on the root logger; uvicorn's loggers propagate to it.

    uvicorn's own access log is left without handlers: the request middleware
    writes Cellar's access line (with route, request id, user...) instead.
    """
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"cellar": {"()": f"{__name__}.{log_format}_formatter"}},
        "handlers": {
            "stdout": {
                "class": "logging.StreamHandler",
                "formatter": "cellar",
                "stream": "ext://sys.stdout",
            }
        },
        "loggers": {
            "uvicorn": {"handlers": [], "propagate": True},
            "uvicorn.error": {"handlers": [], "propagate": True},
            "uvicorn.access": {"handlers": [], "propagate": False},
            # The embedded server narrates every pg_ctl call at INFO; its warnings are enough.
            "pgserver": {"level": "WARNING"},
        },
        "root": {"handlers": ["stdout"], "level": level.upper()},
    }


def configure_logging(log_format: LogFormat, level: str = "info") -> dict[str, Any]:
    """Apply the configuration to this process now and return it (for uvicorn's workers)."""
    config = logging_config(log_format, level)
    logging.config.dictConfig(config)
    logging.captureWarnings(True)
    return config


class _LineLogger:
    """A file-like object turning each printed line into a log record."""

    def __init__(self, logger: logging.Logger, level: int) -> None:
        self.logger = logger
        self.level = level
        self.pending = ""

    def write(self, text: str) -> int:
        self.pending += text
        *lines, self.pending = self.pending.split("\n")
        for line in lines:
            if line.strip():
                self.logger.log(self.level, line.strip())
        return len(text)

    def flush(self) -> None:
        if self.pending.strip():
            self.logger.log(self.level, self.pending.strip())
        self.pending = ""


@contextmanager
def printed_lines_logged(name: str) -> Iterator[None]:
    """Route what a library prints (Piccolo's migration runner) into log lines.

    In JSON mode every line must be a JSON object: stdout becomes INFO lines,
    stderr ERROR lines, of logger ``name``.
    """
    logger = logging.getLogger(name)
    out, err = _LineLogger(logger, logging.INFO), _LineLogger(logger, logging.ERROR)
    previous = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    try:
        yield
    finally:
        sys.stdout, sys.stderr = previous
        out.flush()
        err.flush()
