"""IPython syntax turned into plain Python for the dependency analysis (pure, no I/O).

Cells imported from Jupyter are IPython, not Python: ``%matplotlib inline``,
``files = !ls {folder}``, ``df?``, ``%%time``.  One such line used to make the
whole cell unparseable, so a cell's reads and writes vanished from the graph.
IPython itself (``IPython.core.inputtransformer2``) rewrites these lines into
``get_ipython().…`` calls before compiling; we follow its rules for *which*
lines are IPython syntax, but rewrite them into Python that says what the line
does to names, because ``run_line_magic('time', 'y = f(x)')`` hides that
``y`` is written and ``x`` read.  IPython is not a dependency: it is large, and
its transformers' output would still need this second rewrite.

The rules (the tests compare the line detection with IPython's own):

* Cleanup, as IPython: leading blank lines go; when the first line is
  indented, that indentation is removed from every line.
* ``%%name`` on the first line is a cell magic.  ``%%time``, ``%%prun``,
  ``%%debug`` and ``%%capture [var]`` run their body as the cell's code (the
  body is analysed, and ``var`` is written); ``%%timeit [setup]`` runs setup
  and body inside a function (reads only: its assignments are local).  Every
  other cell magic (``%%sql``, ``%%bash``, ``%%html``, ``%%writefile`` …) runs
  something that is not this cell's Python: the cell is opaque (nothing read,
  nothing written).
* IPython syntax counts only at the start of a logical line (never inside a
  string, brackets or after a backslash continuation), at any indentation, and
  a line ending in ``\\`` continues the command on the next line:

  - ``!cmd``, ``!!cmd``, ``%magic args`` (also ``%%x`` after the first line):
    no names, except the ``{expression}`` and ``$name`` IPython expands into
    the command (reads).  ``%time``/``%prun`` run their statement in the
    notebook (read and write as that statement); ``%timeit`` runs it in a
    function (reads only).
  - ``target = !cmd`` and ``target = %magic args``: the same, and ``target``
    is written.
  - help: ``?name``, ``??name``, ``name?``, ``name??`` (a one-line logical
    line ending in ``?``): nothing.
  - autocall: ``/f a b`` is ``f(a, b)``; ``,f a b`` and ``;f a b`` read ``f``.

Known approximations: ``{a,b}`` (a shell brace list) reads ``a`` and ``b``;
line magics that bind names by themselves (``%store -r x``) are not known.
"""

from __future__ import annotations

import ast
import re

__all__ = ["LOCAL_SCOPE", "python_source"]

# Name of the class that stands for a function scope (``%timeit``): its body runs
# now, in order, but binds nothing at module level.  The analysis drops the name.
LOCAL_SCOPE = "_cellar_local_scope_"

# Cell magics whose body is the cell's own Python, run in the notebook's namespace.
_BODY_MAGICS = frozenset({"time", "prun", "debug", "capture"})
# Line magics whose argument is a Python statement run in the notebook's namespace,
# with the options each takes (getopt style: a letter before ``:`` takes a value).
_STATEMENT_MAGICS = {"time": "", "prun": "D:l:rs:T:q", "debug": "b:"}
_TIMEIT_OPTIONS = "n:r:tcp:qo"
_ESCAPES = ("!!", "??", "!", "%", "?", "/", ",", ";")
_ESCAPE_CHARS = frozenset("!%?/,;")

