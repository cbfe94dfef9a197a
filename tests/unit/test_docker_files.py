"""Static checks of the container files: Dockerfile, docker-compose.yml, .dockerignore.

Docker is not available where the unit tests run, so these files are parsed and their
important properties asserted instead of being built.
"""

import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERIGNORE = ROOT / ".dockerignore"

ROOT_USERS = {"root", "0"}


# --------------------------------------------------------------------------- Dockerfile


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str
    line: int


def parse_dockerfile(text: str) -> list[Instruction]:
    """Split a Dockerfile into instructions, joining backslash line continuations.

    Comment lines (including parser directives) and blank lines are dropped, also when
    they appear inside a continued instruction, as Docker does.
    """
    instructions: list[Instruction] = []
    parts: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if not parts:
            start = number
        if stripped.endswith("\\"):
            parts.append(stripped[:-1].strip())
            continue
        parts.append(stripped)
        keyword, _, args = " ".join(part for part in parts if part).partition(" ")
        instructions.append(Instruction(keyword.upper(), args.strip(), start))
        parts = []
    if parts:
        raise ValueError(f"unterminated line continuation starting at line {start}")
    return instructions


def split_stages(instructions: list[Instruction]) -> list[list[Instruction]]:
    """Group instructions by build stage; each stage starts with its FROM."""
    stages: list[list[Instruction]] = []
    for instruction in instructions:
        if instruction.keyword == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(instruction)
    return stages


def from_image_and_name(instruction: Instruction) -> tuple[str, str | None]:
    tokens = [t for t in instruction.args.split() if not t.startswith("--")]
    image = tokens[0]
    name = tokens[2] if len(tokens) >= 3 and tokens[1].upper() == "AS" else None
    return image, name


def copy_parts(instruction: Instruction) -> tuple[dict[str, str], list[str], str]:
    """Return (flags, sources, destination) of a COPY/ADD instruction."""
    tokens = shlex.split(instruction.args)
    flags = {}
    while tokens and tokens[0].startswith("--"):
        key, _, value = tokens.pop(0)[2:].partition("=")
        flags[key] = value
    if tokens and tokens[0].startswith("["):
        tokens = json.loads(" ".join(tokens))
    return flags, tokens[:-1], tokens[-1]


def env_pairs(instruction: Instruction) -> dict[str, str]:
    tokens = shlex.split(instruction.args)
    if len(tokens) >= 2 and "=" not in tokens[0]:  # legacy `ENV KEY value` form
        return {tokens[0]: " ".join(tokens[1:])}
    return dict(token.split("=", 1) for token in tokens)


def of(stage: list[Instruction], keyword: str) -> list[Instruction]:
    return [i for i in stage if i.keyword == keyword]


@pytest.fixture(scope="module")
def instructions() -> list[Instruction]:
    return parse_dockerfile(DOCKERFILE.read_text())


@pytest.fixture(scope="module")
def stages(instructions: list[Instruction]) -> list[list[Instruction]]:
    return split_stages(instructions)


@pytest.fixture(scope="module")
def final_stage(stages: list[list[Instruction]]) -> list[Instruction]:
    assert stages, "Dockerfile has no FROM"
    return stages[-1]


def test_parser_joins_continuations_and_skips_comments() -> None:
    parsed = parse_dockerfile(
        "# syntax=docker/dockerfile:1\n"
        "FROM python:3.11-slim AS base\n"
        "\n"
        "RUN apt-get update \\\n"
        "    # a comment inside the continuation\n"
        "    && true\n"
        "user app\n"
    )
    assert [(i.keyword, i.args, i.line) for i in parsed] == [
        ("FROM", "python:3.11-slim AS base", 2),
        ("RUN", "apt-get update && true", 4),
        ("USER", "app", 7),
    ]
    with pytest.raises(ValueError):
        parse_dockerfile("FROM scratch\nRUN true \\\n")


def test_multi_stage_build_on_slim_python(stages: list[list[Instruction]]) -> None:
    assert len(stages) >= 2
    for stage in stages:
        image, _ = from_image_and_name(stage[0])
        assert image.startswith("python:3.11"), image
        assert "slim" in image, image


