"""Static dependency analysis of notebook cells: which names a cell reads and writes.

The notebook is reactive: when a cell changes, every cell that reads a name it writes is
re-run.  This module answers the per-cell half of that question; ``graph.py`` turns the
answers into a dependency graph.  It is pure (no I/O) and runs on every cell save, so it is
built for speed and robustness rather than perfect precision:

* Python source is parsed **once** with :mod:`ast` and walked **once**.  The walk is
  iterative (an explicit work stack), so deeply nested code such as ``1+1+...+1`` cannot hit
  the interpreter's recursion limit.  Python scoping needs to know a function's local names
  before resolving the names it loads; instead of a second pass, loads inside a function are
  collected and resolved when the walk leaves the function, which is equivalent because
  function locals are static in Python.
* IPython syntax (``%magic``, ``%%cell_magic``, ``!shell``, ``name?`` help) is rewritten
  into the Python it amounts to first (``app.notebooks.magics``), so one magic line does
  not hide the rest of the cell; only code that is not valid Python is rewritten.
* Anything that still cannot be parsed (``SyntaxError``, ``ValueError`` for NUL bytes, a
  ``RecursionError``/``MemoryError`` from the parser on pathological input, an opaque
  cell magic such as ``%%bash``) yields ``([], [])``: a half-typed cell must never break
  saving.  Warnings raised while
  parsing (e.g. invalid escape sequences) are silenced so that running with ``-W error``
  does not turn valid cells into "unparseable" ones and user code does not spam the logs.
  ``warnings.catch_warnings`` mutates process-global state, so parses are serialised by a
  lock (parsing holds the GIL anyway, so no parallelism is lost).

Semantics of ``writes`` (module-level bindings of the cell):

* Assignment targets, including tuple/list/starred unpacking and chained ``a = b = 1``;
  ``x.attr = ...`` and ``x[i] = ...`` are *reads* of ``x``, not writes.
* ``x: T = v`` writes ``x``; a bare annotation ``x: T`` does **not** write ``x``.
* ``x += 1`` reads ``x`` (unless bound earlier in the cell) and writes it.
* ``import a.b`` binds ``a``; ``import a.b as c`` binds ``c``; ``from m import x as y``
  binds ``y``; ``from m import *`` binds nothing (unknowable statically).
* ``def``/``async def``/``class`` names, ``for``/``async for`` targets, ``with ... as``
  targets, ``except E as e`` names, match-statement captures (``case Point(x=a)``,
  ``case [a, *rest]``, ``case {"k": v, **kw}``, ``case _ as z``).
* Walrus ``:=`` binds in the nearest enclosing non-comprehension scope (PEP 572), so a
  walrus in a module-level comprehension is a write of the cell.
* Inside a function (or class body), an assignment to a name declared ``global`` is a write
  of the cell.  A ``global`` statement at module level is a no-op.
* ``del x`` is neither a read nor a write (the cell does not "un-write" ``x``).
* Conditional bindings count: after ``if c: x = 1``, ``x`` is written and a later ``x`` in
  the cell is not a read.  We do not track control flow; the reactive runtime cannot know
  which branch runs either, and treating the name as local avoids spurious edges.

Semantics of ``reads`` (names the cell needs from other cells):

* A name loaded at module level (or in a class body, comprehension, decorator, default
  value or annotation, which all run immediately) is a read if the cell has not bound it
  *earlier in execution order*: ``y = x + 1; x = 2`` reads ``x``; ``x = 2; y = x`` does not.
  Execution order, not source order, is followed (``x = x + 1`` reads ``x``; a ``for`` loop's
  iterable is evaluated before its target is bound).
* Function and lambda bodies run later, so a free name used in them is a read only if the
  cell writes it **nowhere** at module level: ``def f(): return g()`` followed by
  ``def g(): ...`` reads nothing.
* Standard Python scoping is honoured: parameters and locals of a function (and of its
  enclosing functions, i.e. closures) are not reads; comprehension iteration variables are
  local to the comprehension; class-body names are invisible to methods and to
  comprehensions in the class body (except the first iterable, evaluated in the class).
* A name assigned only through ``global`` inside a function is a write, but a module-level
  load of it in the same cell is still a read: the function may never be called.
* Generator expressions are treated like other comprehensions (evaluated immediately) even
  though their body runs lazily.
* Annotations are treated as evaluated (module, class, parameters, return) even under
  ``from __future__ import annotations``; annotations of local variables inside function
  bodies are never evaluated by Python and are ignored.
* Python builtins (``dir(builtins)``) are never reads, even if another cell shadows them.
* Attribute names are not variable names: ``np.array`` reads ``np`` only.

SQL cells: reads are the ``str.format``-style ``{name}`` placeholders (``{name.attr}``,
``{name[0]}``, ``{name!r}`` and ``{name:spec}`` read ``name``); ``{{``/``}}`` are escaped
literal braces.  Format specs containing nested ``{...}`` are not recognised.  SQL cells
write nothing.  Every other cell type (markdown, raw, unknown; matched case-sensitively)
reads and writes nothing.
"""

