"""Example tests for ``app.notebooks.analysis.analyze``: one per binding form and scope rule."""

from __future__ import annotations

import textwrap

import pytest

from app.notebooks.analysis import analyze


def py(code: str) -> tuple[list[str], list[str]]:
    return analyze("python", textwrap.dedent(code))


# -- writes: binding forms ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "writes"),
    [
        ("x = 1", ["x"]),
        ("a = b = 1", ["a", "b"]),
        ("a, b = 1, 2", ["a", "b"]),
        ("[a, (b, c)] = 1, (2, 3)", ["a", "b", "c"]),
        ("first, *rest = [1, 2, 3]", ["first", "rest"]),
        ("x: int = 1", ["x"]),
        ("x: int", []),
        ("import os", ["os"]),
        ("import os.path", ["os"]),
        ("import os.path as osp", ["osp"]),
        ("import a, b.c as d", ["a", "d"]),
        ("from os import path", ["path"]),
        ("from os import path as p, sep", ["p", "sep"]),
        ("from os import *", []),
        ("from . import sibling", ["sibling"]),
        ("def f(): pass", ["f"]),
        ("async def f(): pass", ["f"]),
        ("class C: pass", ["C"]),
        ("for i in []: pass", ["i"]),
        ("for i, (j, k) in []: pass", ["i", "j", "k"]),
        ("async def g():\n    async for i in y: pass", ["g"]),  # async-for target is local to g
        ("with open('f') as fh: pass", ["fh"]),
        ("with open('a') as a, open('b') as (b, c): pass", ["a", "b", "c"]),
        ("(y := 5)", ["y"]),
        ("print(y := 5)", ["y"]),
        ("try:\n    pass\nexcept ValueError as err:\n    pass", ["err"]),
        ("try:\n    pass\nexcept* ValueError as eg:\n    pass", ["eg"]),
        ("while (line := 1) > 2: pass", ["line"]),
    ],
)
def test_binding_forms_are_writes(code: str, writes: list[str]) -> None:
    assert py(code)[1] == writes


def test_attribute_and_subscript_targets_are_reads_not_writes() -> None:
    assert py("obj.attr = 1\nitems[key] = 2") == (["items", "key", "obj"], [])


def test_augmented_assignment_reads_and_writes() -> None:
    assert py("x += 1") == (["x"], ["x"])
    assert py("x = 0\nx += 1") == ([], ["x"])
    assert py("obj.count += 1") == (["obj"], [])
    assert py("items[i] -= step") == (["i", "items", "step"], [])


def test_bare_annotation_is_not_a_write_but_evaluates_its_annotation() -> None:
    assert py("x: MyType") == (["MyType"], [])
    assert py("x: int\nprint(x)") == (["x"], [])
    assert py("x: MyType = make()") == (["MyType", "make"], ["x"])


def test_async_for_and_async_with_targets() -> None:
    # Top-level async statements parse (notebooks allow top-level await): they bind normally.
    code = """
    async for item in source():
        pass
    async with lock() as held:
        pass
    """
    assert py(code) == (["lock", "source"], ["held", "item"])
    code = """
    async def main():
        async for item in source():
            total = item
        async with lock() as held:
            use(held, total)
    """
    assert py(code) == (["lock", "source", "use"], ["main"])


def test_walrus_inside_comprehension_writes_the_cell() -> None:
    assert py("values = [last := f(v) for v in data]\nprint(last)") == (
        ["data", "f"],
        ["last", "values"],
    )


def test_walrus_inside_function_comprehension_is_local_to_function() -> None:
    assert py("def f():\n    [y := v for v in data]\n    return y") == (["data"], ["f"])


def test_except_handler_name_is_written_and_not_read() -> None:
    assert py("try:\n    go()\nexcept Boom as e:\n    log(e)") == (["Boom", "go", "log"], ["e"])


@pytest.mark.parametrize(
    ("pattern", "writes"),
    [
        ("Point(x=a)", ["a"]),
        ("Point(a, y=b)", ["a", "b"]),
        ("[a, *rest]", ["a", "rest"]),
        ("[a, *_]", ["a"]),
        ('{"k": v, **kw}', ["kw", "v"]),
        ("_ as z", ["z"]),
        ("(1 | 2) as n", ["n"]),
        ("capture", ["capture"]),
        ("_", []),
        ("[Point(x=0, y=a), (b, c)]", ["a", "b", "c"]),
    ],
)
def test_match_capture_names_are_writes(pattern: str, writes: list[str]) -> None:
    reads, got = py(f"match subject:\n    case {pattern}:\n        pass")
    assert got == writes
    assert "subject" in reads


def test_match_reads_class_patterns_values_and_guards() -> None:
    code = """
    match cmd:
        case Point(x=a) if a > limit:
            pass
        case Color.RED:
            pass
        case {Keys.K: value}:
            pass
    """
    assert py(code) == (["Color", "Keys", "Point", "cmd", "limit"], ["a", "value"])


