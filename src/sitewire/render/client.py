"""Phones and laptops: a wg-quick config and the same config as a QR code (PNG, SVG, terminal)."""

from __future__ import annotations

import io

import segno

from sitewire.plan import Plan
from sitewire.plan.model import ClientPlan
from sitewire.render.model import Rendered, RenderedFile, Secrets, require_key
from sitewire.render.quote import wg_quick, wg_quick_comment

_QR_SCALE = 6


def client_config(plan: Plan, client: ClientPlan, secrets: Secrets) -> tuple[str, bool]:
    """The config text and whether it holds the private key (a device-made key never does)."""
    private = secrets.private_key(client.name)
    if private is None and not client.device_made_key:
        require_key(
            None,
            f"the private key of {client.name}",
            f"clients.{client.name}",
            "render with --local-keys FILE, or set public_key to the key the device made",
        )
    server = require_key(
        client.server_public_key,
        f"the public key of {client.via}",
        f"sites.{client.via}",
        "run 'sitewire apply' to create keys on the routers, or render with --local-keys FILE",
    )
    lines = [
        wg_quick_comment(
            f"sitewire: network '{plan.name}', client {client.name} via {client.via} "
            f"({client.tunnel.value} tunnel). Generated."
        ),
        "[Interface]",
        _line("PrivateKey", private) if private else "# PrivateKey: the key this device made",
        _line("Address", ", ".join(str(a) for a in client.addresses)),
    ]
    if client.dns:
        lines.append(_line("DNS", ", ".join(str(d) for d in client.dns)))
    if client.mtu:
        lines.append(_line("MTU", client.mtu))
    lines += ["", "[Peer]", _line("PublicKey", server)]
    psk = secrets.preshared_key(client.name, client.via) if client.preshared else None
    if psk:
        lines.append(_line("PresharedKey", psk))
    lines += [
        _line("AllowedIPs", ", ".join(str(p) for p in client.allowed_ips)),
        _line("Endpoint", client.endpoint),
        _line("PersistentKeepalive", client.keepalive),
    ]
    return "\n".join(lines) + "\n", private is not None or psk is not None


def _line(key: str, value: object) -> str:
    return f"{key} = {wg_quick(value)}"


def qr_code(config: str) -> segno.QRCode:
    # Comments only make the code denser; the apps ignore them.
    payload = "\n".join(line for line in config.splitlines() if not line.startswith("#"))
    return segno.make(payload.strip() + "\n", error="m", micro=False)


def qr_terminal(config: str) -> str:
    out = io.StringIO()
    qr_code(config).terminal(out=out, compact=True)
    return out.getvalue()


def render_client(plan: Plan, client: ClientPlan, secrets: Secrets) -> Rendered:
    config, secret = client_config(plan, client, secrets)
    files = [RenderedFile(f"{client.name}.conf", config, secret=secret)]
    notes: tuple[str, ...] = ()
    if secrets.private_key(client.name) is not None:
        qr = qr_code(config)
        for kind in ("png", "svg"):
            buf = io.BytesIO()
            qr.save(buf, kind=kind, scale=_QR_SCALE, border=4)
            files.append(RenderedFile(f"{client.name}.{kind}", buf.getvalue(), secret=True))
    else:
        notes = (f"{client.name}: no QR code (its private key lives only on the device)",)
    return Rendered(client.name, tuple(files), notes=notes)