from __future__ import annotations

import ast
import builtins
import re
import threading
import warnings
from typing import Any

from app.notebooks.magics import LOCAL_SCOPE, python_source

__all__ = ["analyze"]

_BUILTINS = frozenset(dir(builtins))
_PARSE_LOCK = threading.Lock()  # guards the process-global warning filters during parsing

# str.format-style replacement fields; ``{{`` / ``}}`` are consumed first so they never start
# (or end) a placeholder, which also handles ``{{{x}}}`` (literal brace, field x, brace).
_SQL_PLACEHOLDER = re.compile(
    r"\{\{|\}\}"
    r"|\{([A-Za-z_][A-Za-z0-9_]*)"  # the variable name
    r"(?:\.[A-Za-z_][A-Za-z0-9_]*|\[[^\[\]{}]*\])*"  # .attr / [index] accessors
    r"(?:![A-Za-z])?"  # !r conversion
    r"(?::[^{}]*)?"  # :format-spec
    r"\}"
)

# Scope kinds.
_MODULE = 0
_CLASS = 1
_FUNCTION = 2
_COMPREHENSION = 3

# Work-stack operations (besides plain AST nodes, which mean "visit this node").
_LOAD = 0  # load a name in the current scope
_BIND = 1  # bind a name in the current scope
_WALRUS = 2  # bind a name in the nearest non-comprehension scope
_ENTER = 3  # enter the given scope
_EXIT = 4  # leave the current scope
_LOCAL = 5  # make a name local to a function without binding it at module level

# Child nodes that never contain names; skipping them keeps the walk lean.
_LEAVES = (ast.expr_context, ast.operator, ast.unaryop, ast.cmpop, ast.boolop)


class _Scope:
    """One Python scope.

    ``names`` are the names bound so far (module, class: execution order matters) or all
    names bound anywhere in the scope (function, comprehension: static locals).  ``loads``
    collects a function's unresolved loads until the walk leaves it.
    """

    __slots__ = ("globals", "kind", "loads", "names", "nonlocals", "parent")

    def __init__(self, kind: int, names: set[str] | None = None) -> None:
        self.kind = kind
        self.parent: _Scope | None = None
        self.names: set[str] = names if names is not None else set()
        self.globals: set[str] = set()
        self.nonlocals: set[str] = set()
        self.loads: set[str] = set()


def analyze(cell_type: str, code: str) -> tuple[list[str], list[str]]:
    """Return ``(reads, writes)`` of a cell, each a sorted list of unique names.

    Never raises for any ``code``; see the module docstring for the exact semantics.
    """
    if cell_type == "python":
        return _analyze_python(code)
    if cell_type == "sql":
        return _analyze_sql(code)
    return [], []


def _analyze_sql(code: str) -> tuple[list[str], list[str]]:
    names = {m.group(1) for m in _SQL_PLACEHOLDER.finditer(code) if m.group(1) is not None}
    return sorted(names), []


