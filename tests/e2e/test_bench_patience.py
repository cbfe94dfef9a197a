"""A slow system is measured over a longer window, a dead one still fails (bench/run.py).

A smoke run measures for 1 s; Jupyter Server's directory listing can take
longer than that for its first answer at 16 connections, and the run used to
fail with "no request answered".  These tests load a real HTTP server that
answers after 1.5 s, with real wrk, and one that never answers.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed (.ci/run does)"),
]

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

from load import Figures, Load, NoAnswer, run_wrk  # noqa: E402
from run import patient  # noqa: E402

DELAY = 1.5


def _serve(delay: float | None) -> Iterator[str]:
    """An HTTP server on loopback answering every request after ``delay`` s (None: never)."""
    loop = asyncio.new_event_loop()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                await asyncio.sleep(3600 if delay is None else delay)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = loop.run_until_complete(asyncio.start_server(handle, "127.0.0.1", port))
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def shut_down() -> None:
        server.close()
        handlers = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)

    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        asyncio.run_coroutine_threadsafe(shut_down(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


@pytest.fixture
def slow_server() -> Iterator[str]:
    yield from _serve(DELAY)


@pytest.fixture
def dead_server() -> Iterator[str]:
    yield from _serve(None)


def test_a_window_shorter_than_the_first_answer_is_no_answer(slow_server: str) -> None:
    with pytest.raises(NoAnswer):
        run_wrk(slow_server, Load("GET", ["/"]), connections=2, seconds=1, pin=[])


def test_patience_measures_a_slow_server_over_a_longer_window(slow_server: str) -> None:
    windows: list[float] = []

    def load(seconds: float) -> Figures:
        windows.append(seconds)
        return run_wrk(slow_server, Load("GET", ["/"]), connections=2, seconds=seconds, pin=[])

    figures = patient(load, 1.0, "slow")
    assert windows == [1.0, 5.0]
    assert figures.requests > 0
    assert figures.p50_ms >= DELAY * 1000 * 0.9


def test_patience_still_fails_for_a_server_that_never_answers(dead_server: str) -> None:
    def load(seconds: float) -> Figures:
        return run_wrk(dead_server, Load("GET", ["/"]), connections=2, seconds=seconds, pin=[])

    with pytest.raises(NoAnswer):
        patient(load, 1.0, "dead")
