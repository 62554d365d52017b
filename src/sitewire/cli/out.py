"""The CLI's one way to print: every line goes through sitewire.strict.printable.

Much of what sitewire shows comes from routers (stderr of a failed step, a Tailscale state, a
diff of a file read back): a control character in it could move the cursor, rewrite lines
already on screen or set the terminal's title (issue 9). Here it is shown as `\\xNN` instead.
JSON output is unchanged by it: json.dumps escapes every control character itself.
"""

from __future__ import annotations

import click

from sitewire.strict import printable


def echo(text: str = "", *, err: bool = False, nl: bool = True) -> None:
    click.echo(printable(text), err=err, nl=nl)


def error(text: str) -> None:
    """An error is one line on stderr, whatever a router's text in it held."""
    click.echo(printable(text).replace("\n", "\\n"), err=True)
