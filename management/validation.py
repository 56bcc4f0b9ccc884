"""Validators and normalisers for what operators type: documents, MACs, addresses."""

from __future__ import annotations

import ipaddress
import re

from aaa.db.enums import PersonType
from aaa.policy.mac import canonical_mac
from management.errors import RuleViolation

_CPF_LEN = 11
_CNPJ_LEN = 14
_CNPJ_WEIGHTS = (6, 5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2)


def _mod11_digit(total: int) -> int:
    rest = total % 11
    return 0 if rest < 2 else 11 - rest


def cpf_check_digits(base9: str) -> str:
    """The two check digits of a CPF from its first nine digits."""
    values = [int(c) for c in base9]
    first = _mod11_digit(sum(v * w for v, w in zip(values, range(10, 1, -1), strict=True)))
    values.append(first)
    second = _mod11_digit(sum(v * w for v, w in zip(values, range(11, 1, -1), strict=True)))
    return f"{first}{second}"


def cnpj_check_digits(base12: str) -> str:
    """The two check digits of a CNPJ from its first twelve characters.

    Since 2026 the Receita Federal also issues alphanumeric CNPJs: each character counts
    as its ASCII code minus 48, so digits keep their value and the rule is unchanged.
    """
    values = [ord(c) - 48 for c in base12]
    first = _mod11_digit(sum(v * w for v, w in zip(values, _CNPJ_WEIGHTS[1:], strict=True)))
    values.append(first)
    second = _mod11_digit(sum(v * w for v, w in zip(values, _CNPJ_WEIGHTS, strict=True)))
    return f"{first}{second}"


_CPF_RE = re.compile(r"\d{11}")
_CNPJ_RE = re.compile(r"[0-9A-Z]{12}\d{2}")


def normalize_document(raw: str) -> tuple[str, PersonType]:
    """Strip punctuation from a CPF/CNPJ and check its digits; returns (document, type)."""
    cleaned = re.sub(r"[\s./-]", "", raw).upper()
    if _CPF_RE.fullmatch(cleaned):
        if len(set(cleaned)) > 1 and cpf_check_digits(cleaned[:9]) == cleaned[9:]:
            return cleaned, PersonType.PF
        raise RuleViolation("customer.document_invalid", f"invalid CPF: {raw}")
    if _CNPJ_RE.fullmatch(cleaned):
        if len(set(cleaned)) > 1 and cnpj_check_digits(cleaned[:12]) == cleaned[12:]:
            return cleaned, PersonType.PJ
        raise RuleViolation("customer.document_invalid", f"invalid CNPJ: {raw}")
    raise RuleViolation(
        "customer.document_invalid", f"not a CPF (11 digits) or CNPJ (14 characters): {raw}"
    )


def normalize_mac(raw: str) -> str:
    """Any common MAC spelling → `AA:BB:CC:DD:EE:FF` (MikroTik's Calling-Station-Id form)."""
    mac = canonical_mac(raw)
    if mac is None:
        raise RuleViolation("service.mac_invalid", f"invalid MAC address: {raw}")
    return mac


def parse_ipv4(raw: str) -> ipaddress.IPv4Address:
    try:
        return ipaddress.IPv4Address(raw.strip())
    except ValueError as exc:
        raise RuleViolation("ip.invalid", f"invalid IPv4 address: {raw}") from exc


def parse_ip(raw: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(raw.strip())
    except ValueError as exc:
        raise RuleViolation("ip.invalid", f"invalid IP address: {raw}") from exc


def parse_ipv6_prefix(raw: str) -> ipaddress.IPv6Network:
    try:
        return ipaddress.IPv6Network(raw.strip(), strict=True)
    except ValueError as exc:
        raise RuleViolation("ip.invalid", f"invalid IPv6 prefix: {raw}") from exc


def parse_subnet(raw: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(raw.strip(), strict=True)
    except ValueError as exc:
        raise RuleViolation("subnet.invalid", f"invalid subnet (CIDR with host bits zero): {raw}") from exc
