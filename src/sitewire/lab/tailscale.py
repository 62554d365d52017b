"""Entry point of the lab's `tailscale` stand-in (the shim in a router's /usr/sbin imports this)."""

from __future__ import annotations

from sitewire.lab.tailnet.cli import main
from sitewire.lab.tailnet.provision import NodeSpec, provision_command

__all__ = ["NodeSpec", "main", "provision_command"]

if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
