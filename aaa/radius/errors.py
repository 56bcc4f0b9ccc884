"""The errors of the RADIUS codec.

Anything a peer got wrong in a packet is a `MalformedPacket`; anything the caller got
wrong when building one is an `EncodeError`; a broken dictionary file is a
`DictionaryError`.
"""

from __future__ import annotations


class MalformedPacket(ValueError):
    """The peer sent bytes that are not a valid RADIUS packet or attribute value."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class EncodeError(ValueError):
    """A value cannot be encoded as the attribute asks (wrong type, too long, ...)."""


class DictionaryError(ValueError):
    """A dictionary file cannot be parsed."""
