"""Property tests for .ipynb import/export over notebooks hypothesis writes with nbformat.

Generated: cells of each type (code, markdown, raw) with sources that mix text
and IPython magics, outputs of each type (streams, displays and results with
mime bundles incl. JSON mimes, errors with ANSI tracebacks), free-form
metadata, attachments, execution counts, kernels, minors 4.4 and 4.5, and
cell ids valid, missing, invalid or repeated.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import msgspec
import nbformat
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nbformat import v4

from app.ipynb.convert import export_ipynb, import_ipynb
from app.ipynb.outputs import STDERR_MIME, ipynb_outputs, run_view
from app.ipynb.reading import CELL_ID
from app.notebooks.schemas import Output, StoredCell
from tests.ipynb_corpus import as_read, stored

if TYPE_CHECKING:
    from app.store.notebooks import RunState

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Text without U+0000 (PostgreSQL text cannot hold it; a test of its own covers it).
text = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=12)
keys = st.one_of(st.sampled_from(["a", "b", "note", "ünï", "x.y", "cellar-ish"]), text)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    text,
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(keys, inner, max_size=3)),
    max_leaves=8,
)
free_metadata = st.dictionaries(keys, json_values, max_size=3)
lines = st.one_of(
    text,
    st.sampled_from(
        [
            "x = 1",
            "y = x + 1",
            "%matplotlib inline",
            "%%time",
            "files = !ls {folder}",
            "!pip install pandas",
            "df?",
            "%time z = f(y)",
            "print('é')",
            "  indented",
            "\\",
            "s = '''",
        ]
    ),
)
sources = st.lists(lines, max_size=5).map("\n".join)
ansi = st.sampled_from(["\x1b[0;31m", "\x1b[0m", "\x1b[38;5;241m", ""])
traceback_lines = st.builds(lambda a, t, b: a + t + b, ansi, text, ansi)
json_mimes = st.sampled_from(
    [
        "application/json",
        "application/vnd.plotly.v1+json",
        "application/vnd.vegalite.v5+json",
        "application/vnd.jupyter.widget-view+json",
    ]
)
text_mimes = st.sampled_from(
    ["text/plain", "text/html", "image/png", "image/svg+xml", "text/markdown", "x-custom/thing"]
)
bundles = st.one_of(
    st.dictionaries(text_mimes, text, min_size=1, max_size=3),
    st.dictionaries(json_mimes, json_values, min_size=1, max_size=2),
).flatmap(
    lambda first: st.dictionaries(text_mimes, text, max_size=2).map(lambda more: {**more, **first})
)
execution_counts = st.one_of(st.none(), st.integers(0, 10_000))
outputs = st.one_of(
    st.builds(
        lambda name, t: v4.new_output("stream", name=name, text=t),
        st.sampled_from(["stdout", "stderr"]),
        st.text(max_size=20),  # may hold U+0000: outputs are kept as JSON text
    ),
    st.builds(
        lambda data, meta: v4.new_output("display_data", data=data, metadata=meta),
        bundles,
        free_metadata,
    ),
    st.builds(
        lambda data, meta, count: v4.new_output(
            "execute_result", data=data, metadata=meta, execution_count=count
        ),
        bundles,
        free_metadata,
        execution_counts,
    ),
    st.builds(
        lambda name, value, trace: v4.new_output(
            "error", ename=name, evalue=value, traceback=trace
        ),
        text,
        text,
        st.lists(traceback_lines, max_size=4),
    ),
)
attachments = st.dictionaries(
    st.sampled_from(["a.png", "b.gif", "notes.txt"]),
    st.dictionaries(st.sampled_from(["image/png", "image/gif", "text/plain"]), text, min_size=1),
    max_size=2,
)
KERNELS = [
    {},
    {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
    {"kernelspec": {"name": "julia-1.10", "display_name": "Julia", "language": "julia"}},
    {"language_info": {"name": "R"}},
]


@st.composite
def cells(draw: st.DrawFn) -> Any:
    kind = draw(st.sampled_from(["code", "code", "markdown", "raw"]))
    source = draw(sources)
    metadata = draw(free_metadata)
    if kind == "code":
        return v4.new_code_cell(
            source,
            metadata=metadata,
            outputs=draw(st.lists(outputs, max_size=4)),
            execution_count=draw(execution_counts),
        )
    maker = v4.new_markdown_cell if kind == "markdown" else v4.new_raw_cell
    cell = maker(source, metadata=metadata)
    if draw(st.booleans()):
        cell.attachments = draw(attachments)
    return cell


@st.composite
def notebooks(draw: st.DrawFn, *, ids: str = "valid") -> str:
    """A notebook's text; ``ids="random"`` makes each id valid, missing, invalid or repeated."""
    notebook = v4.new_notebook(metadata={**draw(st.sampled_from(KERNELS)), **draw(free_metadata)})
    notebook.cells = draw(st.lists(cells(), max_size=6))
    unique = draw(
        st.lists(
            st.from_regex(r"[a-zA-Z0-9_-]{1,64}", fullmatch=True),
            min_size=len(notebook.cells),
            max_size=len(notebook.cells),
            unique=True,
        )
    )
    document = json.loads(nbformat.writes(notebook))
    document["nbformat_minor"] = 5 if ids != "valid" else draw(st.sampled_from([4, 5]))
    for index, cell in enumerate(document["cells"]):
        del cell["id"]
        if document["nbformat_minor"] < 5:
            continue
        choice = "valid" if ids == "valid" else draw(st.sampled_from(IDS))
        if choice == "valid":
            cell["id"] = unique[index]
        elif choice == "repeat":
            cell["id"] = draw(st.sampled_from(unique[: index + 1]))
        elif choice == "invalid":
            cell["id"] = draw(st.sampled_from(["", "has space", "x" * 65, "dot.ted", 7]))
    return json.dumps(document)