def test_builder_installs_package_into_venv_without_extras(
    stages: list[list[Instruction]],
) -> None:
    builder_runs = " && ".join(i.args for stage in stages[:-1] for i in of(stage, "RUN"))
    assert re.search(r"-m venv /opt/venv\b", builder_runs)
    assert re.search(r"pip install --no-cache-dir \.(?=\s|$|&|;)", builder_runs)
    # No optional extras: `pip install .[embedded]` / `.[test]` would bloat the image.
    assert not re.search(r"pip install[^&;|]*\.\[", builder_runs)
    builder_env = {
        k: v for stage in stages[:-1] for i in of(stage, "ENV") for k, v in env_pairs(i).items()
    }
    assert builder_env.get("PATH", "").startswith("/opt/venv/bin:")


def test_final_stage_copies_venv_from_builder(stages: list[list[Instruction]]) -> None:
    builder_names = {from_image_and_name(stage[0])[1] for stage in stages[:-1]}
    copies = [copy_parts(i) for i in of(stages[-1], "COPY")]
    assert any(
        flags.get("from") in builder_names and sources == ["/opt/venv"] and dest == "/opt/venv"
        for flags, sources, dest in copies
    ), copies


def test_final_stage_copies_only_runtime_files(final_stage: list[Instruction]) -> None:
    assert not of(final_stage, "ADD")
    context_sources = [
        source.rstrip("/")
        for flags, sources, _ in (copy_parts(i) for i in of(final_stage, "COPY"))
        if "from" not in flags
        for source in sources
    ]
    assert set(context_sources) == {"app", "piccolo_migrations", "piccolo_conf.py"}
    for source in context_sources:
        assert source not in {".", "./", "*"}
        assert "tests" not in source.split("/")


def test_final_stage_environment_and_workdir(final_stage: list[Instruction]) -> None:
    env = {k: v for i in of(final_stage, "ENV") for k, v in env_pairs(i).items()}
    assert env.get("PATH", "").startswith("/opt/venv/bin:")
    assert env.get("PYTHONUNBUFFERED") == "1"
    assert env.get("PYTHONDONTWRITEBYTECODE") == "1"
    workdirs = of(final_stage, "WORKDIR")
    assert workdirs and workdirs[-1].args == "/srv"


def test_runs_as_non_root_user(
    instructions: list[Instruction], final_stage: list[Instruction]
) -> None:
    users = of(final_stage, "USER")
    assert users, "final stage has no USER instruction: the container would run as root"
    effective = users[-1]
    last_from = max(i.line for i in instructions if i.keyword == "FROM")
    assert effective.line > last_from
    user, _, group = effective.args.partition(":")
    assert user not in ROOT_USERS
    assert group not in ROOT_USERS
    # The user is created in the final stage with a fixed, non-system-clashing uid.
    created = " ".join(i.args for i in of(final_stage, "RUN"))
    assert re.search(rf"useradd\b.*--uid 10001\b.*\b{re.escape(user)}\b", created)


def test_exposes_8000(final_stage: list[Instruction]) -> None:
    exposed = {port for i in of(final_stage, "EXPOSE") for port in i.args.split()}
    assert exposed & {"8000", "8000/tcp"}


def test_healthcheck_uses_python_urllib(final_stage: list[Instruction]) -> None:
    checks = of(final_stage, "HEALTHCHECK")
    assert checks, "final stage has no HEALTHCHECK"
    check = checks[-1].args
    assert check.upper() != "NONE"
    assert "CMD" in check
    assert "urllib" in check
    assert "http://127.0.0.1:8000/health" in check
    assert not re.search(r"\b(curl|wget)\b", check)  # not installed in slim images


def test_cmd_serves_on_all_interfaces(final_stage: list[Instruction]) -> None:
    assert not of(final_stage, "ENTRYPOINT")  # would turn CMD into mere arguments
    cmds = of(final_stage, "CMD")
    assert cmds, "final stage has no CMD"
    argv = json.loads(cmds[-1].args)  # exec form, so signals reach the server
    assert argv[:2] == ["cellar", "serve"]
    assert argv[argv.index("--host") + 1] == "0.0.0.0"
    assert argv[argv.index("--port") + 1] == "8000"


