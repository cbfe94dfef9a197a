"""Load generation: wrk with a generated Lua script, or a small Python fallback.

One ``Load`` describes what a measurement sends: a method, one or more
paths (taken in turn), headers, and an optional body with a counter spliced
into it (``prefix .. n .. suffix``), so every update request changes the
code.  ``run_wrk`` writes the Lua script, runs ``wrk -t1 -cN -dS --latency``
(pinned with taskset when asked) and reads back the JSON line the script's
``done()`` prints: requests/s, p50, p90, p99, errors.

Without wrk, ``run_python`` sends the same requests with httpx from N
coroutines.  Its figures are not comparable with wrk's (Python is far slower
than the servers it measures); it exists so the smoke test runs anywhere.
"""

from __future__ import annotations

import asyncio
import json
import math
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_MARK = "WRKJSON "

_LUA = r"""
local paths = {%(paths)s}
local method = "%(method)s"
local headers = {%(headers)s}
-- Mixed traffic: every write_every-th request is a PUT of the body to write_paths.
local write_every = %(write_every)d
local write_paths = {%(write_paths)s}
local write_headers = {%(write_headers)s}
local prefix, suffix = nil, nil
local counter = 0

local function slurp(path)
  local f = assert(io.open(path, "rb"))
  local data = f:read("*a")
  f:close()
  return data
end

init = function(args)
  %(body_init)s
end

request = function()
  counter = counter + 1
  if write_every > 0 and counter %% write_every == 0 then
    local target = write_paths[((counter / write_every) %% #write_paths) + 1]
    return wrk.format("PUT", target, write_headers, prefix .. counter .. suffix)
  end
  local path = paths[(counter %% #paths) + 1]
  if write_every > 0 then
    return wrk.format(method, path, headers)
  end
  if prefix then
    return wrk.format(method, path, headers, prefix .. counter .. suffix)
  end
  return wrk.format(method, path, headers)
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '%(mark)s{"requests": %%d, "duration_us": %%d, "bytes": %%d, "p50_us": %%d, '
    .. '"p90_us": %%d, "p99_us": %%d, "max_us": %%d, "mean_us": %%.1f, '
    .. '"errors_connect": %%d, "errors_read": %%d, "errors_write": %%d, '
    .. '"errors_status": %%d, "errors_timeout": %%d}\n',
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    latency.mean, e.connect, e.read, e.write, e.status, e.timeout))
end
"""


@dataclass
class Load:
    method: str
    paths: list[str]
    headers: dict[str, str] = field(default_factory=dict)
    # The body is prefix + counter + suffix (a counter keeps every update a change).
    body: tuple[bytes, bytes] | None = None
    # Mixed traffic: every ``write_every``-th request is a PUT of ``body`` to the next of
    # ``write_paths`` (with ``write_headers``); the others are ``method`` on ``paths``.
    write_every: int = 0
    write_paths: list[str] = field(default_factory=list)
    write_headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Figures:
    """One measurement: throughput and latency (ms), as measured by ``tool``."""

    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    requests: int
    errors: int
    tool: str
    bytes_per_request: float = 0.0  # whole responses, headers included (wrk's count)
    # CPU time of the server process per answered request, µs (its PostgreSQL backends not
    # included): much steadier than req/s on a shared machine. Set by bench/run.py.
    server_cpu_us: float = 0.0
    # The same plus the CPU time of the PostgreSQL backends serving the server's connections.
    total_cpu_us: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


class LoadError(Exception):
    """A load run failed (wrk crashed, or no request was answered)."""


class NoAnswer(LoadError):
    """Not one request completed within the run: a dead server, or a window too short."""


def _lua_string(value: str) -> str:
    return json.dumps(value)  # a JSON string literal is a valid Lua string literal here


def _lua_table(headers: dict[str, str]) -> str:
    return ", ".join(f"[{_lua_string(k)}] = {_lua_string(v)}" for k, v in headers.items())


