"""A wg-quick file made by hand (or by wg-meshconf) on a Linux host, taken over (issue 12).

Such a file keeps its keys inline (`PrivateKey =`, `PresharedKey =`); sitewire keeps them in
files of their own beside it (render.linux.key_path, psk_path) and its wg-quick file reads them
at `up`. Taking over copies the keys the host already runs (else the inline ones) into those
files, on the host — they never cross the network — so nothing is re-keyed, and the device is
not re-created when the rewritten file means the same device (addresses, port, MTU).
"""

from __future__ import annotations

import shlex

from sitewire.diagnose.facts import DeviceFacts
from sitewire.diagnose.parse import UnexpectedOutput
from sitewire.diagnose.parse.wgquick import device_settings, parse_wg_quick
from sitewire.plan.model import SitePlan
from sitewire.render.linux import CONF_DIR, enable_command, key_path, psk_path

_OWN_HEAD = "# sitewire: network "  # the first line of every file sitewire writes

# The first PrivateKey of a wg-quick file, read as wg-quick reads it: key case-insensitive,
# blanks and comments dropped (a key has neither).
_INLINE_KEY = (
    """awk '{ l = $0; sub(/#.*/, "", l); gsub(/[ \\t\\r]/, "", l) }"""
    """ tolower(substr(l, 1, 11)) == "privatekey=" { print substr(l, 12); exit }'"""
)
# The PresharedKey of the [Peer] whose PublicKey is $k.
_INLINE_PSK = (
    """awk -v k="$_pub" '{ l = $0; sub(/#.*/, "", l); gsub(/[ \\t\\r]/, "", l); t = tolower(l) }"""
    """ t == "[peer]" { pk = ""; ps = "" }"""
    """ substr(t, 1, 10) == "publickey=" { pk = substr(l, 11) }"""
    """ substr(t, 1, 13) == "presharedkey=" { ps = substr(l, 14) }"""
    """ pk == k && ps != "" { print ps; exit }'"""
)


def conf_path(iface: str) -> str:
    return f"{CONF_DIR}/{iface}.conf"


def is_hand_made(text: str | None) -> bool:
    """A wg-quick file that sitewire did not write (None: there is none)."""
    return text is not None and not text.startswith(_OWN_HEAD)


def key_source(iface: str) -> str:
    """Shell setting `_k` to the private key the host runs on `iface`, else its file's inline
    one, else empty."""
    q = shlex.quote
    return (
        f"_k=$(wg show {q(iface)} private-key 2>/dev/null) || _k=; "
        f"case $_k in ''|'(none)') _k=$({_INLINE_KEY} {q(conf_path(iface))} 2>/dev/null) "
        "|| _k= ;; esac"
    )


def pubkey_section(iface: str) -> str:
    """`sw_pubkey`: the public key of sitewire's key file, else of the key the host runs or
    its hand-made file holds."""
    key = shlex.quote(key_path(iface))
    return (
        "has wg || return 0\n"
        f"if [ -s {key} ]; then wg pubkey < {key}; return 0; fi\n"
        f"{key_source(iface)}\n"
        '[ -n "$_k" ] || return 0\n'
        "printf '%s\\n' \"$_k\" | wg pubkey; _k="
    )


def psk_keys_section(iface: str) -> str:
    """`sw_psk_keys`: `<public key> <sha256 of its running preshared key, or ->`, hashed on
    the host (a hand-made peer's key is found by its public key, not by sitewire's file)."""
    return (
        "has wg || return 0\n"
        f"wg show {shlex.quote(iface)} preshared-keys 2>/dev/null | while read -r _k _p; do\n"
        "\tcase $_p in ''|'(none)') echo \"$_k -\" ;;\n"
        '\t*) echo "$_k $(printf %s "$_p" | sha256sum | cut -d\' \' -f1)" ;; esac\n'
        "done\n_p=\nreturn 0"
    )


def takeover_script(site: SitePlan) -> str:
    """Copy the keys the host holds into sitewire's key files, where those are missing."""
    q = shlex.quote
    iface = site.interface
    key = q(key_path(iface))
    lines = [
        f"set -e; umask 077; mkdir -p {CONF_DIR}",
        f"if [ ! -s {key} ]; then {key_source(iface)}; "
        f'if [ -n "$_k" ]; then printf \'%s\\n\' "$_k" > {key}; fi; _k=; fi',
    ]
    for peer in site.peers:
        if not peer.preshared or peer.public_key is None:
            continue
        path = q(psk_path(iface, peer.name))
        lines.append(
            f"if [ ! -s {path} ]; then _pub={q(peer.public_key)}; "
            f"_p=$(wg show {q(iface)} preshared-keys 2>/dev/null | "
            """awk -v k="$_pub" '$1 == k && $2 != "(none)" { print $2 }') || _p=; """
            f'[ -n "$_p" ] || _p=$({_INLINE_PSK} {q(conf_path(iface))} 2>/dev/null) || _p=; '
            f'if [ -n "$_p" ]; then printf \'%s\\n\' "$_p" > {path}; fi; _p=; fi'
        )
    return "\n".join(lines)


def takeover_line(site: SitePlan) -> str:
    psks = sum(1 for p in site.peers if p.preshared and p.public_key is not None)
    kept = f"its key kept in {key_path(site.interface)}"
    if psks:
        kept += f", its preshared keys in {psk_path(site.interface, '<peer>')}"
    return f"{site.name}: hand-made {conf_path(site.interface)} taken over: {kept}"


def same_device(before: str, after: str, facts: DeviceFacts, iface: str) -> bool:
    """Whether `wg-quick up` of `after` makes the device `before` made, which runs: the same
    addresses, port and MTU (unset: what the device has), and nothing else wg-quick acts on."""
    live = facts.wg.interface(iface)
    link = next((x for x in facts.links if x.name == iface), None)
    if live is None or link is None:
        return False
    try:
        was, will = (device_settings(parse_wg_quick(t)) for t in (before, after))
    except UnexpectedOutput:
        return False
    return (
        was.addresses == will.addresses
        and (was.listen_port or live.listen_port) == will.listen_port
        and (was.mtu or link.mtu) == will.mtu
        and was.others == will.others
    )


def settle_commands(site: SitePlan) -> list[str]:
    """What the new file's PostUp does beyond keys, peers and firewall (steps of their own),
    made live without re-creating the device; and the unit enabled for the next boot."""
    q = shlex.quote
    out = []
    if site.tailscale is not None:
        priority = str(site.tailscale.pin_priority)
        for prefix in site.tailscale.pins:
            rule = (
                f"ip -{prefix.version} rule %s to {q(str(prefix))} lookup main priority {priority}"
            )
            out.append(f"{rule % 'del'} 2>/dev/null || true; {rule % 'add'}")
    iface = q(site.interface)
    out.append(enable_command(iface))
    return out
