"""Property tests for ``app.notebooks.analysis.analyze``.

Programs are generated from simple statements over a small pool of identifiers (so names
collide and ordering matters), and the expected reads/writes are computed by a tiny
reference model of the spec alongside the source text.
"""

from __future__ import annotations

import ast
import builtins
import keyword
from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from app.notebooks.analysis import analyze
from app.notebooks.magics import python_source

BUILTINS = frozenset(dir(builtins))
SETTINGS = settings(max_examples=100, deadline=None)

names = st.one_of(
    st.sampled_from(["a", "b", "c", "df", "total", "x_1", "_tmp", "Model"]),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz_0123456789", min_size=1, max_size=7).filter(
        lambda s: (
            not s[0].isdigit()
            and not keyword.iskeyword(s)
            and not keyword.issoftkeyword(s)
            and s not in BUILTINS
        )
    ),
)
builtin_names = st.sampled_from(["print", "len", "range", "sum", "list", "dict", "ValueError"])


@dataclass
class Model:
    """Reference semantics for the generated statement forms."""

    lines: list[str] = field(default_factory=list)
    bound: set[str] = field(default_factory=set)
    reads: set[str] = field(default_factory=set)
    deferred: set[str] = field(default_factory=set)

    def load(self, used: list[str]) -> None:
        self.reads.update(n for n in used if n not in self.bound and n not in BUILTINS)

    def expected(self) -> tuple[list[str], list[str]]:
        return sorted(self.reads | (self.deferred - self.bound)), sorted(self.bound)


@st.composite
def programs(draw: st.DrawFn) -> Model:
    model = Model()
    for _ in range(draw(st.integers(0, 12))):
        kind = draw(st.sampled_from(["assign", "augassign", "unpack", "def", "import", "call"]))
        used = draw(st.lists(st.one_of(names, builtin_names), max_size=3))
        expr = " + ".join([*used, "1"])
        if kind == "assign":
            target = draw(names)
            model.lines.append(f"{target} = {expr}")
            model.load(used)
            model.bound.add(target)
        elif kind == "augassign":
            target = draw(names)
            model.lines.append(f"{target} += {expr}")
            model.load([target, *used])
            model.bound.add(target)
        elif kind == "unpack":
            first, rest = draw(names), draw(names)
            model.lines.append(f"{first}, *{rest} = [{expr}, {expr}]")
            model.load(used)
            model.bound.update((first, rest))
        elif kind == "def":
            fname, param = draw(names), draw(names)
            model.lines.append(f"def {fname}({param}):\n    return {param} + {expr}")
            model.deferred.update(n for n in used if n != param and n not in BUILTINS)
            model.bound.add(fname)
        elif kind == "import":
            module, alias = draw(names), draw(st.none() | names)
            model.lines.append(f"import {module}.sub" + (f" as {alias}" if alias else ""))
            model.bound.add(alias or module)
        else:
            model.lines.append(f"print({expr})")
            model.load(used)
    return model


@SETTINGS
@given(programs())
def test_generated_programs_match_reference_model(model: Model) -> None:
    assert analyze("python", "\n".join(model.lines)) == model.expected()


class Anything:
    """A value every generated statement can operate on (add, call, unpack, import)."""

    def __add__(self, other: object) -> Anything:
        return self

    __radd__ = __iadd__ = __add__

    def __call__(self, *args: object) -> Anything:
        return self

    def __getattr__(self, name: str) -> Anything:
        return self


class RecordingNamespace(dict[str, object]):
    """Module namespace for ``exec`` that records module-level stores and unbound loads."""

    def __init__(self) -> None:
        super().__init__()
        self.stored: set[str] = set()
        self.unbound_loads: set[str] = set()

    def __setitem__(self, name: str, value: object) -> None:
        self.stored.add(name)
        super().__setitem__(name, Anything())  # keep every later operation well-typed

    def __missing__(self, name: str) -> Anything:
        self.unbound_loads.add(name)
        return Anything()


@SETTINGS
@given(programs())
def test_writes_are_exactly_the_names_bound_at_module_level(model: Model) -> None:
    # Ground truth from actually running the cell: module-level code stores through
    # STORE_NAME into a non-dict locals mapping, which we record.
    code = "\n".join(model.lines)
    reads, writes = analyze("python", code)
    namespace = RecordingNamespace()
    fake_builtins = {**vars(builtins), "__import__": lambda *args, **kwargs: Anything()}
    exec(compile(code, "<cell>", "exec"), {"__builtins__": fake_builtins}, namespace)
    assert set(writes) == namespace.stored
    assert namespace.unbound_loads - BUILTINS <= set(reads)


@SETTINGS
@given(st.text(max_size=300))
def test_any_text_never_raises_and_output_is_sorted_unique(code: str) -> None:
    for cell_type in ("python", "sql", "markdown"):
        reads, writes = analyze(cell_type, code)
        for result in (reads, writes):
            assert result == sorted(set(result))
            assert all(isinstance(name, str) for name in result)


@SETTINGS
@given(st.text(alphabet=st.sampled_from("abx=+-:()[]{}\n .,'\"\\#@*"), max_size=80))
def test_python_like_text_is_deterministic_and_sane(code: str) -> None:
    first = analyze("python", code)
    assert analyze("python", code) == first
    reads, writes = first
    assert not BUILTINS & set(reads)
    for name in (*reads, *writes):
        assert name.isidentifier()
    if not parses(code):
        # Not Python: only IPython syntax (here: autocall such as ",a") can give names.
        source = python_source(code)
        if source is None or not parses(source):
            assert first == ([], [])


def parses(code: str) -> bool:
    try:
        ast.parse(code)
    except (SyntaxError, ValueError):
        return False
    return True


@SETTINGS
@given(programs(), st.sampled_from(["(", ")", "def", "x = = 1", "if x\n", "\x00"]))
def test_syntax_errors_give_nothing(model: Model, breaker: str) -> None:
    code = "\n".join([*model.lines, breaker])
    assert analyze("python", code) == ([], [])


@SETTINGS
@given(programs())
def test_reads_never_contain_builtins(model: Model) -> None:
    code = "\n".join([*model.lines, "print(len(range(3)), sum([]), ValueError)"])
    reads, _ = analyze("python", code)
    assert not BUILTINS & set(reads)


@st.composite
def sql_queries(draw: st.DrawFn) -> tuple[str, set[str]]:
    literal = st.text(alphabet=st.characters(blacklist_characters="{}", codec="utf-8"), max_size=10)
    parts: list[str] = []
    expected: set[str] = set()
    for _ in range(draw(st.integers(0, 8))):
        kind = draw(st.sampled_from(["literal", "field", "attr", "index", "escaped"]))
        if kind == "literal":
            parts.append(draw(literal))
        elif kind == "escaped":
            parts.append("{{" + draw(names) + "}}")
        else:
            name = draw(names)
            suffix = {"field": "", "attr": ".attr", "index": "[0]"}[kind]
            parts.append("{" + name + suffix + "}")
            expected.add(name)
    return "".join(parts), expected


@SETTINGS
@given(sql_queries())
def test_sql_reads_are_exactly_the_placeholders(query: tuple[str, set[str]]) -> None:
    code, expected = query
    assert analyze("sql", code) == (sorted(expected), [])
