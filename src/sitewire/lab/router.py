"""A lab router's own world: its mount namespace, files, SSH server and OpenWrt provisioning."""

from __future__ import annotations

import importlib
import os
import shutil
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import sitewire
from sitewire.fileio import write_atomic
from sitewire.lab.layout import GATEWAY4, GATEWAY6, MGMT, WAN, RouterLayout, hosts_text
from sitewire.lab.netns import LabError, in_router, log, router_env, run, unescape_mount_point
from sitewire.lab.openwrt import userland
from sitewire.lab.state import LabState
from sitewire.lab.wiring import wan_onlink

OVERLAID = ("etc", "usr", "root")
HOST_KEY = "/etc/dropbear/dropbear_ed25519_host_key"
PROVISION_MODULE = "sitewire.lab.openwrt.provision"
# A factory OpenWrt router has no WireGuard tools until a package install brings them.
OPENWRT_ABSENT = ("bin/wg", "bin/wg-quick")
RESOLV_CONF = (
    "# sitewire lab: no DNS server; endpoint names come from /etc/hosts\n"
    "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n"
)
SSH_WAIT = 5.0
# Detached children stay referenced until reaped, so Python never warns they are still running.
_DETACHED: dict[int, subprocess.Popen[bytes]] = {}


def prepare_files(state: LabState, router: RouterLayout, client_public: str) -> str:
    """Fill the router's upper directories before they are mounted; return its host key line."""
    top = state.router_dir(router.site)
    for name in OVERLAID:
        _mkdir(top / f"{name}.up", 0o700 if name == "root" else 0o755)
        _mkdir(top / f"{name}.work", 0o700)
    etc = top / "etc.up"
    _mkdir(etc / "lab", 0o755)
    write_atomic(etc / "hosts", hosts_text(state.layout))
    write_atomic(etc / "resolv.conf", RESOLV_CONF)
    _authorize(top / "root.up", client_public)
    if router.platform == "openwrt":
        _openwrt_shell(top)
    else:
        _own_cron(etc)
    return _host_key(router.site, etc)


# What the host's cron daemon would run: a Linux router runs only its own jobs (docs/lab.md).
CRON_DIRS = ("cron.d", "cron.hourly", "cron.daily", "cron.weekly", "cron.monthly")
CRON_SPOOL = "/var/spool/cron/crontabs"


def _own_cron(etc_upper: Path) -> None:
    for name in CRON_DIRS:
        _mkdir(etc_upper / name, 0o755)
        os.setxattr(etc_upper / name, "trusted.overlay.opaque", b"y")
    crontab = etc_upper / "crontab"
    if not crontab.exists():
        os.mknod(crontab, 0o600 | stat.S_IFCHR, os.makedev(0, 0))  # a whiteout: no /etc/crontab


def _mkdir(path: Path, mode: int) -> None:
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(mode)  # the umask must not decide what the router sees


def _authorize(root_upper: Path, client_public: str) -> None:
    # Root's home is the router's own, as on a fresh install: not the host's files (its shell
    # start-up files ran on every command, bash sourcing ~/.bashrc under sshd; its keys).
    os.setxattr(root_upper, "trusted.overlay.opaque", b"y")
    for name in (".bashrc", ".profile"):
        skel = Path("/etc/skel") / name
        if skel.is_file() and not (root_upper / name).exists():
            write_atomic(root_upper / name, skel.read_text(), 0o644)
    ssh = root_upper / ".ssh"
    _mkdir(ssh, 0o700)
    # Opaque: the router must not see the host's own ~/.ssh (its keys, its known_hosts).
    os.setxattr(ssh, "trusted.overlay.opaque", b"y")
    write_atomic(ssh / "authorized_keys", client_public + "\n", 0o600)