# Characters that change the scanner's state outside strings.
_SPECIAL = re.compile(r"""[#'"\\()\[\]{}]""")
_EXPANSION = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|\$\$|\$([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)")
_ASSIGN = re.compile(r"([^=]*[^=!<>+\-*/%&|^@:\s])\s*=\s*(?=[!%])")


def python_source(code: str) -> str | None:
    """``code`` with its IPython syntax rewritten as Python; ``None`` for an opaque cell."""
    lines = code.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    while lines and not lines[0].strip():
        del lines[0]
    if not lines:
        return ""
    first = lines[0]
    indent = first[: len(first) - len(first.lstrip())]
    if indent:
        lines = [line[len(indent) :] if line.startswith(indent) else line for line in lines]
    if lines[0].startswith("%%"):
        return _cell_magic(lines)
    return "\n".join(_rewrite_lines(lines))


def _cell_magic(lines: list[str]) -> str | None:
    name, _, line = lines[0][2:].partition(" ")
    name = name.strip()
    body = python_source("\n".join(lines[1:]))
    if body is None:
        return None
    if name in _BODY_MAGICS:
        if name == "capture":
            names = [word for word in line.split() if not word.startswith("-")]
            if names and names[-1].isidentifier():
                return f"{body}\n{names[-1]} = None"
        return body
    if name == "timeit":
        setup = python_source(_strip_options(line, _TIMEIT_OPTIONS))
        if setup is None:
            return None
        return _local_scope(f"{setup}\n{body}")
    return None


def _rewrite_lines(lines: list[str]) -> list[str]:
    """Rewrite the IPython lines of a cell; Python lines are kept as they are."""
    out: list[str] = []
    depth, quote, continued = 0, "", False
    index = 0
    while index < len(lines):
        line = lines[index]
        if depth == 0 and not quote and not continued and _may_be_ipython(line):
            end = index
            while lines[end].rstrip().endswith("\\") and end + 1 < len(lines):
                end += 1
            rewritten = _rewrite_logical_line(lines[index : end + 1])
            if rewritten is not None:
                out.extend(rewritten)
                index = end + 1
                continue
        depth, quote, continued, _ = _scan(line, depth, quote)
        out.append(line)
        index += 1
    return out


def _may_be_ipython(line: str) -> bool:
    """A cheap test that lets most Python lines skip the rules."""
    stripped = line.lstrip()
    return (
        stripped[:1] in _ESCAPE_CHARS
        or "?" in stripped
        or ("=" in stripped and ("!" in stripped or "%" in stripped))
    )


def _rewrite_logical_line(lines: list[str]) -> list[str] | None:
    """The Python for one logical line if it is IPython syntax, else ``None``."""
    first = lines[0]
    stripped = first.lstrip()
    indent = first[: len(first) - len(stripped)]
    # IPython joins a continued command: each ``\`` and its newline become nothing.
    command = "".join([part.rstrip()[:-1] for part in lines[:-1]] + [lines[-1].rstrip()])
    command = command[len(indent) :]
    for escape in _ESCAPES:
        if stripped.startswith(escape):
            return _indented(indent, _escaped(escape, command[len(escape) :]))
    match = _ASSIGN.match(stripped)
    if match is not None and _is_target(match.group(1)):
        rest = command[match.end() :]
        escape = "!!" if rest.startswith("!!") else rest[0]
        value = _escaped(escape, rest[len(escape) :])
        return _indented(indent, f"{value}\n{match.group(1)} = None")
    if len(lines) == 1:
        depth, quote, continued, last = _scan(first, 0, "")
        if last == "?" and depth == 0 and not quote and not continued:
            return _indented(indent, "pass")  # ``name?``: help
    return None


def _escaped(escape: str, rest: str) -> str:
    """Python with the effect on names of ``<escape><rest>``."""
    if escape in ("?", "??"):
        return "pass"
    if escape in ("/", ",", ";"):
        function, _, arguments = rest.strip().partition(" ")
        call = f"{function}({', '.join(arguments.split())})" if escape == "/" else function
        return call if _parses(call) else "pass"
    if escape == "%":
        name, _, arguments = rest.partition(" ")
        if name in _STATEMENT_MAGICS:
            statement = python_source(_strip_options(arguments, _STATEMENT_MAGICS[name]))
            return statement if statement and _parses(statement) else "pass"
        if name == "timeit":
            statement = python_source(_strip_options(arguments, _TIMEIT_OPTIONS))
            if statement and _parses(statement):
                return _local_scope(statement)
            return "pass"
        rest = arguments
    expressions = _expansions(rest)
    return f"({', '.join(expressions)},)" if expressions else "pass"


def _expansions(command: str) -> list[str]:
    """The expressions IPython substitutes into a command: ``{expr}`` and ``$name``."""
    found: list[str] = []
    for match in _EXPANSION.finditer(command):
        braced, dollar = match.group(1), match.group(2)
        if dollar is not None:
            found.append(dollar)
        elif braced is not None and braced.strip():
            # ``{x!r}`` and ``{x:>10}`` format x.
            for candidate in (braced, re.split(r"![rsa]$|:", braced, maxsplit=1)[0]):
                if _parses(f"({candidate})"):
                    found.append(f"({candidate})")
                    break
    return found


def _strip_options(arguments: str, spec: str) -> str:
    """``arguments`` without the leading ``-x`` options a magic takes (getopt style)."""
    if not spec:
        return arguments.strip()
    takes_value = {spec[i - 1] for i, char in enumerate(spec) if char == ":" and i}
    position = 0
    pending_value = False
    for match in re.finditer(r"\S+", arguments):
        word = match.group()
        if pending_value:
            pending_value = False
        elif word.startswith("--"):
            pending_value = "=" not in word
        elif word.startswith("-") and len(word) > 1:
            for offset, letter in enumerate(word[1:], start=1):
                if letter in takes_value:
                    pending_value = offset == len(word) - 1
                    break
        else:
            return arguments[match.start() :]
        position = match.end()
    return arguments[position:].strip()


def _local_scope(body: str) -> str:
    """``body`` run now but inside its own scope (a class body: executed in order)."""
    inner = "\n".join(f"    {line}" for line in body.split("\n"))
    return f"class {LOCAL_SCOPE}:\n{inner}\n    pass"


def _indented(indent: str, source: str) -> list[str]:
    return [indent + line for line in source.split("\n")]


def _is_target(text: str) -> bool:
    try:
        tree = ast.parse(f"{text} = None")
    except (SyntaxError, ValueError):
        return False
    return len(tree.body) == 1 and isinstance(tree.body[0], ast.Assign)


def _parses(source: str) -> bool:
    try:
        ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError, OverflowError):
        return False
    return True


