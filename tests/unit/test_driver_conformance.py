"""Every driver against what real lab devices answered: one suite, NAPALM's idea (issue 11).

Each case in tests/captures/<platform>/<case>/ is a device's answer to apply's own fact script
at one stage (factory, wireguard-tools installed by hand, applied), recorded by
scripts/record-driver-captures (tests/captures/drivers.md). Every `Platform` is tested with its
`driver_for` over the cases of that platform, so a new driver without recordings fails here.
What a driver must do is checked against what the device held, never against a second
implementation of the driver.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
import shutil
import subprocess
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from sitewire.deploy import safety
from sitewire.deploy.changes import ClientSecrets
from sitewire.deploy.live import Step
from sitewire.deploy.read import extra_sections, read_files
from sitewire.diagnose.facts import DeviceFacts, facts_from_sections
from sitewire.diagnose.parse import ScriptSection, WgDump, parse_sections
from sitewire.diagnose.script import FACT_SECTIONS, build_script
from sitewire.driver import Command, Driver, Held, Push, PutFile, driver_for
from sitewire.errors import SpecError
from sitewire.lab.configure import USERSPACE
from sitewire.pipeline import Workspace
from sitewire.plan import Plan, plan_network
from sitewire.plan.model import SitePlan
from sitewire.render.model import Rendered, Secrets
from sitewire.spec.load import load_spec, parse_model
from sitewire.spec.lock import load_lock
from sitewire.spec.model import Platform, Spec
from sitewire.spec.secrets import LocalKeys, pair_id

CAPTURES = Path(__file__).resolve().parent.parent / "captures"
TOKEN = "0123abcd"
ENVS = ("", f"export {USERSPACE}; ")  # apply's env: none, or the lab's (wireguard-go)
# Whether a driver keeps the DNS re-resolve job outside the files it pushes, so that a device
# without it reads as `watchdog_missing` (each driver's own documented choice).
WATCHDOG_OUTSIDE_FILES = {
    Platform.OPENWRT: True,  # OpenWrt's wireguard_watchdog, a line in /etc/crontabs/root
    Platform.LINUX: False,  # sitewire's own job, /etc/cron.d/sitewire-<iface>, a pushed file
}
KEY = re.compile(r"(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{43}=")


@dataclass(frozen=True, eq=False)  # one per directory (_case): cached by identity
class Case:
    path: Path
    about: Mapping[str, Any]

    @property
    def id(self) -> str:
        return f"{self.path.parent.name}/{self.path.name}"

    @property
    def platform(self) -> Platform:
        return Platform(self.about["platform"])

    @property
    def stage(self) -> str:
        return str(self.about["stage"])

    @property
    def site(self) -> str:
        return str(self.about["site"])

    def text(self, name: str) -> str:
        return (self.path / name).read_text()


@functools.cache
def _case(path: Path) -> Case:
    return Case(path, tomllib.loads((path / "case.toml").read_text()))


def _all_cases() -> list[Case]:
    return [_case(p.parent) for p in sorted(CAPTURES.glob("*/*/case.toml"))]


CASES = _all_cases()


def _driven(stages: Iterable[str] | None = None) -> list[Any]:
    """(driver, case) for every platform and each of its cases, optionally of some stages."""
    wanted = None if stages is None else set(stages)
    return [
        pytest.param(driver_for(platform), case, id=f"{platform.value}:{case.id}")
        for platform in Platform
        for case in CASES
        if case.platform is platform and (wanted is None or case.stage in wanted)
    ]


# --- what the device held ------------------------------------------------------------------------


@dataclass(frozen=True)
class Recorded:
    """One case, read as apply's read stage reads it, and the plan apply applied to its lab
    (every case of a lab holds the lab's lock as the apply left it)."""

    case: Case
    plan: Plan
    site: SitePlan
    sections: Mapping[str, ScriptSection]
    facts: DeviceFacts
    held: Held


def _fake_key(*names: str) -> str:
    digest = hashlib.sha256(f"conformance: {'+'.join(names)}".encode()).digest()
    return base64.b64encode(digest).decode()


@functools.cache
def recorded(case: Case) -> Recorded:
    driver = driver_for(case.platform)
    spec = load_spec(case.path / "network.toml")
    plan = plan_network(spec, load_lock(case.path / "network.lock"))
    site = plan.site(case.site)
    sections = parse_sections(case.text("facts.out"))
    facts = facts_from_sections(case.site, case.platform, sections)
    files, _ = read_files(sections, list(case.about["read_paths"]))
    held = Held(facts, files, driver.watchdog_missing(site, sections))
    return Recorded(case, plan, site, sections, facts, held)


def apply_secrets(plan: Plan) -> Secrets:
    """What apply renders with: no private key; a preshared key only where a client is."""
    pairs = {pair_id(link.a, link.b): _fake_key(link.a, link.b) for link in plan.links()}
    return ClientSecrets(_workspace(plan, LocalKeys({}, pairs)), plan.client_names)


def local_secrets(plan: Plan) -> LocalKeys:
    """Every key, as `sitewire render --local-keys` would have them."""
    names = (*plan.site_names, *plan.client_names)
    pairs = {pair_id(link.a, link.b): _fake_key(link.a, link.b) for link in plan.links()}
    return LocalKeys({n: _fake_key(n) for n in names}, pairs)


def _workspace(plan: Plan, keys: LocalKeys) -> Workspace:
    spec = plan.topology.spec
    return Workspace(Path("network.toml"), spec, Path("network.lock"), None, keys=keys)


def all_fake_keys(plan: Plan) -> set[str]:
    keys = local_secrets(plan)
    return {*keys.private_keys.values(), *keys.preshared_keys.values()}


def handler_fresh(driver: Driver, rec: Recorded) -> bool:
    """As apply's prepare stage decides it, the probe answered by the recorded device."""
    missing = driver.missing_packages(rec.site, rec.facts)
    if missing and driver.fresh_handler(missing):
        return True
    if driver.handler_probe(rec.site, rec.facts) is None:
        return False
    return driver.handler_absent(rec.case.text("handler-probe.out"))


def sh_refusals(script: str) -> list[str]:
    """What `sh -n` (and BusyBox's, where there is one: a router's shell) says of `script`."""
    shells = [["sh"]]
    busybox = shutil.which("busybox")
    if busybox is not None:
        shells.append([busybox, "sh"])
    out = []
    for shell in shells:
        done = subprocess.run(
            [*shell, "-n", "-c", script], capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            out.append(f"{shell[-1]}: {done.stderr.strip()}")
    return out


# --- the recordings themselves -------------------------------------------------------------------


@pytest.mark.parametrize("platform", list(Platform), ids=lambda p: p.value)
def test_every_driver_has_factory_and_applied_recordings(platform: Platform) -> None:
    driver = driver_for(platform)
    assert driver.platform is platform
    stages = {c.stage for c in CASES if c.platform is platform}
    assert {"factory", "applied"} <= stages, (
        f"no recorded {platform.value} devices: add a lab with such sites to "
        "scripts/record-driver-captures and run it"
    )


def test_the_cases_of_one_lab_hold_its_spec_and_lock() -> None:
    """The plan of every case is the one apply applied to its lab (case.toml, drivers.md)."""
    labs: dict[str, set[tuple[str, str]]] = {}
    for case in CASES:
        held = (case.text("network.toml"), case.text("network.lock"))
        labs.setdefault(str(case.about["lab"]), set()).add(held)
    assert labs and all(len(held) == 1 for held in labs.values())


@pytest.mark.parametrize(("driver", "case"), _driven())
def test_facts_parse(driver: Driver, case: Case) -> None:
    rec = recorded(case)
    assert case.about["facts_exit_status"] == 0
    assert rec.facts.platform is driver.platform
    assert not [n for n in rec.facts.notes if "in clear" in n]
    release = rec.facts.openwrt.release if rec.facts.openwrt is not None else None
    if driver.platform is Platform.OPENWRT:
        assert release is not None and release.startswith(str(case.about["openwrt_release"]))
    else:
        assert release is None


@pytest.mark.parametrize(("driver", "case"), _driven())
def test_the_recording_is_of_what_the_driver_reads_now(driver: Driver, case: Case) -> None:
    rec = recorded(case)
    paths = driver.read_paths(rec.plan, rec.site, apply_secrets(rec.plan))
    assert paths == list(case.about["read_paths"]), "re-record: scripts/record-driver-captures"
    extra = extra_sections(driver, rec.site, paths)
    assert {name for name, _ in (*FACT_SECTIONS, *extra)} <= set(rec.sections)
    # The driver's own sections, as the device ran them: a changed one wants a new recording.
    digest = hashlib.sha256(build_script(extra).encode()).hexdigest()
    assert digest == case.about["read_sections_sha256"], "re-record: scripts/record-driver-captures"


@pytest.mark.parametrize(("driver", "case"), _driven())
def test_read_sections_name_the_live_public_key(driver: Driver, case: Case) -> None:
    rec = recorded(case)
    names = [name for name, _ in driver.read_sections(rec.site, list(case.about["read_paths"]))]
    assert "sw_pubkey" in names
    assert len(set(names)) == len(names)
    pubkey = rec.sections["sw_pubkey"].stdout.strip()
    if case.stage == "applied":
        assert pubkey == rec.site.public_key  # the key apply put in the lock
    else:
        assert pubkey == ""  # no key before the first apply


def test_no_key_material_in_the_captures() -> None:
    """A 44-character base64 key in a capture is a public key the lab showed, nothing else."""
    for case in CASES:
        rec = recorded(case)
        public = {n.public_key for n in rec.plan.topology.nodes.values() if n.public_key}
        public |= {i.public_key for i in rec.facts.wg.interfaces if i.public_key}
        public |= {p.public_key for i in rec.facts.wg.interfaces for p in i.peers}
        for file in sorted(case.path.iterdir()):
            unknown = set(KEY.findall(file.read_text())) - public
            assert not unknown, f"{case.id}/{file.name}: {sorted(unknown)[0][:6]}… is no public key"


# --- read -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("driver", "case"), _driven())
def test_watchdog_missing_reads_the_recorded_sections(driver: Driver, case: Case) -> None:
    rec = recorded(case)
    missing = driver.watchdog_missing(rec.site, rec.sections)
    if not rec.site.watchdog or case.stage == "applied":
        assert missing is False
    else:
        assert missing is WATCHDOG_OUTSIDE_FILES[driver.platform]


@pytest.mark.parametrize(("driver", "case"), _driven())
def test_missing_packages_are_what_the_device_lacked(driver: Driver, case: Case) -> None:
    rec = recorded(case)
    missing = driver.missing_packages(rec.site, rec.facts)
    assert set(missing) <= set(rec.site.packages())
    assert ("wireguard-tools" in missing) is not case.about["device_has_wg"]
    if "device_packages" in case.about:  # what its package manager said, asked apart
        had = set(case.about["device_packages"])
        assert set(missing) == set(rec.site.packages()) - had


@pytest.mark.parametrize(("driver", "case"), _driven())
def test_held_preshared_keys_agree_with_the_device(driver: Driver, case: Case) -> None:
    rec = recorded(case)
    held = driver.held_psks(rec.site, rec.facts)
    if held is None:
        return  # the driver cannot tell: the running peers say (Linux)
    assert set(held) == {p.name for p in rec.site.peers}
    hashes = dict(line.split() for line in rec.sections["sw_psk"].stdout.splitlines())
    for peer, digest in hashes.items():
        if digest != "-":
            assert held[peer] is True, peer
        else:  # None: UCI has no section for the peer yet, so no key either
            assert held[peer] in (False, None), peer


# --- diff and push --------------------------------------------------------------------------------


def _rendered(driver: Driver, rec: Recorded, secrets: Secrets) -> Rendered:
    return driver.render(rec.plan, rec.site, secrets, rec.facts)


@pytest.mark.parametrize(("driver", "case"), _driven(["applied"]))
def test_an_applied_device_shows_no_change(driver: Driver, case: Case) -> None:
    rec = recorded(case)
    assert f"{case.site}: no changes" in str(case.about["dry_run_after"])  # apply said so too
    diff = driver.diff(rec.site, rec.held, _rendered(driver, rec, apply_secrets(rec.plan)))
    assert diff.lines == ()
    assert diff.changes == ()


@pytest.mark.parametrize(("driver", "case"), _driven(["factory", "installed"]))
def test_a_device_not_yet_applied_shows_changes(driver: Driver, case: Case) -> None:
    rec = recorded(case)
    diff = driver.diff(rec.site, rec.held, _rendered(driver, rec, apply_secrets(rec.plan)))
    assert diff.lines
    assert all(line.startswith(f"{case.site}: ") for line in diff.lines)


@pytest.mark.parametrize("keys", ["apply", "local"])
@pytest.mark.parametrize(("driver", "case"), _driven())
def test_push_keeps_keys_on_stdin(driver: Driver, case: Case, keys: str) -> None:
    rec = recorded(case)
    secrets = apply_secrets(rec.plan) if keys == "apply" else local_secrets(rec.plan)
    items: list[Push] = driver.push(_rendered(driver, rec, secrets), rec.held)
    fake = all_fake_keys(rec.plan)
    assert items and isinstance(items[0], Command)  # the guarded first step
    for item in items:
        if isinstance(item, Command):
            assert item.command.strip() and item.what.strip()
            assert not sh_refusals(item.command)
            assert not any(k in item.command or k in item.what for k in fake)
        else:
            assert isinstance(item, PutFile)
            assert item.path.startswith("/") and not any(k in item.path for k in fake)
            if any(k in item.text for k in fake):
                assert item.mode == 0o600, item.path
    if keys == "local":
        carried = "".join((i.stdin or "") if isinstance(i, Command) else i.text for i in items)
        assert any(k in carried for k in fake)  # the keys did go, and only there
    elif case.stage == "applied":
        assert not [i for i in items if isinstance(i, PutFile)]  # nothing differs: none written


@pytest.mark.parametrize(("driver", "case"), _driven())
def test_what_push_writes_is_backed_up(driver: Driver, case: Case) -> None:
    rec = recorded(case)
    secrets = apply_secrets(rec.plan)
    backup = driver.backup_paths(rec.plan, rec.site, secrets)
    pushed = driver.push(_rendered(driver, rec, secrets), rec.held)
    written = {i.path for i in pushed if isinstance(i, PutFile)}
    assert written <= set(backup), "the revert timer must restore every file push writes"
    safety.backup_script(TOKEN, backup, driver.device)  # plain absolute paths, no duplicates
    assert all(p.startswith("/") for p in backup)


# --- live steps and revert ------------------------------------------------------------------------


def _live(driver: Driver, rec: Recorded, *, fresh: bool, env: str = "") -> list[Step]:
    rendered = _rendered(driver, rec, apply_secrets(rec.plan))
    changes = driver.diff(rec.site, rec.held, rendered).changes
    return driver.live_steps(rec.site, rec.held, rendered, changes, handler_fresh=fresh, env=env)


@pytest.mark.parametrize(("driver", "case"), _driven(["applied"]))
def test_nothing_to_make_live_when_nothing_changed(driver: Driver, case: Case) -> None:
    rec = recorded(case)
    assert handler_fresh(driver, rec) is False
    assert _live(driver, rec, fresh=False) == []


def grown(rec: Recorded) -> Plan:
    """The lab's plan with one more LAN behind each site peer: a peer-only change here."""
    data = tomllib.loads(rec.case.text("network.toml"))
    for n, peer in enumerate(p for p in rec.site.peers if p.kind == "site"):
        data["sites"][peer.name]["lan"].append(f"10.99.{n}.0/24")
    spec = parse_model(Spec, data, "network.toml", SpecError)
    return plan_network(spec, load_lock(rec.case.path / "network.lock"))


@pytest.mark.parametrize(("driver", "case"), _driven(["applied"]))
def test_a_peer_change_is_made_live_without_recreating_the_interface(
    driver: Driver, case: Case
) -> None:
    rec = recorded(case)
    plan = grown(rec)
    site = plan.site(case.site)
    rendered = driver.render(plan, site, apply_secrets(plan), rec.facts)
    diff = driver.diff(site, rec.held, rendered)
    assert diff.lines
    steps = driver.live_steps(site, rec.held, rendered, diff.changes, handler_fresh=False, env="")
    assert steps and all(s.command.strip() for s in steps)
    # What would bring the interface up from nothing, on this very device.
    bare = Held(replace(rec.facts, wg=WgDump(())), rec.held.files, rec.held.watchdog_missing)
    created = driver.live_steps(site, bare, rendered, diff.changes, handler_fresh=False, env="")
    assert not {s.command for s in steps} & {
        s.command for s in created if site.interface in s.command
    }
    for step in steps:
        assert not sh_refusals(step.command), step.command
    # so its revert puts the old peers back live too; from nothing, it would re-create
    assert driver.recreates(site, rec.held, rendered, diff.changes) is False
    assert driver.recreates(site, bare, rendered, diff.changes) is True


@pytest.mark.parametrize(("driver", "case"), _driven(["applied"]))
def test_an_interface_level_change_recreates_and_so_does_its_revert(
    driver: Driver, case: Case
) -> None:
    rec = recorded(case)
    data = tomllib.loads(rec.case.text("network.toml"))
    data["network"]["port"] = data["network"].get("port", 51820) + 1
    plan = plan_network(
        parse_model(Spec, data, "network.toml", SpecError),
        load_lock(rec.case.path / "network.lock"),
    )
    site = plan.site(case.site)
    rendered = driver.render(plan, site, apply_secrets(plan), rec.facts)
    diff = driver.diff(site, rec.held, rendered)
    assert driver.recreates(site, rec.held, rendered, diff.changes) is True
    revert = driver.revert(site, rec.facts, "", hitless=False)
    assert revert.live is None and not any("live_restore" in c for c in revert.commands)


@pytest.mark.parametrize(("driver", "case"), _driven(["factory", "installed"]))
def test_a_new_interface_is_created(driver: Driver, case: Case) -> None:
    rec = recorded(case)
    iface = rec.site.interface
    assert rec.facts.wg.interface(iface) is None  # the device had none
    rendered = _rendered(driver, rec, apply_secrets(rec.plan))
    changes = driver.diff(rec.site, rec.held, rendered).changes
    assert driver.recreates(rec.site, rec.held, rendered, changes) is True
    steps = _live(driver, rec, fresh=False)
    assert any(iface in s.command for s in steps), steps
    fresh = _live(driver, rec, fresh=handler_fresh(driver, rec))
    assert fresh and all(s.command.strip() and s.why.strip() for s in fresh)
    for step in (*steps, *fresh):
        assert not sh_refusals(step.command), step.command


@pytest.mark.parametrize(("driver", "case"), _driven())
def test_the_handler_probe_tells_what_netifd_loaded(driver: Driver, case: Case) -> None:
    rec = recorded(case)
    probe = driver.handler_probe(rec.site, rec.facts)
    if "handler_probe" not in case.about:
        assert probe is None
        return
    assert (probe is not None) is case.about["handler_probe_asked"]
    assert probe is None or probe == case.about["handler_probe"]
    # netifd scans proto handlers at its start; apply restarted it, nothing else did.
    absent = driver.handler_absent(case.text("handler-probe.out"))
    assert absent is (case.stage != "applied")


@pytest.mark.parametrize("env", ENVS, ids=["plain", "lab"])
@pytest.mark.parametrize(("driver", "case"), _driven())
@pytest.mark.parametrize("hitless", [False, True], ids=["recreate", "hitless"])
def test_revert_commands_are_single_lines(
    driver: Driver, case: Case, env: str, hitless: bool
) -> None:
    rec = recorded(case)
    revert = driver.revert(rec.site, rec.facts, env, hitless=hitless)
    assert revert.commands
    safety.revert_text(TOKEN, revert.commands, driver.device)
    for command in revert.commands:
        assert "\n" not in command and command.strip()
        assert not sh_refusals(command), command
    # a snapshot is taken exactly when a command restores from it
    restores = any("live_restore" in c for c in revert.commands)
    assert (revert.live == rec.site.interface) is restores
    assert restores or revert.live is None


# --- keys -----------------------------------------------------------------------------------------


def _interfaces_and_peers(platform: Platform) -> set[tuple[str, str]]:
    out = set()
    for case in CASES:
        if case.platform is platform:
            site = recorded(case).site
            out |= {(site.interface, p.name) for p in site.peers}
    return out


@pytest.mark.parametrize("platform", list(Platform), ids=lambda p: p.value)
def test_key_scripts_are_posix_sh(platform: Platform) -> None:
    driver = driver_for(platform)
    pairs = _interfaces_and_peers(platform)
    assert pairs
    for iface, peer in sorted(pairs):
        for script in (
            driver.private_key_script(iface),
            driver.private_key_script(iface, replace=True),
            driver.psk_read(iface, peer),
            driver.psk_write(iface, peer),
            driver.key_live(iface),
        ):
            assert script.strip() and not sh_refusals(script), script
            assert not KEY.search(script)
            # a key in a variable reaches only the shell's own printf/echo, never an argv
            for command in re.split(r"[;|&]", script):
                if "$key" in command or "$psk" in command:
                    assert command.split()[0] in ("printf", "echo"), command


@pytest.mark.parametrize("platform", list(Platform), ids=lambda p: p.value)
def test_psk_write_reads_the_key_from_stdin(platform: Platform) -> None:
    driver = driver_for(platform)
    for iface, peer in sorted(_interfaces_and_peers(platform)):
        script = driver.psk_write(iface, peer)
        # The key is never an argument: the script reads one line of its stdin.
        assert re.search(r"(^|[;&|]\s*)read -r (\w+)", script), script
