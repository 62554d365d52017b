"""Reading live routers: parsers for what they print, the facts they add up to, and the checks.

Pure but for the edges: diagnose.collect sends the fact-gathering script over a connection, and
diagnose.gather opens the connections for status and doctor.
"""

from sitewire.diagnose.collect import gather_facts
from sitewire.diagnose.facts import (
    DeviceFacts,
    FactsError,
    PackageManager,
    TailscaleFacts,
    facts_from_sections,
)
from sitewire.diagnose.parse import Handler, UnexpectedOutput
from sitewire.diagnose.summary import format_facts

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
