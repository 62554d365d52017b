"""OpenWrt's uci: configs as typed values, their text, and a model of the CLI that edits them."""

from sitewire.uci.store import CommandResult, UciStore
from sitewire.uci.text import (
    Address,
    Package,
    Section,
    UciParseError,
    Value,
    anonymous_name,
    export_uci,
    parse_address,
    parse_batch,
    parse_section_ref,
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
]
