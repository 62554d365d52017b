"""Reading live routers: parsers for what they print, and the collector that asks them."""

from sitewire.diagnose.collect import (
    DeviceFacts,
    FactsError,
    PackageManager,
    TailscaleFacts,
    facts_from_sections,
    format_facts,
    gather_facts,
)
from sitewire.diagnose.parse import Handler, UnexpectedOutput

__all__ = [
    "DeviceFacts",
    "FactsError",
    "Handler",
    "PackageManager",
    "TailscaleFacts",
    "UnexpectedOutput",
    "facts_from_sections",
    "format_facts",
    "gather_facts",
]
