"""`jsonfilter` on a lab router: the subset of OpenWrt's JSONPath tool its shell files use.

OpenWrt's jsonfilter (openwrt/jsonpath) is not among the sources the lab builds. The upstream
scripts a lab router runs use it twice — wireguard_watchdog
(`wg_ifaces=@.interface[@.up=true && @.proto="wireguard"].interface`) and firewall4's hotplug
script (`ZONE=@.data.zone`) — so this stand-in reads exactly that language: `@`, `.key`,
`[n]`, `[*]` and `[filter]` with `=`, `!=`, `&&`, `||` over true/false/null, numbers and
strings. `-e VAR=PATH` prints `export VAR='v1 v2'; ` as jsonfilter does; without a variable,
each match on a line of its own. No match: nothing printed, exit status 1.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Iterator
from typing import Any

_TOKEN = re.compile(
    r"""\s*(?:(?P<op>&&|\|\||!=|=|\[|\]|\.|@|\*|\(|\))|(?P<str>"(?:[^"\\]|\\.)*"|'[^']*')"""
    r"""|(?P<num>-?\d+(?:\.\d+)?)|(?P<word>[A-Za-z_][A-Za-z0-9_\-]*))"""
)

Match = Callable[[Any], Iterator[Any]]


class FilterError(ValueError):
    pass


def _tokens(text: str) -> list[str]:
    out, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        found = _TOKEN.match(text, pos)
        if found is None or found.end() == pos:
            raise FilterError(f"syntax error at {text[pos:]!r}")
        out.append(found.group().strip())
        pos = found.end()
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.items = _tokens(text)
        self.pos = 0

    def peek(self) -> str:
        return self.items[self.pos] if self.pos < len(self.items) else ""

    def take(self, expected: str | None = None) -> str:
        token = self.peek()
        if expected is not None and token != expected:
            raise FilterError(f"expected {expected!r}, found {token or 'the end'!r}")
        self.pos += 1
        return token

    def path(self) -> list[Callable[[Any], Iterator[Any]]]:
        self.take("@")
        steps: list[Callable[[Any], Iterator[Any]]] = []
        while self.peek() in (".", "["):
            if self.take() == ".":
                steps.append(_key(self.take()))
                continue
            token = self.peek()
            if token == "*":
                self.take()
                steps.append(_every)
            elif re.fullmatch(r"-?\d+", token):
                steps.append(_index(int(self.take())))
            elif token[:1] in "\"'":
                steps.append(_key(_literal(self.take())))
            else:
                steps.append(_where(self.condition()))
            self.take("]")
        return steps

    def condition(self) -> Callable[[Any], bool]:
        left = self.comparison()
        while self.peek() in ("&&", "||"):
            op = self.take()
            right = self.comparison()
            left = _and(left, right) if op == "&&" else _or(left, right)
        return left

    def comparison(self) -> Callable[[Any], bool]:
        if self.peek() == "(":
            self.take()
            inner = self.condition()
            self.take(")")
            return inner
        steps = self.path()
        if self.peek() not in ("=", "!="):
            return lambda item: any(True for _ in _walk(item, steps))
        op = self.take()
        value = _literal(self.take())
        if op == "=":
            return lambda item: any(v == value for v in _walk(item, steps))
        return lambda item: all(v != value for v in _walk(item, steps))


def _literal(token: str) -> Any:
    if token[:1] == "'":
        return token[1:-1]
    if token[:1] == '"':
        return json.loads(token)
    words = {"true": True, "false": False, "null": None}
    if token in words:
        return words[token]
    try:
        return json.loads(token)
    except ValueError:
        raise FilterError(f"not a value: {token!r}") from None


def _key(name: str) -> Callable[[Any], Iterator[Any]]:
    def step(item: Any) -> Iterator[Any]:
        if isinstance(item, dict) and name in item:
            yield item[name]

    return step


def _index(number: int) -> Callable[[Any], Iterator[Any]]:
    def step(item: Any) -> Iterator[Any]:
        if isinstance(item, list) and -len(item) <= number < len(item):
            yield item[number]

    return step


def _every(item: Any) -> Iterator[Any]:
    if isinstance(item, list):
        yield from item
    elif isinstance(item, dict):
        yield from item.values()


def _where(test: Callable[[Any], bool]) -> Callable[[Any], Iterator[Any]]:
    def step(item: Any) -> Iterator[Any]:
        yield from (child for child in _every(item) if test(child))

    return step


def _and(a: Callable[[Any], bool], b: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda item: a(item) and b(item)


def _or(a: Callable[[Any], bool], b: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda item: a(item) or b(item)


def _walk(root: Any, steps: list[Callable[[Any], Iterator[Any]]]) -> Iterator[Any]:
    items: list[Any] = [root]
    for step in steps:
        items = [child for item in items for child in step(item)]
    yield from items


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value, separators=(",", ":"))


def evaluate(document: Any, expression: str) -> tuple[str | None, list[str]]:
    """(variable or None, the matches as text)."""
    variable = None
    head = re.match(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*=(?!=)", expression)
    if head:
        variable, expression = head.group(1), expression[head.end() :]
    parser = _Parser(expression)
    steps = parser.path()
    if parser.peek():
        raise FilterError(f"unexpected {parser.peek()!r}")
    return variable, [_text(v) for v in _walk(document, steps)]


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    expressions, source = [], None
    while args:
        flag = args.pop(0)
        if flag in ("-e", "-i", "-s") and args:
            value = args.pop(0)
            if flag == "-e":
                expressions.append(value)
            elif flag == "-i":
                source = open(value, encoding="utf-8").read()  # noqa: SIM115
            else:
                source = value
        else:
            print(f"jsonfilter (sitewire lab): unsupported argument {flag!r}", file=sys.stderr)
            return 1
    try:
        document = json.loads(sys.stdin.read() if source is None else source)
    except ValueError:
        print("Failed to parse json data", file=sys.stderr)
        return 1
    found = False
    for expression in expressions:
        try:
            variable, values = evaluate(document, expression)
        except FilterError as exc:
            print(f"Syntax error: {exc}", file=sys.stderr)
            return 1
        if not values:
            continue
        found = True
        if variable is None:
            print("\n".join(values))
        else:
            quoted = " ".join(values).replace("'", "'\\''")
            print(f"export {variable}='{quoted}'; ", end="")
    if found and any("=" in e.split("@")[0] for e in expressions):
        print()
    return 0 if found else 1


if __name__ == "__main__":
    sys.exit(main())
