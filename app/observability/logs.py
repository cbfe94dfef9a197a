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

import logging
import logging.config
import re
import sys
from contextlib import contextmanager
from contextvars import ContextVar
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
    r"|(?P<key>\b(?:password|passwd|pwd|secret|token)\s*[=:]\s*)[^\s,;&]+",
    re.IGNORECASE,
)


def _mask(match: re.Match[str]) -> str:
    if match.group("url"):
        return match.group("url").split("://", 1)[0] + "://***"
    prefix = match.group("bearer") or match.group("key") or ""
    return f"{prefix}***"


def scrub(text: str) -> str:
    """``text`` without tokens, passwords or connection strings."""
    return _SECRET.sub(_mask, text)


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


def _shared() -> list[Processor]:
    """Applied to every record, structlog's or not (all of ours come through stdlib)."""
    return [
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="time"),
        structlog.stdlib.ExtraAdder(),
        drop_color_message,
        add_request_id,
    ]


def json_formatter() -> logging.Formatter:
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_shared(),
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            scrub_secrets,
            structlog.processors.EventRenamer("message"),
            structlog.processors.JSONRenderer(serializer=_json),
        ],
    )


def plain_formatter() -> logging.Formatter:
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_shared(),
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            scrub_secrets,
            structlog.dev.ConsoleRenderer(
                colors=sys.stdout.isatty(),
                exception_formatter=structlog.dev.plain_traceback,
                timestamp_key="time",
            ),
        ],
    )


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
    """A file-like object turning each printed line into an INFO record."""

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger
        self.pending = ""

    def write(self, text: str) -> int:
        self.pending += text
        *lines, self.pending = self.pending.split("\n")
        for line in lines:
            if line.strip():
                self.logger.info(line.strip())
        return len(text)

    def flush(self) -> None:
        if self.pending.strip():
            self.logger.info(self.pending.strip())
        self.pending = ""


@contextmanager
def printed_lines_logged(name: str) -> Iterator[None]:
    """Route what a library ``print``s (Piccolo's migration runner) into log lines.

    In JSON mode every line on stdout must be a JSON object.
    """
    writer = _LineLogger(logging.getLogger(name))
    previous = sys.stdout
    sys.stdout = writer
    try:
        yield
    finally:
        sys.stdout = previous
        writer.flush()