IDS = ["valid", "missing", "invalid", "repeat"]


def stored_text(text: str) -> tuple[Any, list[StoredCell], dict[str, RunState], Any]:
    imported = import_ipynb(text)
    return (imported, *stored(imported))


@SETTINGS
@given(notebooks())
def test_round_trip_is_equal_after_nbformats_read(text: str) -> None:
    imported, cells, runs, extra = stored_text(text)
    assert imported.warnings == []
    exported = export_ipynb(cells, runs, extra)
    assert as_read(exported) == as_read(text)
    nbformat.validate(nbformat.reads(exported.decode(), as_version=nbformat.NO_CONVERT))


@SETTINGS
@given(notebooks(ids="random"))
def test_ids_are_repaired_and_listed_and_nothing_else_changes(text: str) -> None:
    document = json.loads(text)
    seen: set[str] = set()
    repairs = 0
    for cell in document["cells"]:
        cell_id = cell.pop("id", None)
        if isinstance(cell_id, str) and CELL_ID.fullmatch(cell_id) and cell_id not in seen:
            seen.add(cell_id)
        else:
            repairs += 1
    imported, cells, runs, extra = stored_text(text)
    assert len([w for w in imported.warnings if ": id " in w]) == repairs == len(imported.warnings)
    kept = [cell.get("id") for cell in json.loads(text)["cells"]]
    assert all(cell.id == kept[i] or cell.id not in seen for i, cell in enumerate(cells))
    exported = as_read(export_ipynb(cells, runs, extra))
    assert [cell.pop("id") for cell in exported["cells"]] == [cell.id for cell in cells]
    # Ids aside, it is the same notebook (compared as 4.4, which has no ids).
    document["nbformat_minor"] = exported["nbformat_minor"] = 4
    assert exported == as_read(json.dumps(document))


# -- the API's run state and back ----------------------------------------------------------------

# The API refuses U+0000; ANSI colours are what the view strips from tracebacks.
api_text = st.text(
    st.characters(exclude_categories=("Cs",), exclude_characters="\x00\x1b"), max_size=20
)
api_outputs = st.lists(
    st.one_of(
        st.builds(Output, text_mimes, api_text, free_metadata),
        st.builds(Output, json_mimes, json_values, free_metadata),
        st.builds(Output, st.just(STDERR_MIME), api_text, st.just({})),
    ),
    max_size=4,
)


@SETTINGS
@given(api_text, api_outputs, st.one_of(st.none(), api_text))
def test_engine_run_state_survives_export_and_import(
    stdout: str, shown: list[Output], error: str | None
) -> None:
    derived = ipynb_outputs(stdout, msgspec.json.encode(shown).decode(), error)
    document = v4.new_notebook()
    document.cells = [v4.new_code_cell("x", outputs=[nbformat.from_dict(o) for o in derived])]
    nbformat.validate(document)  # what the export derives is valid nbformat
    view = run_view(derived, None)
    assert (view.stdout, view.outputs, view.error) == (stdout, shown, error)
    assert view.status == ("error" if error is not None else ("success" if derived else "idle"))
