"""Rule conditions: Common Expression Language, checked at load and run as closures.

The text is parsed by cel-python's CEL grammar; this module then walks the tree
once, checks every name against the documented facts (``app.rules.facts``) and
every operator against the types of its operands, and builds a tree of plain
Python closures. Nothing is ever passed to ``eval`` or ``exec``, and only the
operators and functions listed here exist: an expression cannot reach any Python
object other than the facts it is given.

Why not cel-python's own evaluator: it interprets the tree on every call (about
1 ms an expression here), too slow for a rule set evaluated on each call step;
its faster runner generates Python source and ``exec``s it. The closures here
cost a few microseconds.
"""

from __future__ import annotations

import codecs
import math
import operator
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import lark
from celpy.celparser import CELParseError, CELParser

from app.rules.facts import FACT_TYPES, GROUPS, available

Facts = dict[str, dict[str, Any]]
_Tree = lark.Tree[lark.Token]
Closure = Callable[[Facts], Any]

# Limits, checked before the text is parsed (length, brackets) and before it is
# built (the parse tree's depth): a condition is a line or two, and a deep tree
# would exhaust Python's recursion limit in the builder or at run time.
MAX_EXPRESSION_CHARS = 500
MAX_BRACKET_DEPTH = 12
MAX_TREE_DEPTH = 200

# Static types: int, double, bool, string, null, list<string>, list<int>, list<double>,
# list<bool>, list<dyn> (an empty list literal), group:<name> (a fact group itself).
NUMBERS = frozenset({"int", "double"})


class ExpressionError(Exception):
    """An expression refused at load: ``kind`` is syntax, unknown_fact, type or limit."""

    def __init__(self, kind: str, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.line = line  # line inside the expression text (1 = its first line)


class EvaluationError(Exception):
    """An expression that failed on the facts of one event (division by zero, say)."""


@dataclass(frozen=True)
class Compiled:
    source: str
    type: str
    facts: frozenset[str]  # "group.name" of every fact the expression reads
    run: Closure

    def evaluate(self, facts: Facts) -> Any:
        try:
            return self.run(facts)
        except EvaluationError:
            raise
        except _RUN_ERRORS as exc:
            raise EvaluationError(f"{self.source!r}: {type(exc).__name__}: {exc}") from exc


# One CELParser per thread: its parse() keeps the text on the instance (the grammar
# itself is built once and shared), and files are checked in worker threads.
_PARSERS = threading.local()


def _parser() -> CELParser:
    parser: CELParser | None = getattr(_PARSERS, "parser", None)
    if parser is None:
        parser = _PARSERS.parser = CELParser()
    return parser


def _bracket_depth(source: str) -> int:
    """How deep ``( [ {`` nest, outside string literals (a quick scan of the text)."""
    depth = deepest = 0
    quote = ""
    escaped = False
    for char in source:
        if quote:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
        elif char in "([{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in ")]}":
            depth -= 1
    return deepest


def _tree_depth(tree: _Tree) -> int:
    """The parse tree's depth, walked without recursion."""
    deepest = 0
    stack: list[tuple[_Tree | lark.Token, int]] = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if isinstance(node, lark.Tree):
            stack.extend((child, depth + 1) for child in node.children)
    return deepest


_BRACKETS_TOO_DEEP = f"brackets nest more than {MAX_BRACKET_DEPTH} deep"
_TREE_TOO_DEEP = "the expression nests too deeply (a long chain of operators, '!' or '-'): split it"


def compile_expression(source: str, event: str | None = None) -> Compiled:
    """Parse, type-check and build ``source``; ``event`` limits the facts available."""
    if not source.strip():
        raise ExpressionError("syntax", "the expression is empty")
    if len(source) > MAX_EXPRESSION_CHARS:
        raise ExpressionError(
            "limit", f"the expression is over {MAX_EXPRESSION_CHARS} characters ({len(source)})"
        )
    if _bracket_depth(source) > MAX_BRACKET_DEPTH:
        raise ExpressionError("limit", _BRACKETS_TOO_DEEP)
    try:
        tree = _parser().parse(source)
    except CELParseError as exc:
        first = str(exc.args[0]).splitlines()[0] if exc.args else "syntax error"
        raise ExpressionError("syntax", f"syntax error: {first.strip()}", exc.line) from exc
    except RecursionError as exc:
        raise ExpressionError("limit", _TREE_TOO_DEEP) from exc
    # Long operator chains (1 + 1 + ...) and runs of '!' or '-' nest without brackets.
    if _tree_depth(tree) > MAX_TREE_DEPTH:
        raise ExpressionError("limit", _TREE_TOO_DEEP)
    builder = _Builder(event)
    try:
        typ, run = builder.build(tree)
    except RecursionError as exc:
        raise ExpressionError("limit", _TREE_TOO_DEEP) from exc
    return Compiled(source=source, type=typ, facts=frozenset(builder.used), run=run)


