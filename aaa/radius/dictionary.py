"""Attribute definitions and the dictionary that maps names and wire keys to them.

An attribute's wire key is its type number (1..255) for RFC attributes and the pair
(vendor id, vendor type) for vendor-specific ones.  Each `AttributeDef` carries the codec
for its data type, chosen here once, so packet code never looks at type names.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from aaa.radius.codecs import OCTETS, AttrValue, Codec, codec_for
from aaa.radius.dictfile import AttributeLine, DictLine, ValueLine, VendorLine, _Reader
from aaa.radius.errors import DictionaryError, EncodeError

AttrKey = int | tuple[int, int]

VENDOR_SPECIFIC = 26
BUILTIN_DICTIONARY = Path(__file__).parent / "dictionaries" / "dictionary"


@dataclass(frozen=True, slots=True, eq=False)
class AttributeDef:
    """One attribute: its name, wire key, data type and flags."""

    name: str
    key: AttrKey
    vendor: int
    number: int
    type_name: str
    codec: Codec
    encrypt: int = 0
    has_tag: bool = False
    concat: bool = False
    values: Mapping[str, int] = field(default_factory=dict, repr=False)
    value_names: Mapping[int, str] = field(default_factory=dict, repr=False)
    vendor_format: tuple[int, int] = (1, 1)
    vendor_continuation: bool = False

    def decode(self, raw: bytes) -> AttrValue:
        """The typed value of one raw occurrence (`MalformedPacket` if invalid)."""
        return self.codec.decode(raw)

    def encode_value(self, value: object) -> bytes:
        """The raw value octets (no header) for `value`; enum names are accepted."""
        if isinstance(value, str) and self.values:
            number = self.values.get(value)
            if number is not None:
                value = number
        return self.codec.encode(value)

    def value_name(self, number: int) -> str | None:
        return self.value_names.get(number)


def unknown_attribute(key: AttrKey) -> AttributeDef:
    """A stand-in for an attribute no dictionary defines: its value stays raw octets."""
    if isinstance(key, tuple):
        vendor, number = key
        return AttributeDef(f"Vendor-{vendor}-Attr-{number}", key, vendor, number, "octets", OCTETS)
    return AttributeDef(f"Attr-{key}", key, 0, key, "octets", OCTETS)


@dataclass(frozen=True, slots=True, eq=False)
class Dictionary:
    """Immutable lookup tables built from dictionary files."""

    by_name: Mapping[str, AttributeDef]
    by_key: Mapping[AttrKey, AttributeDef]
    vendors: Mapping[str, int]
    # Vendors whose VSAs are not the RFC 2865 recommended (1 octet type, 1 octet length)
    # layout; their Vendor-Specific attributes stay whole and raw.
    odd_vendor_formats: Mapping[int, tuple[int, int]]
    _folded: Mapping[str, AttributeDef] = field(repr=False)

    def __getitem__(self, name: str) -> AttributeDef:
        found = self.by_name.get(name) or self._folded.get(name.lower())
        if found is None:
            raise KeyError(f"no attribute named {name!r} in the dictionary")
        return found

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (name in self.by_name or name.lower() in self._folded)

    def get(self, name: str) -> AttributeDef | None:
        return self.by_name.get(name) or self._folded.get(name.lower())

    def attribute(self, key: AttrKey) -> AttributeDef:
        """The definition for a wire key, or an octets stand-in if none is known."""
        found = self.by_key.get(key)
        return found if found is not None else unknown_attribute(key)


def _build(lines: Iterable[DictLine]) -> Dictionary:
    vendors: dict[str, VendorLine] = {}
    attributes: list[tuple[AttributeLine, VendorLine | None]] = []
    values: dict[str, dict[str, int]] = {}
    for line in lines:
        if isinstance(line, VendorLine):
            vendors[line.name] = line
        elif isinstance(line, AttributeLine):
            vendor = None
            if line.vendor is not None:
                vendor = vendors.get(line.vendor)
                if vendor is None:
                    raise DictionaryError(f"attribute {line.name} names unknown vendor {line.vendor}")
            attributes.append((line, vendor))
        elif isinstance(line, ValueLine):
            values.setdefault(line.attribute, {})[line.name] = line.number
    by_name: dict[str, AttributeDef] = {}
    by_key: dict[AttrKey, AttributeDef] = {}
    for line, vendor in attributes:
        key: AttrKey
        if vendor is None:
            if not 1 <= line.number <= 255:
                continue  # server-internal attributes never appear on the wire
            key, vendor_id, vendor_format = line.number, 0, (1, 1)
        else:
            vendor_format = (vendor.type_size, vendor.length_size)
            if line.number >= 1 << (8 * vendor.type_size):
                continue
            key, vendor_id = (vendor.number, line.number), vendor.number
        enum = values.get(line.name, {})
        names: dict[int, str] = {}
        for value_name, number in enum.items():
            names.setdefault(number, value_name)
        definition = AttributeDef(
            name=line.name,
            key=key,
            vendor=vendor_id,
            number=line.number,
            type_name=line.type_name,
            codec=codec_for(line.type_name, line.has_tag),
            encrypt=line.encrypt,
            has_tag=line.has_tag,
            concat=line.concat,
            values=enum,
            value_names=names,
            vendor_format=vendor_format,
            vendor_continuation=vendor is not None and vendor.continuation,
        )
        by_name[line.name] = definition
        by_key[key] = definition  # later files win: extra dictionaries load on top
    odd = {
        v.number: (v.type_size, v.length_size)
        for v in vendors.values()
        if (v.type_size, v.length_size) != (1, 1) or v.continuation
    }
    folded = {name.lower(): definition for name, definition in by_name.items()}
    return Dictionary(
        by_name=by_name,
        by_key=by_key,
        vendors={name: v.number for name, v in vendors.items()},
        odd_vendor_formats=odd,
        _folded=folded,
    )


def _root_files(path: Path) -> list[Path]:
    if path.is_dir():
        root = path / "dictionary"
        if root.is_file():
            return [root]
        return sorted(p for p in path.glob("dictionary*") if p.is_file())
    if not path.exists():
        raise DictionaryError(f"dictionary path {path} does not exist")
    return [path]


def load_dictionary(*extra: str | os.PathLike[str], builtin: bool = True) -> Dictionary:
    """Load the project's dictionaries, then each extra file or directory on top.

    A directory contributes its `dictionary` file (which `$INCLUDE`s the rest, as in a
    FreeRADIUS installation) or, lacking one, every `dictionary*` file in it.
    """
    reader = _Reader()
    roots: list[Path] = [BUILTIN_DICTIONARY] if builtin else []
    for item in extra:
        roots.extend(_root_files(Path(item)))

    def lines() -> Iterable[DictLine]:
        for root in roots:
            yield from reader.read(root)

    return _build(lines())


def encode_error(attribute: AttributeDef, reason: str) -> EncodeError:
    return EncodeError(f"{attribute.name}: {reason}")
