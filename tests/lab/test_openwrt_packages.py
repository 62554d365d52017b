"""opkg (24.10) and apk (25.12) on a lab router, and the cron service the watchdog needs."""

from __future__ import annotations

from pathlib import Path

import pytest

from sitewire.lab.openwrt import cron, initd, opkg, userland
from sitewire.lab.openwrt.env import Release
from sitewire.lab.openwrt.provision import release_text


@pytest.fixture
def router(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SITEWIRE_LAB_ROOT", str(tmp_path))
    (tmp_path / "etc").mkdir()
    return tmp_path


def release(root: Path, version: str) -> None:
    (root / "etc/openwrt_release").write_text(release_text(Release(version)))


def test_opkg_needs_lists_then_installs_with_dependencies(
    router: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    release(router, "24.10.0")
    assert opkg.opkg_main(["install", "wireguard-tools"]) == 255
    assert "Unknown package 'wireguard-tools'." in capsys.readouterr().out
    assert opkg.opkg_main(["update"]) == 0
    assert opkg.opkg_main(["install", "wireguard-tools"]) == 0
    out = capsys.readouterr().out
    assert out.index("Installing kmod-wireguard") < out.index("Installing wireguard-tools")
    assert (router / "usr/bin/wg").stat().st_mode & 0o111
    # The release's own handler from openwrt/openwrt: 24.10's re-creates the link, no renew.
    handler = (router / "lib/netifd/proto/wireguard.sh").read_bytes()
    assert handler == (userland.upstream("24.10") / "lib/netifd/proto/wireguard.sh").read_bytes()
    assert b"ip link add dev" in handler and b"renew" not in handler
    watchdog = (router / "usr/bin/wireguard_watchdog").read_bytes()
    assert watchdog == (userland.upstream("24.10") / "usr/bin/wireguard_watchdog").read_bytes()
    assert opkg.opkg_main(["install", "wireguard-tools"]) == 0
    assert "installed in root is up to date" in capsys.readouterr().out
    assert opkg.opkg_main(["list-installed", "wireguard-*"]) == 0
    assert capsys.readouterr().out == "wireguard-tools - 1.0.20210914-r4\n"


def test_apk_adds_the_syncconf_handler_and_refuses_unknown_names(
    router: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    release(router, "25.12.0")
    assert opkg.apk_main(["add", "nonsense"]) == 1
    assert "nonsense (no such package)" in capsys.readouterr().err
    assert opkg.apk_main(["add", "luci-proto-wireguard"]) == 0
    assert "(3/3) Installing luci-proto-wireguard" in capsys.readouterr().out
    handler = (router / "lib/netifd/proto/wireguard.sh").read_text()
    assert "renew_handler=1" in handler and "{WG} syncconf" in handler
    assert (router / "etc/apk/world").read_text() == "luci-proto-wireguard\n"
    assert opkg.apk_main(["list", "--installed", "wireguard-tools"]) == 0
    assert "[installed]" in capsys.readouterr().out
    assert opkg.apk_main(["info", "-e", "kmod-wireguard"]) == 0


def test_cron_refuses_to_start_with_empty_crontabs(router: Path) -> None:
    (router / "etc/crontabs").mkdir()
    assert cron.initd_main(["restart"]) == 1
    assert not cron.running()
    (router / "etc/crontabs/root").write_text("* * * * * /usr/bin/wireguard_watchdog\n")
    assert cron.initd_main(["enable"]) == 0
    assert initd.enabled("cron")
    assert cron.initd_main(["restart"]) == 0
    assert cron.running()
    assert cron.initd_main(["disable"]) == 0
    assert cron.initd_main(["enabled"]) == 1