def _openwrt_shell(top: Path) -> None:
    """BusyBox as /bin/sh and root's login shell, so SSH sessions run under ash."""
    bin_dir = top / "usr.up" / "bin"
    _mkdir(bin_dir, 0o755)
    sh = bin_dir / "sh"
    if not sh.is_symlink() or os.readlink(sh) != "busybox":
        sh.unlink(missing_ok=True)
        sh.symlink_to("busybox")
    for absent in OPENWRT_ABSENT:
        whiteout = top / "usr.up" / absent
        if not whiteout.exists():
            os.mknod(whiteout, 0o600 | stat.S_IFCHR, os.makedev(0, 0))
    passwd = Path("/etc/passwd").read_text()
    write_atomic(top / "etc.up" / "passwd", with_root_shell(passwd, "/bin/sh"))


def with_root_shell(passwd: str, shell: str) -> str:
    lines = []
    for line in passwd.splitlines():
        fields = line.split(":")
        if fields[0] == "root" and len(fields) == 7:
            line = ":".join([*fields[:6], shell])
        lines.append(line)
    return "\n".join(lines) + "\n"


def _host_key(site: str, etc_upper: Path) -> str:
    key = etc_upper / HOST_KEY.removeprefix("/etc/")
    _mkdir(key.parent, 0o755)
    key.unlink(missing_ok=True)
    out = run(site, ["dropbearkey", "-t", "ed25519", "-f", str(key)]).stdout
    return _public_line(out, site)


def _public_line(dropbearkey_out: str, where: str) -> str:
    for line in dropbearkey_out.splitlines():
        if line.startswith("ssh-ed25519 "):
            return " ".join(line.split()[:2])
    raise LabError("dropbearkey printed no ssh-ed25519 public key", where=where)


def make_client_key(state: LabState) -> str:
    """The lab's one client key (OpenSSH format, 0600); return its public line."""
    key = state.client_key
    comment = f"sitewire-lab-{state.name}"
    if shutil.which("ssh-keygen"):
        argv = ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(key)]
        run("root", argv)
        return " ".join(key.with_name(key.name + ".pub").read_text().split()[:2])
    # Without OpenSSH: dropbear's own format, converted for asyncssh.
    raw = key.with_name(key.name + ".dropbear")
    public = _public_line(
        run("root", ["dropbearkey", "-t", "ed25519", "-f", str(raw)]).stdout, "root"
    )
    run("root", ["dropbearconvert", "dropbear", "openssh", str(raw), str(key)])
    key.chmod(0o600)
    raw.unlink()
    write_atomic(key.with_name(key.name + ".pub"), f"{public} {comment}\n")
    return public


def write_known_hosts(state: LabState, host_keys: dict[str, str]) -> None:
    lines = [f"{state.layout.router(site).mgmt.ip} {key}" for site, key in host_keys.items()]
    write_atomic(state.known_hosts, "\n".join(lines) + "\n")


def make_mount_ns(state: LabState, router: RouterLayout) -> None:
    """The persistent mount namespace: overlays, /etc/lab, private /run and /tmp (docs/lab.md)."""
    top = state.router_dir(router.site)
    mnt = state.mnt(router.site)
    mnt.touch()
    state.record("mntns", str(mnt))
    site = router.site
    run(site, ["unshare", f"--mount={mnt}", "--propagation", "private", "true"])
    for name in OVERLAID:
        lower = f"/{name}"
        if name == "usr" and router.platform == "openwrt":
            # The real OpenWrt userland of the release lies under the router's own files.
            lower = f"{userland.rootfs_usr(openwrt_series(state.openwrt_release))}:/usr"
        options = f"lowerdir={lower},upperdir={top}/{name}.up,workdir={top}/{name}.work"
        _in_mnt(site, mnt, ["mount", "-t", "overlay", "overlay", "-o", options, f"/{name}"])
    _in_mnt(site, mnt, ["mount", "--bind", str(state.shared), "/etc/lab"])
    copied = inherited_mounts(_in_mnt(site, mnt, ["cat", "/proc/self/mountinfo"]))
    if copied:
        _in_mnt(site, mnt, ["umount", "--recursive", "--lazy", *copied])
    ram_disks(site, mnt)
    # A sysfs mounted from inside the router's netns shows its own devices in /sys/class/net.
    _in_mnt(site, mnt, ["umount", "--lazy", "/sys"])
    sysfs = ["mount", "-t", "sysfs", "-o", "nosuid,nodev,noexec", "sysfs", "/sys"]
    run(site, in_router(mnt, router.netns, sysfs))


