"""MAC addresses in one canonical spelling, `AA:BB:CC:DD:EE:FF` (MikroTik's Calling-Station-Id)."""

from __future__ import annotations

import re

_FORMS = (
    re.compile(r"[0-9a-f]{2}([:-])[0-9a-f]{2}(?:\1[0-9a-f]{2}){4}"),  # aa:bb:.. / aa-bb-..
    re.compile(r"[0-9a-f]{4}([.-])[0-9a-f]{4}\1[0-9a-f]{4}"),  # aabb.ccdd.eeff / aabb-ccdd-eeff
    re.compile(r"[0-9a-f]{12}"),
)
_SEPARATORS = re.compile(r"[:.-]")


def canonical_mac(raw: str) -> str | None:
    """The canonical form of a MAC in any common spelling, or None if it is not one."""
    candidate = raw.strip().lower()
    if not any(form.fullmatch(candidate) for form in _FORMS):
        return None
    digits = _SEPARATORS.sub("", candidate).upper()
    return ":".join(digits[i : i + 2] for i in range(0, 12, 2))