def _analyze_python(code: str) -> tuple[list[str], list[str]]:
    tree = _parse(code)
    if tree is None:
        # Not Python: perhaps IPython (magics, shell commands, help), which Jupyter
        # cells often are.  Valid Python is never IPython syntax, so this costs nothing
        # on the usual path.
        try:
            source = python_source(code)
        except RecursionError:  # magics nested thousands deep
            source = None
        if source is None or source == code:
            return [], []
        tree = _parse(source)
        if tree is None:
            return [], []
    walker = _Walker()
    walker.run(tree)
    writes = walker.writes - {LOCAL_SCOPE}
    reads = walker.reads | (walker.deferred - writes)
    return sorted(reads - _BUILTINS), sorted(writes)


def _parse(code: str) -> ast.Module | None:
    try:
        with _PARSE_LOCK, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError, OverflowError):
        return None


def _children(node: ast.AST) -> list[Any]:
    """The AST children of ``node`` in field order (which is evaluation order by default)."""
    out: list[Any] = []
    for field in node._fields:
        value = getattr(node, field, None)
        if isinstance(value, list):
            out.extend(item for item in value if isinstance(item, ast.AST))
        elif isinstance(value, ast.AST) and not isinstance(value, _LEAVES):
            out.append(value)
    return out


def _target_names(target: ast.AST) -> set[str]:
    """Names bound by an assignment target (e.g. a comprehension's ``for`` target)."""
    return {
        sub.id
        for sub in ast.walk(target)
        if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store)
    }


