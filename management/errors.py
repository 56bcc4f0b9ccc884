"""Refusals. The CLI prints `str(error)` on one line and exits with code 1."""

from __future__ import annotations


class RuleViolation(Exception):
    """A business rule refused the operation; `rule` is its stable name."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.rule = rule
        self.message = message

    def __str__(self) -> str:
        return f"{self.message} [rule: {self.rule}]"


class NotFound(RuleViolation):
    def __init__(self, what: str, key: object) -> None:
        super().__init__(f"{what}.not_found", f"{what} {key!s} not found")


class PermissionDenied(RuleViolation):
    def __init__(self, login: str, permission: str) -> None:
        super().__init__(
            "operator.permission", f"operator {login} lacks the permission {permission}"
        )
        self.permission = permission
