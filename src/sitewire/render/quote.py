"""One quoting function per output format sitewire writes: sh, uci batch, wg-quick, nftables.

The spec's types already make a value with a new line, a `;` or a zone ID unrepresentable; these
functions are the second wall, at the one place each format is written. A value that could
change the structure of its file (a new line, a comment, a new section or command) is refused
with a RenderError instead of being written: that is a bug in sitewire, never a user's mistake.
"""

from __future__ import annotations

import re
import shlex

from sitewire.errors import RenderError
from sitewire.uci import quote as _uci_quote

# Printable ASCII: what every value sitewire writes is made of (names, addresses, keys, ports).
_PRINTABLE = re.compile(r"[\x20-\x7e]*")
_NFT_WORD = re.compile(r"[A-Za-z0-9_.:/-]+")


def _refuse(fmt: str, value: str, why: str) -> RenderError:
    return RenderError(
        f"refusing to write {value!r} into {fmt}: {why}",
        fix="this is a bug in sitewire; please report it with the spec that caused it",
    )


def sh(value: object) -> str:
    """One word of a POSIX sh command line, for BusyBox ash as for bash."""
    return shlex.quote(str(value))


def sh_join(words: list[str] | tuple[str, ...]) -> str:
    return " ".join(sh(w) for w in words)


def uci_value(value: object) -> str:
    """A value of a `uci batch` set/add_list line. uci reads a quoted value across lines, and
    netifd's wireguard.sh copies some options verbatim into the file it hands to `wg setconf`:
    a new line there would be a new config line, so none is ever written."""
    text = str(value)
    if not _PRINTABLE.fullmatch(text):
        raise _refuse("a uci batch", text, "it holds a control character or a new line")
    return _uci_quote(text)


def uci_comment(text: str) -> str:
    """A `# ...` line of a uci batch (a new line would end the comment and start a command)."""
    if not _PRINTABLE.fullmatch(text):
        raise _refuse("a uci batch comment", text, "it holds a control character or a new line")
    return f"# {text}"


def wg_quick(value: object) -> str:
    """The value of one `Key = value` line of a wg-quick or wg config. wg-quick cuts a line at
    `#` and reads one line per key, so neither a `#` nor a line break may appear."""
    text = str(value)
    if not _PRINTABLE.fullmatch(text) or "#" in text:
        raise _refuse("a wg-quick file", text, "it holds '#', a control character or a new line")
    return text


def wg_quick_comment(text: str) -> str:
    if not _PRINTABLE.fullmatch(text):
        raise _refuse("a wg-quick comment", text, "it holds a control character or a new line")
    return f"# {text}"


def nft_word(value: object) -> str:
    """A bare word of an nftables file: an interface name, a prefix, a port, a table name."""
    text = str(value)
    if not _NFT_WORD.fullmatch(text):
        raise _refuse("an nftables file", text, "only letters, digits and _.:/- are allowed")
    return text