def compile_condition(source: str, event: str | None = None) -> Compiled:
    """A rule's ``when``: an expression that must be a bool."""
    compiled = compile_expression(source, event)
    if compiled.type != "bool":
        raise ExpressionError("type", f"'when' must be true or false, this is a {compiled.type}")
    return compiled


def _line(tree: _Tree | lark.Token) -> int | None:
    if isinstance(tree, lark.Token):
        return tree.line
    meta = getattr(tree, "meta", None)
    return getattr(meta, "line", None) if meta is not None and not meta.empty else None


def _compatible(a: str, b: str) -> bool:
    if a == b or "null" in (a, b) or ("list<dyn>" in (a, b) and a.startswith("list")):
        return True
    if a.startswith("list") and b.startswith("list"):
        return a == b
    return a in NUMBERS and b in NUMBERS


def _string_literal(text: str) -> str:
    raw = text[:1] in "rR"
    if raw:
        text = text[1:]
    quote = text[:3] if text[:3] in ('"""', "'''") else text[:1]
    body = text[len(quote) : -len(quote)]
    return (
        body
        if raw
        else codecs.decode(body.encode("utf-8"), "unicode_escape").encode("latin-1").decode("utf-8")
    )


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def _int64(value: int) -> int:
    """CEL's ints are 64-bit: a result outside is an error, not a bigger number."""
    if not INT64_MIN <= value <= INT64_MAX:
        raise OverflowError("integer overflow")
    return value


def _int_div(a: int, b: int) -> int:
    if b == 0:
        raise ZeroDivisionError("division by zero")
    q = abs(a) // abs(b)  # CEL truncates toward zero
    return _int64(q if (a >= 0) == (b >= 0) else -q)


def _double_div(a: float, b: float) -> float:
    """IEEE 754, as CEL's doubles: x / 0.0 is an infinity (0.0 / 0.0 is NaN)."""
    if b == 0.0:
        if a == 0.0 or math.isnan(a):
            return math.nan
        return math.copysign(math.inf, a) * math.copysign(1.0, b)
    return a / b


def _int_mod(a: int, b: int) -> int:
    if b == 0:
        raise ZeroDivisionError("modulo by zero")
    r = abs(a) % abs(b)
    return r if a >= 0 else -r


def _to_int(value: Any) -> int:
    """``int(x)``: a double truncated toward zero; outside 64 bits (or NaN) an error."""
    return _int64(int(value))


# Per operator: the function on ints (results checked against 64 bits), on doubles.
_ARITH: dict[str, tuple[Callable[[Any, Any], Any], Callable[[Any, Any], Any]]] = {
    "addition_add": (lambda a, b: _int64(a + b), operator.add),
    "addition_sub": (lambda a, b: _int64(a - b), operator.sub),
    "multiplication_mul": (lambda a, b: _int64(a * b), operator.mul),
    "multiplication_div": (_int_div, _double_div),
    "multiplication_mod": (_int_mod, operator.mod),
}
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
# What an expression may raise on the facts of one event (``Compiled.evaluate``).
_RUN_ERRORS = (ArithmeticError, KeyError, IndexError, TypeError, ValueError)
_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "relation_lt": operator.lt,
    "relation_le": operator.le,
    "relation_gt": operator.gt,
    "relation_ge": operator.ge,
}
_SYMBOL = {
    "addition_add": "+",
    "addition_sub": "-",
    "multiplication_mul": "*",
    "multiplication_div": "/",
    "multiplication_mod": "%",
    "relation_lt": "<",
    "relation_le": "<=",
    "relation_gt": ">",
    "relation_ge": ">=",
    "relation_eq": "==",
    "relation_ne": "!=",
    "relation_in": "in",
}

