"""Validators: CPF/CNPJ check digits and MAC normalisation (hypothesis properties)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aaa.db.enums import PersonType
from management.errors import RuleViolation
from management.validation import (
    cnpj_check_digits,
    cpf_check_digits,
    normalize_document,
    normalize_mac,
)


def reference_cpf_digits(base: str) -> str:
    """The CPF definition written out: weights 10..2 then 11..2, remainder < 2 gives 0."""
    digits = [int(c) for c in base]
    for weights in (range(10, 1, -1), range(11, 1, -1)):
        total = sum(d * w for d, w in zip(digits, weights, strict=False))
        digits.append(0 if total % 11 < 2 else 11 - total % 11)
    return f"{digits[9]}{digits[10]}"


def reference_cnpj_digits(base: str) -> str:
    weights1 = [5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2]
    weights2 = [6, *weights1]
    values = [ord(c) - 48 for c in base]
    d1 = sum(v * w for v, w in zip(values, weights1, strict=True)) % 11
    values.append(0 if d1 < 2 else 11 - d1)
    d2 = sum(v * w for v, w in zip(values, weights2, strict=True)) % 11
    values.append(0 if d2 < 2 else 11 - d2)
    return f"{values[12]}{values[13]}"


@settings(max_examples=300)
@given(st.text(alphabet="0123456789", min_size=9, max_size=9))
def test_cpf_validator_agrees_with_definition(base: str) -> None:
    """A generated CPF is accepted exactly when its check digits follow the definition."""
    good = base + reference_cpf_digits(base)
    assert cpf_check_digits(base) == reference_cpf_digits(base)
    if len(set(good)) == 1:
        with pytest.raises(RuleViolation):
            normalize_document(good)
        return
    assert normalize_document(good) == (good, PersonType.PF)
    formatted = f"{good[:3]}.{good[3:6]}.{good[6:9]}-{good[9:]}"
    assert normalize_document(formatted) == (good, PersonType.PF)
    wrong = good[:10] + str((int(good[10]) + 1) % 10)
    with pytest.raises(RuleViolation):
        normalize_document(wrong)


@settings(max_examples=300)
@given(st.text(alphabet="0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=12, max_size=12))
def test_cnpj_validator_agrees_with_definition(base: str) -> None:
    """CNPJs, numeric or the 2026 alphanumeric form, follow the weighted mod-11 definition."""
    good = base + reference_cnpj_digits(base)
    assert cnpj_check_digits(base) == reference_cnpj_digits(base)
    if len(set(good)) == 1:
        return
    assert normalize_document(good.lower()) == (good, PersonType.PJ)
    wrong = good[:13] + str((int(good[13]) + 1) % 10)
    with pytest.raises(RuleViolation):
        normalize_document(wrong)


def test_known_documents() -> None:
    """Published examples: a valid CPF and CNPJ, with punctuation; repeated digits refused."""
    assert normalize_document("529.982.247-25") == ("52998224725", PersonType.PF)
    assert normalize_document("11.222.333/0001-81") == ("11222333000181", PersonType.PJ)
    for bad in ("111.111.111-11", "529.982.247-24", "12345", "00000000000000", "abc"):
        with pytest.raises(RuleViolation) as info:
            normalize_document(bad)
        assert info.value.rule == "customer.document_invalid"


mac_bytes = st.binary(min_size=6, max_size=6)


def spellings(raw: bytes) -> list[str]:
    h = raw.hex()
    pairs = [h[i:i + 2] for i in range(0, 12, 2)]
    quads = [h[i:i + 4] for i in range(0, 12, 4)]
    return [":".join(pairs).upper(), "-".join(pairs), ".".join(quads), "-".join(quads),
            h.upper(), h]


@settings(max_examples=300)
@given(mac_bytes)
def test_mac_normaliser_accepts_common_forms_and_is_idempotent(raw: bytes) -> None:
    """AA:BB:.., aa-bb-.., aabb.ccdd.eeff, aabb-ccdd-eeff, AABBCCDDEEFF → one canonical form."""
    expected = ":".join(f"{b:02X}" for b in raw)
    for spelling in spellings(raw):
        normalized = normalize_mac(spelling)
        assert normalized == expected
        assert normalize_mac(normalized) == normalized


@pytest.mark.parametrize("bad", ["", "aa:bb:cc:dd:ee", "aa:bb:cc:dd:ee:fg", "aa:bb-cc:dd:ee:ff",
                                 "aabb.ccdd-eeff", "aabbccddeeff00", "a:b:c:d:e:f"])
def test_mac_normaliser_refuses_garbage(bad: str) -> None:
    """Malformed or mixed-separator MACs are refused with the service.mac_invalid rule."""
    with pytest.raises(RuleViolation) as info:
        normalize_mac(bad)
    assert info.value.rule == "service.mac_invalid"
