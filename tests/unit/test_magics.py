"""IPython syntax in python cells (``app.notebooks.magics``, through ``analyze``).

The examples pin what each rule means for reads and writes.  The property test
uses IPython's own input transformer as the oracle for *which* lines are IPython
syntax: for cells whose magics carry no Python of their own, our analysis must
equal the analysis of IPython's transformed code (minus its ``get_ipython``).
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from IPython.core.inputtransformer2 import TransformerManager

from app.notebooks.analysis import analyze
from app.notebooks.magics import LOCAL_SCOPE, python_source


def py(code: str) -> tuple[list[str], list[str]]:
    return analyze("python", code)


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        # the brief's examples
        ("x = !ls", ([], ["x"])),
        ("%time y = f(x)", (["f", "x"], ["y"])),
        ("%%sql\nSELECT * FROM t WHERE a = {a}", ([], [])),
        ("%%bash\nfiles=$(ls)\necho $files", ([], [])),
        # one magic never hides the rest of the cell
        ("%matplotlib inline\nimport numpy as np\nz = np.arange(n)", (["n"], ["np", "z"])),
        (
            "!pip install pandas\nimport pandas as pd\ndf = pd.read_csv(path)",
            (["path"], ["df", "pd"]),
        ),
        ("df.head?\nsummary = df.describe()", (["df"], ["summary"])),
        # shell commands: IPython expands {expr} and $name from the notebook
        ("!ls {folder}/*.csv", (["folder"], [])),
        ("files = !ls $folder", (["folder"], ["files"])),
        ("!echo {a:>10} {b!r} {{literal}} $$HOME $c.d", (["a", "b", "c"], [])),
        ("!!pwd", ([], [])),
        ("a, b = !echo 1 2", ([], ["a", "b"])),
        ("d = {}\nd['k'] = !ls", ([], ["d"])),
        # line magics
        ("x = %who_ls", ([], ["x"])),
        ("%cd {target}", (["target"], [])),
        ("%timeit -n 10 -r 2 y = f(x)", (["f", "x"], [])),  # timeit's code runs in a function
        ("x = 1\n%timeit f(x)", (["f"], ["x"])),
        ("result = %timeit -o f(a)", (["a", "f"], ["result"])),
        ("%prun -l 4 -s cumulative y = g(w)", (["g", "w"], ["y"])),
        ("%time %time x = 1", ([], ["x"])),
        ("x.attr = %time 3", (["x"], [])),
        # cell magics
        ("%%time\nimport pandas as pd\ndf = pd.read_csv(path)", (["path"], ["df", "pd"])),
        ("%%capture captured --no-stderr\nz = q + 1\n!ls", (["q"], ["captured", "z"])),
        ("%%timeit -n 10 a = 1\nb = a + x", (["x"], [])),
        ("\n\n%%time\nx = 1", ([], ["x"])),
        ("%%writefile helper.py\ndef helper():\n    return secret", ([], [])),
        # help
        ("obj?", ([], [])),
        ("??obj", ([], [])),
        ("x = a?", ([], [])),
        ("np.array??", ([], [])),
        # autocall escapes
        ("/print x y", (["x", "y"], [])),
        (",my_function a b", (["my_function"], [])),
        (";my_function a b", (["my_function"], [])),
        # where IPython syntax counts: start of a logical line, any indentation
        (
            "for f in files:\n    !echo {f} \\\n      more $g\n    y = 1",
            (["files", "g"], ["f", "y"]),
        ),
        ("if a:\n    %matplotlib inline\nelse:\n    b = 1", (["a"], ["b"])),
        ("s = '''\n%not a magic\n!nor this\n'''\nt = u?", ([], ["s"])),
        ("q = 'what?'\nw = 1  # really?\n!ls", ([], ["q", "w"])),
        ("a = (1,\n%x)", ([], [])),  # inside brackets: Python's modulo, a syntax error
        ("r = 1 + \\\n  2\n!ls", ([], ["r"])),
        ("%ls \\\n  -la\nz = 1", ([], ["z"])),
        # IPython's cleanup: an indented first line dedents the cell
        ("    indented = 1\n    other = indented", ([], ["indented", "other"])),
        # valid Python is never rewritten
        ("x = 5 % 3\ny = x", ([], ["x", "y"])),
    ],
)
def test_ipython_syntax(code: str, expected: tuple[list[str], list[str]]) -> None:
    assert py(code) == expected


def test_the_local_scope_name_never_leaks() -> None:
    assert LOCAL_SCOPE not in py("%timeit x")[1]
    assert py("%timeit x") == (["x"], [])


@pytest.mark.parametrize(
    "code",
    [
        "%time " * 3_000 + "x = 1",  # nested deeper than the interpreter's recursion limit
        "%timeit " * 200 + "x",  # class scopes nested beyond the parser's limit
        "%%bash",
        "%%",
        "%",
        "!",
        "x = !",
        "?",
        "/",
        "/ (",
        "!{",
        "!{)}",
        "%time (",
        "%%timeit (\nx",
        "%%capture\n%%bash\nls",
        "'''\n%x",
        "x = 1 \\",
        "\\",
        "\r\n%ls\r\nx = 1\r",
    ],
)
def test_malformed_ipython_never_raises(code: str) -> None:
    reads, writes = py(code)
    assert all(name.isidentifier() for name in reads + writes)


def test_opaque_cells_are_none_and_empty_cells_empty() -> None:
    assert python_source("%%bash\nls") is None
    assert python_source("\n  \n") == ""


# -- IPython as the oracle ---------------------------------------------------------------------

# Lines whose IPython syntax carries no Python of its own (so IPython's string
# arguments and our "pass" agree), next to Python that only looks like it.
FRAGMENTS = [
    "x = 1",
    "y = x + z",
    "def f(a):\n    return a + w",
    "s = '''\n%not a magic\n!nor this\n'''",
    "t = (1,\n     2)",
    "u = [v,\n     %w]",
    "u = (v\n     % w)",
    "p = ['[',\n     v\n     % w]",
    "r = v \\\n  % w",
    "s = '''\n!echo {leak}\n%cd $leak\n'''",
    "s = '''\n!echo \\\n'''",
    'e = "\\"!"\n!ls',
    "if c:\n    !ls -la\n    v = 2",
    "for i in items:\n    %load_ext autoreload\n    total = i",
    "!ls -la",
    "!!pwd",
    "!echo a \\\n  b",
    "%matplotlib inline",
    "%cd /tmp",
    "files = !ls",
    "w = %pwd",
    "a, b = !echo 1 2",
    "obj?",
    "??obj",
    "np.array?",
    "x = a?",
    "/print x y",
    ",f a b",
    "r = 1 + \\\n  2",
    "q = 'what?'",
    "k = 1  # really?",
    'm = "%s" % k',
    "class C:\n    !echo in a class\n    attr = 1",
    "%%time",  # not on the first line: a line magic named "%time"
]

TRANSFORMER = TransformerManager()


def ipython_analysis(code: str) -> tuple[list[str], list[str]]:
    reads, writes = analyze("python", TRANSFORMER.transform_cell(code))
    return [name for name in reads if name != "get_ipython"], writes


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(FRAGMENTS), min_size=1, max_size=8))
def test_lines_are_ipython_syntax_exactly_where_ipython_says(fragments: list[str]) -> None:
    # A first line of Python keeps "%%time" from being a cell magic (its body is ours).
    code = "\n".join(["first = 0", *fragments])
    assert py(code) == ipython_analysis(code)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.text(alphabet="%!?/,;$ {}()[]'\"\\#=:\nabxy_1-", max_size=30),
        min_size=1,
        max_size=6,
    )
)
def test_any_mixture_of_ipython_characters_never_raises(lines: list[str]) -> None:
    reads, writes = py("\n".join(lines))
    assert all(name.isidentifier() for name in reads + writes)