# Receiver methods: (receiver type, name) -> (argument types, result type, function).
_METHODS: dict[tuple[str, str], tuple[tuple[str, ...], str, Callable[..., Any]]] = {
    ("string", "startsWith"): (("string",), "bool", str.startswith),
    ("string", "endsWith"): (("string",), "bool", str.endswith),
    ("string", "contains"): (("string",), "bool", lambda s, x: x in s),
    ("string", "size"): ((), "int", len),
    # ASCII letters only, as CEL's strings extension says ("É" stays "É").
    ("string", "lowerAscii"): ((), "string", lambda s: s.translate(_ASCII_LOWER)),
}


class _Builder:
    def __init__(self, event: str | None) -> None:
        self.event = event
        self.used: set[str] = set()

    def fail(self, kind: str, message: str, node: _Tree | lark.Token) -> ExpressionError:
        return ExpressionError(kind, message, _line(node))

    def build(self, node: _Tree | lark.Token) -> tuple[str, Closure]:
        if isinstance(node, lark.Token):
            raise self.fail("syntax", f"unexpected {node.value!r}", node)
        method = getattr(self, f"_{node.data}", None)
        if method is None:
            raise self.fail("syntax", f"{node.data.replace('_', ' ')} is not supported", node)
        result: tuple[str, Closure] = method(node)
        return result

    def _pass(self, node: _Tree) -> tuple[str, Closure]:
        return self.build(node.children[0])

    _primary = _pass
    _paren_expr = _pass

    def _expr(self, node: _Tree) -> tuple[str, Closure]:
        if len(node.children) == 1:
            return self.build(node.children[0])
        ct, cond = self.build(node.children[0])
        if ct != "bool":
            raise self.fail("type", f"the condition before '?' must be a bool, not {ct}", node)
        at, a = self.build(node.children[1])
        bt, b = self.build(node.children[2])
        # Numbers too: `c ? 1 : 2.0` has no single type in CEL (no implicit conversion).
        if not _compatible(at, bt) or (at != bt and {at, bt} <= NUMBERS):
            raise self.fail("type", f"the two branches of '?:' differ: {at} and {bt}", node)
        return (at if at != "null" else bt), lambda f: a(f) if cond(f) else b(f)

    def _logic(self, node: _Tree, word: str) -> tuple[str, Closure]:
        if len(node.children) == 1:
            return self.build(node.children[0])
        lt, left = self.build(node.children[0])
        rt, right = self.build(node.children[1])
        for typ in (lt, rt):
            if typ != "bool":
                raise self.fail("type", f"'{word}' joins bools, not {typ}", node)
        # CEL's && and || are commutative even over errors: false && error is false,
        # and error || true is true, whichever side the error is on.
        decisive = word == "||"  # the value that decides, whatever the other side is

        def run(f: Facts) -> bool:
            try:
                first = bool(left(f))
            except (EvaluationError, *_RUN_ERRORS):
                if bool(right(f)) is decisive:
                    return decisive
                raise
            return decisive if first is decisive else bool(right(f))

        return "bool", run

    def _conditionalor(self, node: _Tree) -> tuple[str, Closure]:
        return self._logic(node, "||")

    def _conditionaland(self, node: _Tree) -> tuple[str, Closure]:
        return self._logic(node, "&&")

    def _binary(self, node: _Tree) -> tuple[str, str, Closure, str, Closure]:
        """(operator rule, left type, left, right type, right) of a binary node."""
        op_node, right_node = node.children
        assert isinstance(op_node, lark.Tree)
        lt, left = self.build(op_node.children[0])
        rt, right = self.build(right_node)
        return op_node.data, lt, left, rt, right

    def _relation(self, node: _Tree) -> tuple[str, Closure]:
        if len(node.children) == 1:
            return self.build(node.children[0])
        op, lt, left, rt, right = self._binary(node)
        symbol = _SYMBOL[op]
        if op == "relation_in":
            if not rt.startswith("list"):
                raise self.fail("type", f"'in' needs a list on its right, not {rt}", node)
            inner = rt[5:-1]
            if inner != "dyn" and not _compatible(lt, inner):
                raise self.fail("type", f"cannot look for a {lt} in a {rt}", node)
            return "bool", lambda f: left(f) in right(f)
        if op in _ORDER:
            if not ((lt in NUMBERS and rt in NUMBERS) or lt == rt == "string"):
                raise self.fail("type", f"cannot compare {lt} {symbol} {rt}", node)
            compare = _ORDER[op]
            return "bool", lambda f: compare(left(f), right(f))
        if not _compatible(lt, rt):
            raise self.fail("type", f"cannot compare {lt} {symbol} {rt}", node)
        if op == "relation_eq":
            return "bool", lambda f: bool(left(f) == right(f))
        return "bool", lambda f: bool(left(f) != right(f))

    def _arith(self, node: _Tree) -> tuple[str, Closure]:
        if len(node.children) == 1:
            return self.build(node.children[0])
        op, lt, left, rt, right = self._binary(node)
        on_ints, on_doubles = _ARITH[op]
        symbol = _SYMBOL[op]
        if lt in NUMBERS and rt in NUMBERS:
            if op == "multiplication_mod" and not lt == rt == "int":
                raise self.fail("type", f"'%' works on ints, not {lt} and {rt}", node)
            if lt != rt:  # CEL converts nothing implicitly: 1 + 1.0 has no meaning
                raise self.fail(
                    "type",
                    f"cannot compute {lt} {symbol} {rt}: write both as int or as double "
                    "(2.0, double(x))",
                    node,
                )
            fn = on_ints if lt == "int" else on_doubles
            typ = lt
        elif op == "addition_add" and lt == rt == "string":
            fn, typ = operator.add, lt
        elif op == "addition_add" and lt.startswith("list") and _compatible(lt, rt):
            # An empty list literal (list<dyn>) joins any list.
            fn, typ = operator.add, rt if lt == "list<dyn>" else lt
        else:
            raise self.fail("type", f"cannot compute {lt} {symbol} {rt}", node)
        return typ, lambda f: fn(left(f), right(f))

    _addition = _arith
    _multiplication = _arith

    def _unary(self, node: _Tree) -> tuple[str, Closure]:
        if len(node.children) == 1:
            return self.build(node.children[0])
        op_node, operand = node.children
        assert isinstance(op_node, lark.Tree)
        typ, inner = self.build(operand)
        if op_node.data == "unary_not":
            if typ != "bool":
                raise self.fail("type", f"'!' negates a bool, not {typ}", node)
            return "bool", lambda f: not inner(f)
        if typ not in NUMBERS:
            raise self.fail("type", f"'-' negates a number, not {typ}", node)
        if typ == "int":
            return typ, lambda f: _int64(-inner(f))
        return typ, lambda f: -inner(f)

    def _member(self, node: _Tree) -> tuple[str, Closure]:
        return self.build(node.children[0])

    def _ident(self, node: _Tree) -> tuple[str, Closure]:
        token = node.children[0]
        assert isinstance(token, lark.Token)
        name = str(token.value)
        if name not in GROUPS:
            known = ", ".join(sorted(GROUPS))
            raise self.fail("unknown_fact", f"unknown fact {name!r} (fact groups: {known})", node)
        return f"group:{name}", lambda f: f[name]

    def _member_dot(self, node: _Tree) -> tuple[str, Closure]:
        target, field_token = node.children
        assert isinstance(field_token, lark.Token)
        typ, _ = self.build(target)
        field = str(field_token.value)
        if not typ.startswith("group:"):
            raise self.fail("type", f"a {typ} has no field {field!r}", node)
        group = typ[6:]
        path = f"{group}.{field}"
        fact_type = FACT_TYPES.get(path)
        if fact_type is None:
            known = ", ".join(sorted(p for p in FACT_TYPES if p.startswith(group + ".")))
            raise self.fail("unknown_fact", f"unknown fact {path!r} (known: {known})", node)
        if self.event is not None and not available(path, self.event):
            raise self.fail("unknown_fact", f"fact {path!r} is not known on {self.event}", node)
        self.used.add(path)
        return fact_type, lambda f: f[group][field]

    def _member_dot_arg(self, node: _Tree) -> tuple[str, Closure]:
        target, name_token, *rest = node.children
        assert isinstance(name_token, lark.Token)
        rtype, receiver = self.build(target)
        args = self._args(rest)
        name = str(name_token.value)
        spec = _METHODS.get((rtype, name))
        if spec is None:
            raise self.fail("type", f"a {rtype} has no function {name}()", node)
        wanted, result, fn = spec
        self._check_args(name, wanted, [t for t, _ in args], node)
        if not args:
            return result, lambda f: fn(receiver(f))
        arg = args[0][1]
        return result, lambda f: fn(receiver(f), arg(f))

    def _ident_arg(self, node: _Tree) -> tuple[str, Closure]:
        name_token, *rest = node.children
        assert isinstance(name_token, lark.Token)
        name = str(name_token.value)
        args = self._args(rest)
        if len(args) != 1:
            raise self.fail("type", f"{name}() takes one argument", node)
        typ, inner = args[0]
        if name == "size" and (typ == "string" or typ.startswith("list")):
            return "int", lambda f: len(inner(f))
        if name == "int" and typ in ("int", "double"):
            return "int", lambda f: _to_int(inner(f))
        if name == "double" and typ in NUMBERS:
            return "double", lambda f: float(inner(f))
        if name == "string" and typ == "bool":  # CEL's spelling, not Python's "True"
            return "string", lambda f: "true" if inner(f) else "false"
        if name == "string" and typ in ("int", "double", "string"):
            return "string", lambda f: str(inner(f))
        if name in ("size", "int", "double", "string"):
            raise self.fail("type", f"{name}() does not take a {typ}", node)
        raise self.fail("type", f"unknown function {name}()", node)

    def _args(self, rest: list[Any]) -> list[tuple[str, Closure]]:
        if not rest:
            return []
        exprlist = rest[0]
        return [self.build(child) for child in exprlist.children]

    def _check_args(self, name: str, wanted: tuple[str, ...], got: list[str], node: _Tree) -> None:
        fits = len(wanted) == len(got) and all(
            _compatible(w, g) for w, g in zip(wanted, got, strict=True)
        )
        if not fits:
            raise self.fail(
                "type", f"{name}() takes ({', '.join(wanted)}), given ({', '.join(got)})", node
            )

    def _member_index(self, node: _Tree) -> tuple[str, Closure]:
        target, index = node.children
        ttype, items = self.build(target)
        itype, key = self.build(index)
        if not ttype.startswith("list") or itype != "int":
            raise self.fail("type", f"cannot index a {ttype} with a {itype}", node)
        return ttype[5:-1], lambda f: items(f)[key(f)]

    def _list_lit(self, node: _Tree) -> tuple[str, Closure]:
        elements = self._args(node.children)
        types = {t for t, _ in elements}
        if not types:
            return "list<dyn>", lambda f: []
        # One type (ints and doubles do not mix: CEL would make it a list of dyn).
        if len(types) == 1 and not next(iter(types)).startswith(("list", "group")):
            inner = next(iter(types))
        else:
            raise self.fail("type", f"a list holds one type, not {sorted(types)}", node)
        parts = [run for _, run in elements]
        if all(getattr(p, "constant", False) for p in parts):
            fixed = [p({}) for p in parts]  # built once: a literal list is a constant
            return f"list<{inner}>", lambda f: fixed
        return f"list<{inner}>", lambda f: [p(f) for p in parts]

    def _literal(self, node: _Tree) -> tuple[str, Closure]:
        token = node.children[0]
        assert isinstance(token, lark.Token)
        text = str(token.value)
        value: Any
        if token.type == "INT_LIT":
            typ, value = "int", int(text, 16) if "0x" in text.lower() else int(text)
            if not INT64_MIN <= value <= INT64_MAX:
                raise self.fail("type", f"{text} is outside the 64-bit integers", node)
        elif token.type == "FLOAT_LIT":
            typ, value = "double", float(text)
        elif token.type in ("STRING_LIT", "MLSTRING_LIT"):
            typ, value = "string", _string_literal(text)
        elif token.type == "BOOL_LIT":
            typ, value = "bool", text == "true"
        elif token.type == "NULL_LIT":
            typ, value = "null", None
        else:
            raise self.fail("syntax", f"{token.type.lower()} literals are not supported", node)
        return typ, _constant(value)


def _constant(value: Any) -> Closure:
    def run(_: Facts) -> Any:
        return value

    run.constant = True  # type: ignore[attr-defined]
    return run
