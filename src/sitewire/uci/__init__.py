"""OpenWrt's uci: configs as typed values, their text, and a model of the CLI that edits them."""

from sitewire.uci.model import (
    Address,
    Package,
    Section,
    Value,
    anonymous_name,
    parse_address,
    parse_section_ref,
    words,
)
from sitewire.uci.store import CommandResult, UciStore
from sitewire.uci.text import (
    UciParseError,
    export_uci,
    parse_batch,
    parse_uci,
    quote,
    serialize_uci,
)

__all__ = [
    "Address",
    "CommandResult",
    "Package",
    "Section",
    "UciParseError",
    "UciStore",
    "Value",
    "anonymous_name",
    "export_uci",
    "parse_address",
    "parse_batch",
    "parse_section_ref",
    "parse_uci",
    "quote",
    "serialize_uci",
    "words",
]