def _scan(line: str, depth: int, quote: str) -> tuple[int, str, bool, str]:
    """Python's lexical state after ``line``, starting in ``(depth, quote)``.

    Returns ``(bracket depth, open string quote or "", continued with a backslash,
    last significant character)``: enough to tell where logical lines start.
    """
    position, length, last = 0, len(line), ""
    search = _SPECIAL.search
    while position < length:
        if quote:
            end = _string_end(line, position, quote)
            if end < 0:
                if len(quote) == 1 and not line.endswith("\\"):
                    quote = ""  # an unterminated one-line string: a syntax error anyway
                return depth, quote, False, last
            position, quote, last = end, "", line[end - 1]
            continue
        match = search(line, position)
        tail = line[position : match.start() if match else length].strip()
        if tail:
            last = tail[-1]
        if match is None:
            break
        char = match.group()
        position = match.end()
        if char == "#":
            break
        if char in "\"'":
            triple = line.startswith(char * 3, match.start())
            quote = char * 3 if triple else char
            position = match.start() + len(quote)
        elif char in "([{":
            depth, last = depth + 1, char
        elif char in ")]}":
            depth, last = max(depth - 1, 0), char
        elif position == length:  # a backslash ending the line
            return depth, quote, True, last
    return depth, quote, False, last


def _string_end(line: str, position: int, quote: str) -> int:
    """Index just after the closing ``quote`` from ``position``, or -1 if none here."""
    while True:
        found = line.find(quote, position)
        escape = line.find("\\", position)
        if found < 0:
            return -1
        if 0 <= escape < found:
            position = escape + 2
            continue
        return found + len(quote)
