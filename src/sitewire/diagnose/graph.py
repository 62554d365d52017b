"""`sitewire graph`: the network as a picture, coloured by the last `sitewire status`.

The drawing is Graphviz's: `network_graph` builds DOT source (pure, a value the tests read), and
`render_graph` hands it to the `dot` program through the graphviz package.
"""

from __future__ import annotations

import time
from html import escape

import graphviz

from sitewire.diagnose.status import Health, LinkStatus, NetworkStatus, Over, format_age, pairs
from sitewire.errors import InputError, SitewireError
from sitewire.plan import Plan

COLOURS = {
    Health.UP: "#2e7d32",  # green
    Health.STALE: "#ef6c00",  # orange
    Health.DOWN: "#c62828",  # red
    Health.UNKNOWN: "#9e9e9e",  # grey
}
FORMATS = ("svg", "png", "pdf", "dot")
LEGEND = (
    "handshake: green within 3 min, orange older, red never, grey unknown; dashed: through a relay"
    "\\nround trips: wg router to router, lan LAN address to LAN address, tailnet over Tailscale"
)
_SHORT = {Over.WIREGUARD: "wg", Over.LAN: "lan", Over.TAILNET: "tailnet"}


class GraphError(SitewireError):
    """Graphviz could not draw the picture."""


def rtt_label(link: LinkStatus) -> str:
    parts = []
    for over in Over:
        if over in link.rtt_ms:
            value = link.rtt_ms[over]
            parts.append(f"{_SHORT[over]} {'no reply' if value is None else f'{value:.1f} ms'}")
    return "\\n".join(parts)


def _node_label(plan: Plan, name: str, status: NetworkStatus | None) -> str:
    site = plan.site(name)
    lines = [f'<b><font point-size="14">{escape(name)}</font></b>']
    lines += [escape(str(p)) for p in site.lan]
    lines.append(f'<font color="#555555">{escape(site.interface)} {site.addresses[0].ip}</font>')
    seen = status.site(name) if status is not None else None
    if seen is not None and not seen.reachable:
        lines.append('<font color="#c62828">unreachable</font>')
    elif seen is not None and seen.tailnet is not None and seen.tailnet.ip:
        lines.append(f'<font color="#555555">tailscale {escape(seen.tailnet.ip)}</font>')
    return "<" + "<br/>".join(lines) + ">"


def network_graph(plan: Plan, status: NetworkStatus | None) -> str:
    """DOT source: sites with their LANs, links direct (solid) or through a relay (dashed)."""
    when = (
        time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(status.taken_at))
        if status is not None
        else "no status yet: run `sitewire status`"
    )
    g = graphviz.Graph(plan.name, engine="dot")
    g.attr(
        label=f"{plan.name}, {when}\\n{LEGEND}",
        labelloc="b",
        fontname="Helvetica",
        fontsize="10",
        rankdir="LR",
        nodesep="0.6",
        ranksep="1.2",
    )
    g.attr(
        "node",
        shape="box",
        style="rounded,filled",
        fillcolor="#f7f7f7",
        fontname="Helvetica",
        fontsize="10",
    )
    g.attr("edge", fontname="Helvetica", fontsize="9", penwidth="2")
    for name in plan.site_names:
        seen = status.site(name) if status is not None else None
        colour = "#9e9e9e" if seen is None or not seen.reachable else "#333333"
        g.node(name, _node_label(plan, name, status), color=colour)
    for a, b, relay in pairs(plan):
        link = status.link(a, b) if status is not None else None
        health = link.health if link is not None else Health.UNKNOWN
        colour = COLOURS[health]
        label = rtt_label(link) if link is not None else ""
        tip = _tooltip(a, b, relay, link, health)
        if relay is None:
            g.edge(a, b, label=label, color=colour, fontcolor=colour, tooltip=tip)
            continue
        # A relayed pair is drawn along its path, a to the relay to b, dashed; the direct links
        # to the relay are drawn too, so the layout follows those (constraint=false here).
        head = f"{a}–{b}" + (f"\\n{label}" if label else "")
        common = {"color": colour, "style": "dashed", "penwidth": "1.2", "constraint": "false"}
        g.edge(a, relay, label=head, fontcolor=colour, tooltip=tip, **common)
        g.edge(relay, b, tooltip=tip, **common)
    return str(g.source)


def _tooltip(a: str, b: str, relay: str | None, link: LinkStatus | None, health: Health) -> str:
    path = f"via {relay}" if relay else "direct"
    if link is None:
        return f"{a} – {b} {path}: no status"
    seen = "unknown" if health is Health.UNKNOWN else format_age(link.handshake_age, health)
    parts = [f"{a} – {b} {path}", f"handshake {seen}"]
    if link.endpoint:
        parts.append(f"endpoint {link.endpoint}")
    return ", ".join(parts)


def graph_format(output: str) -> str:
    """The picture's format from the output file's name."""
    fmt = output.rsplit(".", 1)[-1].lower() if "." in output else ""
    if fmt not in FORMATS:
        raise InputError(
            f"cannot tell the picture's format from {output!r}",
            where="graph -o",
            fix=f"end the file name in one of {', '.join('.' + f for f in FORMATS)}",
        )
    return fmt


def render_graph(source: str, fmt: str) -> bytes:
    """The picture, drawn by Graphviz's `dot`; DOT source as-is for `dot`."""
    if fmt == "dot":
        return source.encode()
    try:
        data = graphviz.Source(source, engine="dot").pipe(format=fmt)
    except graphviz.ExecutableNotFound:
        raise GraphError(
            "Graphviz's `dot` program is not installed",
            where="graph",
            fix="install it: apt-get install graphviz (or your system's graphviz package)",
        ) from None
    except graphviz.CalledProcessError as exc:
        detail = (exc.stderr or b"").decode(errors="replace").strip().splitlines()[-1:]
        raise GraphError(
            f"dot failed: {detail[0] if detail else exc}",
            where="graph",
            fix="report it to sitewire with the output of `sitewire graph -o net.dot`",
        ) from None
    assert isinstance(data, bytes)
    return data