def test_del_is_neither_read_nor_write() -> None:
    assert py("del x") == ([], [])
    assert py("x = 1\ndel x") == ([], ["x"])
    assert py("del x.attr, y[0]") == (["x", "y"], [])


# -- reads: execution order --------------------------------------------------------------------


def test_read_before_write_is_a_read() -> None:
    assert py("y = x + 1\nx = 2") == (["x"], ["x", "y"])


def test_write_before_read_is_not_a_read() -> None:
    assert py("x = 2\ny = x") == ([], ["x", "y"])


def test_assignment_value_is_evaluated_before_target() -> None:
    assert py("x = x + 1") == (["x"], ["x"])


def test_for_iterable_is_evaluated_before_target() -> None:
    assert py("for x in x: pass") == (["x"], ["x"])


def test_loop_body_read_before_later_binding() -> None:
    assert py("for i in r:\n    print(acc)\n    acc = i") == (["acc", "r"], ["acc", "i"])


def test_conditional_binding_counts_as_written() -> None:
    assert py("if cond:\n    x = 1\nprint(x)") == (["cond"], ["x"])
    assert py("if cond:\n    pass\nelse:\n    x = 1\nx") == (["cond"], ["x"])


def test_builtins_are_never_reads() -> None:
    assert py("print(len(range(3)), ValueError, __name__)") == ([], [])
    assert py("def f():\n    return sorted(open('x'))") == ([], ["f"])


def test_shadowed_builtin_is_written_not_read() -> None:
    assert py("list = [1]\nlist.append(2)") == ([], ["list"])


def test_attributes_are_not_names() -> None:
    assert py("np.array(x.shape)") == (["np", "x"], [])


def test_sql_and_python_keyword_names_in_strings_are_ignored() -> None:
    assert py("s = 'x + y'\nf = f'{z}'") == (["z"], ["f", "s"])


# -- reads: scopes -----------------------------------------------------------------------------


def test_function_body_free_name_is_a_read() -> None:
    assert py("def f():\n    return helper()") == (["helper"], ["f"])


def test_function_body_free_name_written_later_in_cell_is_not_a_read() -> None:
    assert py("def f():\n    return g()\ndef g():\n    return 1") == ([], ["f", "g"])
    assert py("def f():\n    return limit\nlimit = 3") == ([], ["f", "limit"])


def test_function_parameters_and_locals_are_not_reads() -> None:
    code = """
    def f(a, /, b, *args, c, d=1, **kwargs):
        e = a + b + c + d
        for g in args:
            e += g
        return e, kwargs
    """
    assert py(code) == ([], ["f"])


def test_function_locals_are_static() -> None:
    # `x` is local to f because f assigns it (UnboundLocalError at run time, not a read).
    assert py("def f():\n    print(x)\n    x = 1") == ([], ["f"])


def test_function_locals_do_not_leak_to_module() -> None:
    assert py("def f():\n    x = 1\nprint(x)") == (["x"], ["f"])


def test_decorators_defaults_and_annotations_are_evaluated_immediately() -> None:
    code = """
    @register(app)
    def handler(req: Request, limit=DEFAULT, *, mode: Mode = FAST) -> Response:
        return req
    """
    assert py(code) == (
        ["DEFAULT", "FAST", "Mode", "Request", "Response", "app", "register"],
        ["handler"],
    )


def test_immediate_reads_respect_order_even_for_later_writes() -> None:
    assert py("@deco\ndef f(): pass\ndeco = 1") == (["deco"], ["deco", "f"])
    assert py("def f(x=default): pass\ndefault = 1") == (["default"], ["default", "f"])


def test_function_name_usable_in_its_own_body() -> None:
    assert py("def fact(n):\n    return 1 if n < 2 else n * fact(n - 1)") == ([], ["fact"])


def test_local_variable_annotations_in_functions_are_not_evaluated() -> None:
    assert py("def f():\n    y: LocalType = 1\n    z: Other\n    return y") == ([], ["f"])


def test_closures_resolve_to_enclosing_function() -> None:
    code = """
    def outer(p):
        x = 1
        def inner():
            return x + p + free
        return inner
    """
    assert py(code) == (["free"], ["outer"])


def test_nonlocal_refers_to_enclosing_function() -> None:
    code = """
    def outer():
        count = 0
        def bump():
            nonlocal count
            count += 1
        return bump
    """
    assert py(code) == ([], ["outer"])


def test_global_declaration_makes_function_assignments_module_writes() -> None:
    code = """
    def setup():
        global config, counter
        config = load()
        counter += 1
        local = 1
    """
    assert py(code) == (["load"], ["config", "counter", "setup"])


def test_global_declaration_reads_skip_enclosing_function() -> None:
    code = """
    def outer():
        x = 1
        def inner():
            global x
            return x
        return inner
    """
    assert py(code) == (["x"], ["outer"])


def test_global_written_only_in_function_is_still_read_at_module_level() -> None:
    assert py("def f():\n    global g\n    g = 1\nf()\nprint(g)") == (["g"], ["f", "g"])