# --------------------------------------------------------------------------- .dockerignore


def dockerignore_patterns() -> list[str]:
    lines = (line.strip() for line in DOCKERIGNORE.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """Docker's .dockerignore semantics: `*` and `?` stop at `/`, `**` spans directories."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


def is_ignored(path: str, patterns: list[str]) -> bool:
    """Whether `path` (relative to the build context) is excluded; last match wins."""
    components = path.strip("/").split("/")
    # Excluding a directory excludes everything below it.
    prefixes = ["/".join(components[: n + 1]) for n in range(len(components))]
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        regex = _pattern_regex(pattern.removeprefix("!").strip("/"))
        if any(regex.fullmatch(prefix) for prefix in prefixes):
            ignored = not negate
    return ignored


def test_ignore_matcher_follows_docker_semantics() -> None:
    assert is_ignored("tests/unit/test_x.py", ["tests"])
    assert not is_ignored("app/tests", ["tests"])
    assert is_ignored("app/tests", ["**/tests"])
    assert not is_ignored("app/x.pyc", ["*.pyc"])
    assert is_ignored("app/x.pyc", ["**/*.pyc"])
    assert not is_ignored("README.md", ["*.md", "!README.md"])


def test_dockerignore_excludes_local_state() -> None:
    patterns = dockerignore_patterns()
    for entry in [
        ".git",
        ".venv",
        ".cellar",
        "tests",
        "bench",
        "docs",
        ".pytest_cache",
        ".mypy_cache",
        ".ruff_cache",
    ]:
        assert entry in patterns, entry
        assert is_ignored(entry, patterns)
    assert is_ignored("__pycache__", patterns)
    assert is_ignored("app/notebooks/__pycache__", patterns)
    assert "*.pyc" in patterns
    assert is_ignored("app/notebooks/demo.pyc", patterns)


def test_dockerignore_keeps_build_inputs(instructions: list[Instruction]) -> None:
    patterns = dockerignore_patterns()
    context_sources = {
        source.rstrip("/").removeprefix("./")
        for flags, sources, _ in (copy_parts(i) for i in instructions if i.keyword == "COPY")
        if "from" not in flags
        for source in sources
    }
    assert {"pyproject.toml", "README.md", "app"} <= context_sources
    for source in context_sources:
        assert not is_ignored(source, patterns), source
    assert not is_ignored("app/notebooks/demo.json", patterns)


# --------------------------------------------------------------------------- compose


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    result = compose["services"]
    assert isinstance(result, dict)
    return result


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def argv(value: str | list[str]) -> list[str]:
    return shlex.split(value) if isinstance(value, str) else list(value)


def depends_on(service: dict[str, Any]) -> dict[str, str]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):  # short form means service_started
        return dict.fromkeys(deps, "service_started")
    return {name: (spec or {}).get("condition", "service_started") for name, spec in deps.items()}


def test_services_present(services: dict[str, Any]) -> None:
    assert {"postgres", "migrate", "app"} <= set(services)


def test_postgres_service(compose: dict[str, Any], services: dict[str, Any]) -> None:
    postgres = services["postgres"]
    assert postgres["image"] == "postgres:16"
    env = environment(postgres)
    assert {"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"} <= set(env)

    data_volumes = []
    for volume in postgres.get("volumes", []):
        if isinstance(volume, str):
            source, _, target = volume.partition(":")
            target = target.split(":")[0]
        else:
            source, target = volume.get("source", ""), volume.get("target", "")
        if target == "/var/lib/postgresql/data":
            data_volumes.append(source)
    assert len(data_volumes) == 1
    # A named volume (declared at top level), not a bind mount of a host path.
    assert data_volumes[0] in (compose.get("volumes") or {})


def test_postgres_healthcheck_uses_pg_isready(services: dict[str, Any]) -> None:
    test = services["postgres"]["healthcheck"]["test"]
    assert "pg_isready" in " ".join(argv(test))


def test_migrate_is_one_shot_after_postgres(services: dict[str, Any]) -> None:
    migrate = services["migrate"]
    assert migrate["build"] in (".", {"context": "."}) or migrate["build"]["context"] == "."
    assert argv(migrate["command"]) == ["piccolo", "migrations", "forwards", "all"]
    # Must be the string "no": a bare YAML `no` is the boolean False.
    assert migrate["restart"] == "no"
    assert depends_on(migrate) == {"postgres": "service_healthy"}


def test_app_waits_for_healthy_db_and_finished_migrations(services: dict[str, Any]) -> None:
    app = services["app"]
    assert "build" in app
    assert depends_on(app) == {
        "postgres": "service_healthy",
        "migrate": "service_completed_successfully",
    }
    assert "8000:8000" in [str(port) for port in app["ports"]]


def test_app_healthcheck_hits_health_with_urllib(services: dict[str, Any]) -> None:
    command = " ".join(argv(services["app"]["healthcheck"]["test"]))
    assert "urllib" in command
    assert "http://127.0.0.1:8000/health" in command
    assert not re.search(r"\b(curl|wget)\b", command)


@pytest.mark.parametrize("name", ["app", "migrate"])
def test_database_url_points_at_postgres_service(services: dict[str, Any], name: str) -> None:
    url = environment(services[name]).get("DATABASE_URL")
    assert url, f"{name} has no DATABASE_URL"
    parts = urlsplit(url)
    pg_env = environment(services["postgres"])
    assert parts.scheme in {"postgres", "postgresql"}
    assert parts.hostname == "postgres"
    assert parts.port in (None, 5432)
    assert parts.username == pg_env["POSTGRES_USER"]
    assert parts.password == pg_env["POSTGRES_PASSWORD"]
    assert parts.path.lstrip("/") == pg_env["POSTGRES_DB"]


def test_app_and_migrate_share_database_url(services: dict[str, Any]) -> None:
    assert (
        environment(services["app"])["DATABASE_URL"]
        == environment(services["migrate"])["DATABASE_URL"]
    )


@pytest.mark.parametrize("variable", ["APP_SECRET_KEY", "ENCRYPTION_KEY"])
def test_app_secrets_are_required_from_environment(services: dict[str, Any], variable: str) -> None:
    value = environment(services["app"]).get(variable, "")
    # `${VAR:?message}`: compose refuses to start instead of running with an empty secret.
    assert re.fullmatch(rf"\$\{{{variable}:\?[^}}]+\}}", value), value


# --------------------------------------------------------------------------- the prometheus profile


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """Bind mounts of a service: target -> source (relative to the compose file)."""
    found = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        found[target] = source
    return found


def test_default_services_are_not_in_a_profile(services: dict[str, Any]) -> None:
    for name in ("postgres", "migrate", "app"):
        assert "profiles" not in services[name], name


@pytest.mark.parametrize("name", ["prometheus", "grafana"])
def test_monitoring_services_only_with_the_prometheus_profile(
    services: dict[str, Any], name: str
) -> None:
    service = services[name]
    assert service["profiles"] == ["prometheus"]
    for published in service["ports"]:
        assert str(published).startswith("127.0.0.1:"), published  # loopback only
    for target, source in mounts(service).items():
        if source.startswith("./"):
            assert (ROOT / source).exists(), (target, source)


def test_prometheus_scrapes_the_app_service(services: dict[str, Any]) -> None:
    prometheus = services["prometheus"]
    assert depends_on(prometheus) == {"app": "service_healthy"}
    volumes = mounts(prometheus)
    config_path = volumes["/etc/prometheus/prometheus.yml"]
    config = yaml.safe_load((ROOT / config_path).read_text())
    [job] = config["scrape_configs"]
    [target] = job["static_configs"][0]["targets"]
    host, _, port = target.partition(":")
    assert host == "app"
    assert f"{port}:{port}" in [str(p) for p in services["app"]["ports"]]
    for rule_file in config["rule_files"]:
        assert rule_file in volumes, rule_file
    assert "--config.file=/etc/prometheus/prometheus.yml" in argv(prometheus["command"])


def test_grafana_gets_the_dashboard_and_its_data_source(services: dict[str, Any]) -> None:
    volumes = mounts(services["grafana"])
    assert volumes["/etc/grafana/provisioning"] == "./deploy/grafana/provisioning"
    assert volumes["/var/lib/grafana/dashboards/cellar.json"] == "./deploy/grafana/cellar.json"