def write_script(load: Load, directory: Path) -> Path:
    body_init = ""
    if load.body is not None:
        prefix_path = directory / "body.prefix"
        suffix_path = directory / "body.suffix"
        prefix_path.write_bytes(load.body[0])
        suffix_path.write_bytes(load.body[1])
        body_init = (
            f"prefix = slurp({_lua_string(str(prefix_path))})\n"
            f"  suffix = slurp({_lua_string(str(suffix_path))})"
        )
    script = _LUA % {
        "paths": ", ".join(_lua_string(p) for p in load.paths),
        "method": load.method,
        "headers": _lua_table(load.headers),
        "write_every": load.write_every,
        "write_paths": ", ".join(_lua_string(p) for p in load.write_paths),
        "write_headers": _lua_table(load.write_headers),
        "body_init": body_init,
        "mark": _MARK,
    }
    path = directory / "load.lua"
    path.write_text(script)
    return path


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def run_wrk(
    base_url: str,
    load: Load,
    *,
    connections: int,
    seconds: float,
    pin: list[str],
) -> Figures:
    with tempfile.TemporaryDirectory(prefix="cellar-bench-wrk-") as tmp:
        script = write_script(load, Path(tmp))
        duration = max(1, math.ceil(seconds))
        command = [
            *pin,
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{duration}s",
            "--timeout",
            "10s",
            "--latency",
            "-s",
            str(script),
            base_url,
        ]
        try:
            done = subprocess.run(
                command,
                capture_output=True,
                text=True,
                timeout=duration + 30,
                check=False,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired:
            raise LoadError("wrk did not finish in time") from None
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith(_MARK)), None)
    if done.returncode != 0 or line is None:
        raise LoadError(f"wrk failed ({done.returncode}): {done.stdout[-800:]}{done.stderr[-800:]}")
    raw = json.loads(line[len(_MARK) :])
    errors = sum(raw[k] for k in raw if k.startswith("errors_"))
    if raw["requests"] == 0:
        raise NoAnswer(f"no request answered: {done.stdout[-800:]}")
    return Figures(
        rps=raw["requests"] / (raw["duration_us"] / 1e6),
        p50_ms=raw["p50_us"] / 1000,
        p90_ms=raw["p90_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        requests=raw["requests"],
        errors=errors,
        tool="wrk",
        bytes_per_request=raw["bytes"] / raw["requests"],
    )


def run_python(base_url: str, load: Load, *, connections: int, seconds: float) -> Figures:
    """The same requests from ``connections`` httpx coroutines (no wrk: smoke only)."""
    import httpx

    received = 0

    async def main() -> tuple[list[float], int, float]:
        timings: list[float] = []
        errors = 0
        counter = 0
        deadline = time.perf_counter() + seconds

        async def worker(http: httpx.AsyncClient) -> None:
            nonlocal counter, errors, received
            while time.perf_counter() < deadline:
                counter += 1
                method, path, headers = (
                    load.method,
                    load.paths[counter % len(load.paths)],
                    load.headers,
                )
                content = None
                writing = load.write_every > 0 and counter % load.write_every == 0
                if writing:
                    turn = (counter // load.write_every) % len(load.write_paths)
                    method, path, headers = "PUT", load.write_paths[turn], load.write_headers
                if load.body is not None and (writing or load.write_every == 0):
                    content = load.body[0] + str(counter).encode() + load.body[1]
                started = time.perf_counter()
                response = await http.request(method, path, headers=headers, content=content)
                timings.append(time.perf_counter() - started)
                received += len(response.content)
                if response.status_code >= 400:
                    errors += 1

        started = time.perf_counter()
        limits = httpx.Limits(max_connections=connections)
        async with httpx.AsyncClient(base_url=base_url, timeout=30.0, limits=limits) as http:
            await asyncio.gather(*(worker(http) for _ in range(connections)))
        return timings, errors, time.perf_counter() - started

    timings, errors, took = asyncio.run(main())
    if not timings:
        raise NoAnswer("no request answered")
    ordered = sorted(timings)

    def pct(fraction: float) -> float:
        return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)] * 1000

    return Figures(
        rps=len(timings) / took,
        p50_ms=pct(0.5),
        p90_ms=pct(0.9),
        p99_ms=pct(0.99),
        requests=len(timings),
        errors=errors,
        tool="python",
        bytes_per_request=received / len(timings),
    )