class _Walker:
    """Single iterative walk over a module, in execution order."""

    def __init__(self) -> None:
        self.module = _Scope(_MODULE)
        self.scope = self.module
        self.reads: set[str] = set()  # loaded at module level before being bound
        self.deferred: set[str] = set()  # free in function bodies; reads unless written
        self.writes: set[str] = set()
        self.handlers: dict[type, Any] = {
            ast.Name: self._name,
            ast.FunctionDef: self._function,
            ast.AsyncFunctionDef: self._function,
            ast.Lambda: self._lambda,
            ast.ClassDef: self._class,
            ast.Assign: self._assign,
            ast.AugAssign: self._aug_assign,
            ast.AnnAssign: self._ann_assign,
            ast.For: self._for,
            ast.AsyncFor: self._for,
            ast.NamedExpr: self._walrus,
            ast.ListComp: self._comprehension,
            ast.SetComp: self._comprehension,
            ast.GeneratorExp: self._comprehension,
            ast.DictComp: self._comprehension,
            ast.Dict: self._dict,
            ast.Import: self._import,
            ast.ImportFrom: self._import,
            ast.Global: self._global,
            ast.Nonlocal: self._nonlocal,
            ast.ExceptHandler: self._except_handler,
            ast.MatchAs: self._match_as,
            ast.MatchStar: self._match_star,
            ast.MatchMapping: self._match_mapping,
        }

    # -- driver -------------------------------------------------------------------------------

    def run(self, tree: ast.Module) -> None:
        stack: list[Any] = list(reversed(tree.body))
        handlers = self.handlers
        while stack:
            item = stack.pop()
            if type(item) is tuple:
                op, arg = item
                if op == _LOAD:
                    self._load(arg)
                elif op == _BIND:
                    self._bind(arg, self.scope)
                elif op == _WALRUS:
                    scope = self.scope
                    while scope.kind == _COMPREHENSION and scope.parent is not None:
                        scope = scope.parent
                    self._bind(arg, scope)
                elif op == _ENTER:
                    arg.parent = self.scope
                    self.scope = arg
                elif op == _EXIT:
                    self._exit()
                else:  # _LOCAL
                    self._make_local(arg)
                continue
            handler = handlers.get(type(item))
            children = _children(item) if handler is None else handler(item)
            if children:
                children.reverse()
                stack.extend(children)

    # -- name resolution ----------------------------------------------------------------------

    def _load(self, name: str) -> None:
        """A name loaded directly in the current scope."""
        scope = self.scope
        kind = scope.kind
        if kind == _FUNCTION:
            scope.loads.add(name)
        elif kind == _CLASS:
            if name in scope.globals:
                self._resolve(self.module, name, deferred=False)
            elif name not in scope.names:
                self._escape(scope, name, deferred=False)
        else:
            self._resolve(scope, name, deferred=False)

    def _escape(self, scope: _Scope, name: str, *, deferred: bool) -> None:
        """Pass an unresolved load to the enclosing scope; class scopes are skipped."""
        parent = scope.parent
        while parent is not None and parent.kind == _CLASS:
            parent = parent.parent
        if parent is not None:
            self._resolve(parent, name, deferred=deferred)

    def _resolve(self, scope: _Scope, name: str, *, deferred: bool) -> None:
        """Resolve a load arriving in ``scope`` (never a class scope)."""
        while True:
            if scope.kind == _MODULE:
                if deferred:
                    self.deferred.add(name)
                elif name not in scope.names:
                    self.reads.add(name)
                return
            if scope.kind == _FUNCTION:
                scope.loads.add(name)  # resolved statically when the function is left
                return
            if name in scope.names:  # comprehension-local
                return
            parent = scope.parent
            while parent is not None and parent.kind == _CLASS:
                parent = parent.parent
            if parent is None:
                return
            scope = parent

    def _bind(self, name: str, scope: _Scope) -> None:
        if name in scope.globals:
            self.writes.add(name)
            if scope.kind == _CLASS:  # class bodies run now, so the name is bound from here on
                self.module.names.add(name)
            return
        if name in scope.nonlocals:
            return
        scope.names.add(name)
        if scope.kind == _MODULE:
            self.writes.add(name)

    def _make_local(self, name: str) -> None:
        """``del x`` / bare ``x: T`` make ``x`` local in a function; elsewhere no effect."""
        scope = self.scope
        if scope.kind == _FUNCTION and name not in scope.globals and name not in scope.nonlocals:
            scope.names.add(name)

    def _exit(self) -> None:
        scope = self.scope
        parent = scope.parent
        assert parent is not None  # the module scope is never exited
        self.scope = parent
        if scope.kind != _FUNCTION:
            return
        # The function body runs later: its free names are deferred loads.
        for name in scope.loads:
            if name in scope.globals:
                self._resolve(self.module, name, deferred=True)
            elif name not in scope.names:
                self._escape(scope, name, deferred=True)

    # -- node handlers: return children to visit, in execution order --------------------------

    def _name(self, node: ast.Name) -> list[Any]:
        ctx = type(node.ctx)
        if ctx is ast.Load:
            self._load(node.id)
        elif ctx is ast.Store:
            self._bind(node.id, self.scope)
        else:  # ast.Del
            self._make_local(node.id)
        return []

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> list[Any]:
        args = node.args
        # Decorators, defaults and annotations are evaluated now, in the enclosing scope.
        work: list[Any] = [*node.decorator_list, *args.defaults]
        work.extend(d for d in args.kw_defaults if d is not None)
        work.extend(a.annotation for a in _all_args(args) if a.annotation is not None)
        if node.returns is not None:
            work.append(node.returns)
        work.append((_ENTER, _Scope(_FUNCTION, {a.arg for a in _all_args(args)})))
        work.extend(node.body)
        work.append((_EXIT, None))
        work.append((_BIND, node.name))
        return work

    def _lambda(self, node: ast.Lambda) -> list[Any]:
        args = node.args
        work: list[Any] = [*args.defaults]
        work.extend(d for d in args.kw_defaults if d is not None)
        work.append((_ENTER, _Scope(_FUNCTION, {a.arg for a in _all_args(args)})))
        work.append(node.body)
        work.append((_EXIT, None))
        return work

    def _class(self, node: ast.ClassDef) -> list[Any]:
        work: list[Any] = [*node.decorator_list, *node.bases, *node.keywords]
        work.append((_ENTER, _Scope(_CLASS)))
        work.extend(node.body)
        work.append((_EXIT, None))
        work.append((_BIND, node.name))
        return work

    def _assign(self, node: ast.Assign) -> list[Any]:
        return [node.value, *node.targets]

    def _aug_assign(self, node: ast.AugAssign) -> list[Any]:
        target = node.target
        if isinstance(target, ast.Name):
            return [(_LOAD, target.id), node.value, target]
        return [target, node.value]  # x.a += 1 / x[i] += 1: loads of x (and i)

    def _ann_assign(self, node: ast.AnnAssign) -> list[Any]:
        work: list[Any] = []
        if node.value is not None:
            work.append(node.value)
        target = node.target
        if not isinstance(target, ast.Name):
            work.append(target)  # x.a: T [= v] evaluates x
        elif node.value is not None:
            work.append(target)
        else:
            work.append((_LOCAL, target.id))  # bare `x: T`: local in a function, else nothing
        if self.scope.kind != _FUNCTION:  # local-variable annotations are never evaluated
            work.append(node.annotation)
        return work

    def _for(self, node: ast.For | ast.AsyncFor) -> list[Any]:
        return [node.iter, node.target, *node.body, *node.orelse]

    def _walrus(self, node: ast.NamedExpr) -> list[Any]:
        target = node.target
        if isinstance(target, ast.Name):
            return [node.value, (_WALRUS, target.id)]
        return [node.value]

    def _comprehension(
        self, node: ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp
    ) -> list[Any]:
        generators = node.generators
        names: set[str] = set()
        for gen in generators:
            names |= _target_names(gen.target)
        # The first iterable is evaluated in the enclosing scope, the rest in the new one.
        work: list[Any] = [generators[0].iter, (_ENTER, _Scope(_COMPREHENSION, names))]
        for index, gen in enumerate(generators):
            if index:
                work.append(gen.iter)
            work.append(gen.target)
            work.extend(gen.ifs)
        if isinstance(node, ast.DictComp):
            work.extend((node.key, node.value))
        else:
            work.append(node.elt)
        work.append((_EXIT, None))
        return work

    def _dict(self, node: ast.Dict) -> list[Any]:
        work: list[Any] = []
        for key, value in zip(node.keys, node.values, strict=False):
            if key is not None:  # None marks a ``**mapping`` entry
                work.append(key)
            work.append(value)
        return work

    def _import(self, node: ast.Import | ast.ImportFrom) -> list[Any]:
        from_import = isinstance(node, ast.ImportFrom)
        for alias in node.names:
            if alias.asname is not None:
                self._bind(alias.asname, self.scope)
            elif alias.name != "*":
                self._bind(alias.name if from_import else alias.name.split(".")[0], self.scope)
        return []

    def _global(self, node: ast.Global) -> list[Any]:
        if self.scope.kind != _MODULE:
            self.scope.globals.update(node.names)
        return []

    def _nonlocal(self, node: ast.Nonlocal) -> list[Any]:
        if self.scope.kind != _MODULE:
            self.scope.nonlocals.update(node.names)
        return []

    def _except_handler(self, node: ast.ExceptHandler) -> list[Any]:
        work: list[Any] = []
        if node.type is not None:
            work.append(node.type)
        if node.name is not None:
            work.append((_BIND, node.name))
        work.extend(node.body)
        return work

    def _match_as(self, node: ast.MatchAs) -> list[Any]:
        work: list[Any] = []
        if node.pattern is not None:
            work.append(node.pattern)
        if node.name is not None:
            work.append((_BIND, node.name))
        return work

    def _match_star(self, node: ast.MatchStar) -> list[Any]:
        if node.name is not None:
            self._bind(node.name, self.scope)
        return []

    def _match_mapping(self, node: ast.MatchMapping) -> list[Any]:
        work: list[Any] = [*node.keys, *node.patterns]
        if node.rest is not None:
            work.append((_BIND, node.rest))
        return work


def _all_args(args: ast.arguments) -> list[ast.arg]:
    """Every parameter of a signature, in order."""
    out = [*args.posonlyargs, *args.args]
    if args.vararg is not None:
        out.append(args.vararg)
    out.extend(args.kwonlyargs)
    if args.kwarg is not None:
        out.append(args.kwarg)
    return out