def ram_disks(site: str, mnt: Path, *, again: bool = False) -> None:
    """Empty tmpfs on /run and /tmp, with the directories sitewire runs from still in place;
    `again` (a lab reboot) first drops the ones the router had, and all mounted on them."""
    if again:
        _in_mnt(site, mnt, ["umount", "--recursive", "--lazy", "/tmp", "/run"])
    kept = code_dirs()
    for index, path in enumerate(kept):
        _in_mnt(site, mnt, ["mkdir", "-p", f"{KEEP}/{index}"])
        _in_mnt(site, mnt, ["mount", "--bind", path, f"{KEEP}/{index}"])
    _in_mnt(site, mnt, ["mount", "-t", "tmpfs", "-o", "mode=0755", "tmpfs", "/run"])
    _in_mnt(site, mnt, ["mount", "-t", "tmpfs", "-o", "mode=1777", "tmpfs", "/tmp"])
    for index, path in enumerate(kept):
        _in_mnt(site, mnt, ["mkdir", "-p", path])
        _in_mnt(site, mnt, ["mount", "--bind", f"{KEEP}/{index}", path])
        _in_mnt(site, mnt, ["umount", f"{KEEP}/{index}"])


# Where the host directories sitewire runs from wait while /run and /tmp are covered.
KEEP = "/usr/lib/sitewire-lab/keep"
_COVERED = (Path("/tmp"), Path("/run"))


def code_dirs() -> list[str]:
    """Directories under /tmp or /run that the router's tools need: the interpreter, the venv,
    the sitewire package. A checkout in /tmp (as CI's may be) would vanish under the tmpfs."""
    paths = [Path(sys.prefix), Path(sys.base_prefix), Path(sys.executable).resolve()]
    paths.append(Path(sitewire.__file__).resolve().parent)
    out: set[str] = set()
    for path in paths:
        for covered in _COVERED:
            if path.is_relative_to(covered) and path != covered:
                out.add(str(covered / path.relative_to(covered).parts[0]))
    return sorted(out)


def _in_mnt(site: str, mnt: Path, argv: list[str]) -> str:
    return run(site, ["nsenter", f"--mount={mnt}", "--", *argv]).stdout


def inherited_mounts(mountinfo: str) -> list[str]:
    """Mounts the router's copy of the host's tree must drop: everything under /run, and nsfs.

    The copies of /run/netns/* (this lab's and other labs') would otherwise keep those network
    namespaces alive after `ip netns delete`, until this router's mount namespace goes.
    """
    points = []
    for line in mountinfo.splitlines():
        fields = line.split()
        point, fstype = unescape_mount_point(fields[4]), fields[fields.index("-") + 1]
        if point == "/run" or point.startswith("/run/") or fstype == "nsfs":
            points.append(point)
    return [p for p in points if not any(p.startswith(q + "/") for q in points)]


def openwrt_series(release: str) -> str:
    """`24.10.0` or `24.10` -> `24.10`."""
    return ".".join(release.split(".")[:2])


def write_router_file(state: LabState, site: str, path: str, text: str) -> None:
    """Replace a file as the router sees it: through its mount namespace, not its upper dir."""
    run(site, ["nsenter", f"--mount={state.mnt(site)}", "--", "tee", path], input=text)


def site_json(state: LabState, router: RouterLayout) -> dict[str, Any]:
    """What the OpenWrt provisioner needs to know about a router."""
    return {
        "site": router.site,
        "release": state.openwrt_release,
        "wan": {
            "device": WAN,
            "ipaddr": str(router.wan4),
            "ip6addr": str(router.wan6),
            "gateway": str(GATEWAY4),
            "gateway6": str(GATEWAY6),
            # On-link prefixes beyond the WAN's own subnet (literal endpoints, see layout):
            # netifd must know them, or a network restart (wan down) loses them for good.
            "routes": [str(net) for net in wan_onlink(state.layout, router)],
        },
        "lans": [
            {
                "device": lan.device,
                "ipaddr": [str(a) for a in lan.router if a.version == 4],
                "ip6addr": [str(a) for a in lan.router if a.version == 6],
            }
            for lan in router.lans
        ],
        "mgmt_device": MGMT,
        "python": sys.executable,
    }


