"""Models of tickets; imported by aaa.db.models so there is one metadata."""

from __future__ import annotations

from aaa.db.base import Base  # noqa: F401