def test_global_at_module_level_is_a_noop() -> None:
    assert py("global x\nx = 1\ny = x") == ([], ["x", "y"])


def test_lambda_is_a_deferred_scope() -> None:
    assert py("f = lambda a, b=dflt: a + b + free") == (["dflt", "free"], ["f"])
    assert py("f = lambda: later\nlater = 1") == ([], ["f", "later"])


def test_comprehension_variables_are_local() -> None:
    assert py("squares = [i * i for i in range(n)]\nprint(i)") == (["i", "n"], ["squares"])
    assert py("{k: v for k, v in pairs}") == (["pairs"], [])
    assert py("{s for s in items if s}") == (["items"], [])
    assert py("list(g for g in gen)") == (["gen"], [])
    assert py("[(a, b) for a in xs for b in a if b > cutoff]") == (["cutoff", "xs"], [])


def test_comprehension_free_names_are_immediate_reads() -> None:
    assert py("r = [scale * v for v in vs]\nscale = 2") == (["scale", "vs"], ["r", "scale"])
    assert py("scale = 2\nr = [scale * v for v in vs]") == (["vs"], ["r", "scale"])


def test_class_body_names_do_not_leak_into_methods() -> None:
    code = """
    class Config:
        limit = 10
        def get(self):
            return limit
    """
    assert py(code) == (["limit"], ["Config"])


def test_class_body_reads_are_immediate_and_ordered() -> None:
    code = """
    class A(Base, metaclass=Meta):
        x = 1
        y = x + outer
        z = [x for _ in range(3)]
        w = [i for i in x]
    """
    # `x` in the comprehension element skips the class scope; the first iterable does not.
    assert py(code) == (["Base", "Meta", "outer", "x"], ["A"])


def test_class_name_not_visible_in_its_own_bases() -> None:
    assert py("class A(A): pass") == (["A"], ["A"])


def test_nested_class_method_reads() -> None:
    code = """
    def factory(base):
        class Impl(base):
            attr = helper
            def run(self):
                return base, attr
        return Impl
    """
    assert py(code) == (["attr", "helper"], ["factory"])


def test_global_in_class_body_writes_module_name() -> None:
    assert py("class A:\n    global g\n    g = 1\nprint(g)") == ([], ["A", "g"])


# -- robustness --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "code",
    [
        "x = ",
        "def f(:\n    pass",
        "!ls",
        "%%bash\nx = 1",
        "print('unterminated",
        "a\x00b",
        "return 1\n)",
    ],
)
def test_unparseable_python_gives_nothing(code: str) -> None:
    assert analyze("python", code) == ([], [])


def test_deeply_nested_expression_does_not_raise() -> None:
    # A 2,000-deep tree parses; a recursive walker would exceed the recursion limit.
    assert analyze("python", "y = " + " + ".join(["x"] * 2_000)) == (["x"], ["y"])
    # Deeper trees make the parser itself give up: that is "unparseable", not a crash.
    assert analyze("python", "y = " + " + ".join(["x"] * 20_000)) == ([], [])
    assert analyze("python", "(" * 500 + ")" * 500) == ([], [])  # parser limit, not a crash


def test_invalid_escape_sequence_still_parses() -> None:
    assert analyze("python", r"pattern = '\d+'") == ([], ["pattern"])


def test_empty_code() -> None:
    assert analyze("python", "") == ([], [])
    assert analyze("sql", "") == ([], [])


def test_large_cell_is_analysed_whole() -> None:
    lines = [
        f"v{i} = f(v{i - 1}, [w for w in range({i})])\n"
        f"def g{i}(a, b=v{i}):\n    return a + b + v{i} + h\n"
        for i in range(1, 2_500)
    ]
    code = "".join(lines)
    assert len(code) > 128 * 1024
    reads, writes = analyze("python", code)
    assert reads == ["f", "h", "v0"]
    assert len(writes) == 2 * 2_499


# -- sql and other cell types ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "reads"),
    [
        ("select * from t where id = {user_id}", ["user_id"]),
        ("select {a}, {b}, {a}", ["a", "b"]),
        ("select {row.id}, {rows[0]}, {obj.a.b}", ["obj", "row", "rows"]),
        ("select {x!r}, {y:>10}", ["x", "y"]),
        ("select '{{literal}}'", []),
        ("select '{{{inner}}}'", ["inner"]),
        ("select '{{', {real}, '}}'", ["real"]),
        ("select '{\"json\": 1}', '{1}', '{}', '{a b}', '{_ok}'", ["_ok"]),
        ("select {unclosed", []),
        ("select {ünicode}", []),
        ("select 1", []),
    ],
)
def test_sql_placeholders(code: str, reads: list[str]) -> None:
    assert analyze("sql", code) == (reads, [])


@pytest.mark.parametrize("cell_type", ["markdown", "raw", "javascript", "", "Python"])
def test_other_cell_types_read_and_write_nothing(cell_type: str) -> None:
    assert analyze(cell_type, "x = y\n{z}") == ([], [])