def provision(state: LabState, router: RouterLayout) -> None:
    """Make an OpenWrt router behave like one, if that part of the lab is installed; start a
    Linux router's cron daemon, as its machine would at boot."""
    if router.platform != "openwrt":
        start_cron(state, router)
        return
    try:
        module = importlib.import_module(PROVISION_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name != PROVISION_MODULE:
            raise
        note = f"{router.site}: OpenWrt provisioning skipped ({PROVISION_MODULE} is not installed)"
        state.notes.append(note)
        state.save()
        return
    command = cast(Callable[[dict[str, Any]], list[str]], module.provision_command)
    argv = command(site_json(state, router))
    run(router.site, in_router(state.mnt(router.site), router.netns, argv), env=router_env())


def start_cron(state: LabState, router: RouterLayout) -> None:
    """Debian's cron (scripts/bootstrap installs it) over the router's own /etc/cron.d, the
    host users' crontabs covered; a host without it gives a router without cron (noted)."""
    mnt = state.mnt(router.site)
    if Path(CRON_SPOOL).is_dir():
        _in_mnt(router.site, mnt, ["mount", "-t", "tmpfs", "-o", "mode=1730", "tmpfs", CRON_SPOOL])
    argv = [sys.executable, "-m", "sitewire.lab.boot", "start", "cron"]
    done = subprocess.run(
        in_router(mnt, router.netns, argv), env=router_env(), capture_output=True, check=False
    )
    if done.returncode != 0:
        state.notes.append(f"{router.site}: no cron daemon (install Debian's cron)")
        state.save()


def start_dropbear(state: LabState, router: RouterLayout) -> int:
    """dropbear on the router's management address, detached; return its PID once it answers."""
    argv = ["dropbear", "-F", "-E", "-s", "-P", "/run/dropbear.pid", "-r", HOST_KEY]
    argv += ["-p", f"{router.mgmt.ip}:22"]
    full = in_router(state.mnt(router.site), router.netns, argv)
    log.debug("[#] %s: %s &", router.site, " ".join(argv))
    logfile = state.router_dir(router.site) / "dropbear.log"
    with open(logfile, "ab") as out:
        proc = subprocess.Popen(
            full,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            env=router_env(),
            start_new_session=True,
        )
    _DETACHED[proc.pid] = proc
    state.pids[router.site] = proc.pid
    state.save()
    _wait_for_ssh(router, proc, logfile)
    return proc.pid


def reap_detached() -> None:
    for pid, proc in list(_DETACHED.items()):
        if proc.poll() is not None:
            del _DETACHED[pid]


def _wait_for_ssh(router: RouterLayout, proc: subprocess.Popen[bytes], logfile: Path) -> None:
    deadline = time.monotonic() + SSH_WAIT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise LabError(
                f"dropbear exited {proc.returncode}: {_tail(logfile)}", where=router.site
            )
        if ssh_banner(str(router.mgmt.ip)).startswith("SSH-2.0-"):
            return
        time.sleep(0.05)
    raise LabError(
        f"dropbear does not answer on {router.mgmt.ip}:22 after {SSH_WAIT:g}s", where=router.site
    )


def _tail(logfile: Path) -> str:
    lines = logfile.read_text(errors="replace").strip().splitlines()
    return lines[-1] if lines else "(no output)"


def ssh_banner(address: str, port: int = 22, timeout: float = 1.0) -> str:
    """The first line an SSH server sends, or '' if none answers."""
    try:
        with socket.create_connection((address, port), timeout=timeout) as conn:
            return conn.recv(256).decode("ascii", "replace").splitlines()[0]
    except (OSError, IndexError):
        return ""
