"""sitewire: one network file in, verified WireGuard between LANs out."""

__version__ = "0.1.0"
