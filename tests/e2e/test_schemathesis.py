"""Schemathesis over the app's own OpenAPI document, against a real ``cellar serve`` (issue 17).

Every operation in ``/schema/openapi.json`` gets generated requests, valid
(positive) and invalid (negative) by the schema, with a bearer token of a
fresh user, on made-up ids and on a real notebook and cell: none may answer
5xx (``not_a_server_error``; SPEC §3, "never 500 for anything a client can
send").  Bounded by examples per operation and mode (about 1,700 requests)
and by a per-request timeout: about a minute.  The operations are driven
with Hypothesis directly (``as_strategy``) rather than ``@schema.parametrize``
because schemathesis' fixture-based loader needs a pytest internal that
pytest 9 removed (``request.node._nodeid``).  Huge revisions are the
business of tests/api/test_integer_fields.py: at this budget schemathesis
rarely draws an integer ≥ 2^63 (it did not find that 500 when tried).

Response-schema conformance runs too, on what the document declares: a
body that does not match its declared schema fails it; and every status code
an operation answers must be one the document lists for it
(``status_code_conformance``).
"""

from __future__ import annotations

import os
import uuid
from collections import Counter
from typing import TYPE_CHECKING

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    response_schema_conformance,
    status_code_conformance,
)

from tests.e2e.conftest import running_server
from tests.helpers import PASSWORD

if TYPE_CHECKING:
    from collections.abc import Iterator

    from hypothesis.strategies import SearchStrategy
    from schemathesis import APIOperation, CheckFunction

pytestmark = pytest.mark.e2e

EXAMPLES_PER_OPERATION = 40
REQUEST_TIMEOUT = 10.0
STATUSES: Counter[int] = Counter()  # answers the running test got, for its closing line
BOUNDED = settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture(scope="module")
def live(database_url: str) -> Iterator[tuple[str, dict[str, str]]]:
    """A real server on the session database and the headers of a fresh user."""
    env = dict(os.environ)
    assert env["DATABASE_URL"] == database_url
    with running_server(env) as url, httpx.Client(base_url=url, timeout=10.0) as http:
        credentials = {"email": f"st-{uuid.uuid4().hex[:12]}@example.com", "password": PASSWORD}
        assert http.post("/auth/register", json=credentials).status_code == 201
        issued = http.post("/auth/token", json=credentials)
        assert issued.status_code == 200, issued.text
        yield url, {"Authorization": f"Bearer {issued.json()['access_token']}"}


def fresh_notebook(http: httpx.Client, bearer: dict[str, str]) -> dict[str, str]:
    """Path parameters naming a real notebook and cell of the user (a fresh one each time)."""
    created = http.post("/notebooks", json={"name": "fuzzed"}, headers=bearer)
    assert created.status_code == 201, created.text
    notebook_id = created.json()["notebook_id"]
    shown = http.get(f"/notebooks/{notebook_id}", headers=bearer)
    assert shown.status_code == 200, shown.text
    return {"notebook_id": notebook_id, "cell_id": shown.json()["cells"][0]["id"]}


def run_operation(
    operation: APIOperation,
    strategy: SearchStrategy[schemathesis.Case],
    session: requests.Session,
    checks: list[CheckFunction],
) -> str | None:
    """Bounded examples of one operation; the first failure, shrunk, as text (or None)."""

    @BOUNDED
    @given(case=strategy)
    def examples(case: schemathesis.Case) -> None:
        response = case.call_and_validate(session=session, checks=checks, timeout=REQUEST_TIMEOUT)
        STATUSES[response.status_code] += 1

    try:
        examples()
    except Unsatisfiable:
        return None  # nothing to negate here (no parameters, or only free-form strings)
    except Exception as exc:  # a check's failure, with the request that caused it
        return f"{operation.label}: {exc}"
    return None


def fuzz(live: tuple[str, dict[str, str]], checks: list[CheckFunction]) -> list[str]:
    url, bearer = live
    schema = schemathesis.openapi.from_url(f"{url}/schema/openapi.json")
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15, [operation.label for operation in operations]
    with (
        httpx.Client(base_url=url, timeout=REQUEST_TIMEOUT) as http,
        requests.Session() as session,  # keep-alive between examples
    ):
        session.headers.update(bearer)
        for operation in operations:
            names = {parameter.name for parameter in operation.path_parameters}
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                strategies = [operation.as_strategy(generation_mode=mode)]
                if names:  # and again on a real notebook and cell, to reach the services
                    real = {k: v for k, v in fresh_notebook(http, bearer).items() if k in names}
                    strategies.append(
                        operation.as_strategy(generation_mode=mode, path_parameters=real)
                    )
                for strategy in strategies:
                    failure = run_operation(operation, strategy, session, checks)
                    if failure is not None:
                        failures.append(failure)
    return failures


def test_no_server_errors_and_bodies_match_their_schemas(
    live: tuple[str, dict[str, str]],
) -> None:
    STATUSES.clear()
    failures = fuzz(live, [not_a_server_error, response_schema_conformance])
    assert failures == [], "\n\n".join(failures)
    total = sum(STATUSES.values())
    succeeded = sum(n for status, n in STATUSES.items() if status < 300)
    assert total > 300, STATUSES
    assert succeeded > total // 10, STATUSES  # the token works: not everything bounced
    print(f"\nschemathesis: {total} requests, answers {sorted(STATUSES.items())}")


def test_every_status_code_is_documented(live: tuple[str, dict[str, str]]) -> None:
    failures = fuzz(live, [status_code_conformance])
    assert failures == [], "\n\n".join(failures)
