"""Reader of FreeRADIUS-format dictionary files.

It turns files into a flat stream of definitions (`VendorLine`, `AttributeLine`,
`ValueLine`); `aaa.radius.dictionary` builds the lookup tables from them.  Constructs that
do not describe plain RFC 2865 attributes on the wire (TLV children with dotted numbers,
RFC 6929 extended space, internal attributes above 255, `virtual` ones) are skipped, so a
whole FreeRADIUS installation can be loaded on top of our own files.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from aaa.radius.errors import DictionaryError


@dataclass(frozen=True, slots=True)
class VendorLine:
    name: str
    number: int
    type_size: int = 1
    length_size: int = 1
    continuation: bool = False  # WiMAX "format=1,1,c": a flags octet after the length


@dataclass(frozen=True, slots=True)
class AttributeLine:
    name: str
    number: int
    type_name: str
    vendor: str | None
    encrypt: int = 0
    has_tag: bool = False
    concat: bool = False


@dataclass(frozen=True, slots=True)
class ValueLine:
    attribute: str
    name: str
    number: int


DictLine = VendorLine | AttributeLine | ValueLine

_FLAG_WORDS = frozenset({"has_tag", "concat", "array", "virtual", "internal", "abinary", "secret", "long"})


def _number(text: str) -> int | None:
    try:
        return int(text, 0)
    except ValueError:
        pass
    try:
        return int(text, 10)  # "010": FreeRADIUS reads leading zeros as decimal
    except ValueError:
        return None


def _parse_format(token: str, where: str) -> tuple[int, int, bool]:
    # format=T,L[,c]: T octets of type, L octets of length, c for a continuation octet.
    try:
        parts = token.split("=", 1)[1].split(",")
        return int(parts[0]), int(parts[1]), parts[2:] == ["c"]
    except (IndexError, ValueError):
        raise DictionaryError(f"{where}: bad vendor format {token!r}") from None


def _is_flags(token: str) -> bool:
    return "=" in token or all(word in _FLAG_WORDS for word in token.split(","))


class _Reader:
    def __init__(self) -> None:
        self.seen: set[Path] = set()
        self.vendors: set[str] = set()

    def read(self, path: Path) -> Iterator[DictLine]:
        path = path.resolve()
        if path in self.seen:  # include cycles and diamond includes
            return
        self.seen.add(path)
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise DictionaryError(f"cannot read dictionary {path}: {exc}") from exc
        vendor: str | None = None
        tlv_depth = 0
        for lineno, line in enumerate(text.splitlines(), 1):
            tokens = line.split("#", 1)[0].split()
            if not tokens:
                continue
            keyword = tokens[0]
            where = f"{path}:{lineno}"
            if keyword in ("$INCLUDE", "$INCLUDE-"):
                if len(tokens) < 2:
                    raise DictionaryError(f"{where}: $INCLUDE without a file")
                target = path.parent / tokens[1]
                if keyword == "$INCLUDE-" and not target.exists():
                    continue
                yield from self.read(target)
            elif keyword == "BEGIN-VENDOR":
                if len(tokens) < 2:
                    raise DictionaryError(f"{where}: BEGIN-VENDOR without a name")
                vendor = tokens[1]
            elif keyword == "END-VENDOR":
                vendor = None
            elif keyword == "BEGIN-TLV":
                tlv_depth += 1
            elif keyword == "END-TLV":
                tlv_depth = max(0, tlv_depth - 1)
            elif keyword == "VENDOR":
                vendor_line = self._vendor(tokens, where)
                self.vendors.add(vendor_line.name)
                yield vendor_line
            elif keyword == "ATTRIBUTE" and tlv_depth == 0:
                attribute = self._attribute(tokens, vendor, where)
                if attribute is not None:
                    yield attribute
            elif keyword == "VALUE":
                if len(tokens) < 4:
                    raise DictionaryError(f"{where}: VALUE needs attribute, name and number")
                number = _number(tokens[3])
                if number is not None:
                    yield ValueLine(tokens[1], tokens[2], number)
            # Anything else (PROTOCOL, FLAGS, STRUCT, MEMBER...) does not describe
            # attributes we put on the wire.

    @staticmethod
    def _vendor(tokens: list[str], where: str) -> VendorLine:
        if len(tokens) < 3:
            raise DictionaryError(f"{where}: VENDOR needs a name and a number")
        number = _number(tokens[2])
        if number is None:
            raise DictionaryError(f"{where}: bad vendor number {tokens[2]!r}")
        type_size, length_size, continuation = 1, 1, False
        for token in tokens[3:]:
            if token.startswith("format="):
                type_size, length_size, continuation = _parse_format(token, where)
        return VendorLine(tokens[1], number, type_size, length_size, continuation)

    def _attribute(self, tokens: list[str], vendor: str | None, where: str) -> AttributeLine | None:
        if len(tokens) < 4:
            raise DictionaryError(f"{where}: ATTRIBUTE needs a name, a number and a type")
        name, number_text, type_name = tokens[1], tokens[2], tokens[3].lower()
        number = _number(number_text)
        if number is None:  # "241.1", "26.9.1": extended or TLV space
            return None
        type_name = type_name.split("[", 1)[0]  # octets[50]
        encrypt, has_tag, concat = 0, False, False
        for token in tokens[4:]:
            if token in self.vendors:
                vendor = token  # old style: ATTRIBUTE name number type VendorName
                continue
            if not _is_flags(token):
                continue  # a flag we do not know does not change the wire format
            for flag in token.split(","):
                if flag == "has_tag":
                    has_tag = True
                elif flag == "concat":
                    concat = True
                elif flag.startswith("encrypt="):
                    encrypt = _number(flag[8:]) or 0
                elif flag in ("virtual", "internal"):
                    return None
        return AttributeLine(name, number, type_name, vendor, encrypt, has_tag, concat)


def read_dictionary(path: Path) -> Iterator[DictLine]:
    """Definitions of the file at `path` and every file it includes, in file order."""
    return _Reader().read(path)
