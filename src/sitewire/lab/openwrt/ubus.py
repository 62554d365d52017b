"""`ubus` on a lab router: the `network` and `network.interface[.<if>]` objects netifd serves.

`ubus call network reload`, `ubus call network.interface.<if> up|down|renew|status`,
`ubus call network.interface <method> '{"interface": "<if>"}'` and
`ubus [-S] call network.interface dump`. Exit codes are ubus status numbers.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

from sitewire.lab.openwrt.env import guarded
from sitewire.lab.openwrt.netifd import Netifd
from sitewire.lab.openwrt.netifd_cli import with_netifd

OK, INVALID_ARGUMENT, METHOD_NOT_FOUND, NOT_FOUND = 0, 2, 3, 4
_MESSAGES = {
    INVALID_ARGUMENT: "Invalid argument",
    METHOD_NOT_FOUND: "Method not found",
    NOT_FOUND: "Not found",
}
_INTERFACE_METHODS = ("up", "down", "renew", "status")
Reply = tuple[int, dict[str, Any] | None]


def _network(method: str) -> Callable[[Netifd], Reply] | None:
    actions: dict[str, Callable[[Netifd], None]] = {
        "reload": Netifd.reload,
        "restart": Netifd.restart,
    }
    action = actions.get(method)
    if action is None:
        return None

    def call(netifd: Netifd) -> Reply:
        action(netifd)
        return OK, None

    return call


def _interface(name: str, method: str) -> Callable[[Netifd], Reply]:
    def call(netifd: Netifd) -> Reply:
        if method == "status":
            status = netifd.status(name)
            return (OK, status) if status is not None else (NOT_FOUND, None)
        action = {"up": netifd.up, "down": netifd.down, "renew": netifd.renew}[method]
        return (OK, None) if action(name) else (NOT_FOUND, None)

    return call


def _resolve(obj: str, method: str, args: dict[str, Any]) -> Callable[[Netifd], Reply] | int:
    if obj == "network":
        return _network(method) or METHOD_NOT_FOUND
    if obj == "network.interface":
        if method == "dump":
            return lambda n: (OK, n.dump())
        if method not in _INTERFACE_METHODS:
            return METHOD_NOT_FOUND
        name = args.get("interface")
        if not isinstance(name, str):
            return INVALID_ARGUMENT
        return _interface(name, method)
    prefix = "network.interface."
    if obj.startswith(prefix):
        if method not in _INTERFACE_METHODS:
            return METHOD_NOT_FOUND
        return _interface(obj.removeprefix(prefix), method)
    return NOT_FOUND


def _call(obj: str, method: str, text: str, simple: bool) -> int:
    try:
        args = json.loads(text) if text else {}
    except ValueError:
        args = None
    if not isinstance(args, dict):
        return _fail(INVALID_ARGUMENT)
    target = _resolve(obj, method, args)
    if isinstance(target, int):
        return _fail(target)
    status, reply = with_netifd(target)
    if status != OK:
        return _fail(status)
    if reply is not None:
        if simple:
            print(json.dumps(reply, separators=(",", ":")))
        else:
            print(json.dumps(reply, indent="\t"))
    return OK


def _fail(status: int) -> int:
    print(f"Command failed: {_MESSAGES[status]}", file=sys.stderr)
    return status


def _list(pattern: str) -> int:
    objects = ["network", "network.interface", "network.device"]
    objects += [f"network.interface.{name}" for name in Netifd().configured]
    for name in objects:
        if (
            not pattern
            or name == pattern
            or (pattern.endswith("*") and name.startswith(pattern[:-1]))
        ):
            print(name)
    return OK


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    return guarded("ubus", lambda: _ubus(args))


def _ubus(args: list[str]) -> int:
    simple = False
    while args and args[0].startswith("-"):
        flag = args.pop(0)
        simple |= flag == "-S"
        if flag in ("-t", "-s", "-m", "-M") and args:
            args.pop(0)
    if args[:1] == ["list"]:
        return _list(args[1] if len(args) > 1 else "")
    if args[:1] == ["call"] and len(args) in (3, 4):
        return _call(args[1], args[2], args[3] if len(args) == 4 else "", simple)
    print("Usage: ubus [<options>] <command> [arguments...]", file=sys.stderr)
    return 1 if args else 0


if __name__ == "__main__":
    sys.exit(main())
