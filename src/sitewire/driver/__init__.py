"""The platforms sitewire drives, one module each; `driver_for` is the only lookup."""

from __future__ import annotations

from sitewire.driver.base import (
    Command,
    Diff,
    Driver,
    Held,
    Push,
    PutFile,
    Revert,
    install_command,
)
from sitewire.spec.model import Platform

__all__ = [
    "Command",
    "Diff",
    "Driver",
    "Held",
    "Push",
    "PutFile",
    "Revert",
    "driver_for",
    "install_command",
]


def driver_for(platform: Platform) -> Driver:
    """The driver of `platform` (imported on first use: drivers reach into render and deploy)."""
    from sitewire.driver import linux, openwrt

    drivers: dict[Platform, Driver] = {
        Platform.OPENWRT: openwrt.DRIVER,
        Platform.LINUX: linux.DRIVER,
    }
    return drivers[platform]
