"""Speeds rendered per NAS vendor, at the edge. Speeds arrive in kbit/s."""

from __future__ import annotations

from dataclasses import dataclass

ReplyAttribute = tuple[str, str | int]


@dataclass(frozen=True, slots=True)
class OtherVendorRates:
    """For vendor `other`: which attributes carry download/upload, and in which unit."""

    download_attribute: str = ""
    upload_attribute: str = ""
    unit: str = "bps"  # "bps" or "kbps"


def mikrotik_rate_limit(download_kbps: int, upload_kbps: int) -> str:
    """RouterOS `rx/tx` from the router's side: rx is what it receives, the subscriber's upload."""
    return f"{upload_kbps}k/{download_kbps}k"


def render_speed(vendor: str, download_kbps: int, upload_kbps: int,
                 other: OtherVendorRates = OtherVendorRates()) -> tuple[ReplyAttribute, ...]:
    if vendor == "mikrotik":
        return (("Mikrotik-Rate-Limit", mikrotik_rate_limit(download_kbps, upload_kbps)),)
    if vendor == "huawei":
        # Huawei's input is traffic from the subscriber (upload); rates in bit/s, CIR = PIR.
        up, down = upload_kbps * 1000, download_kbps * 1000
        return (
            ("Huawei-Input-Average-Rate", up),
            ("Huawei-Input-Peak-Rate", up),
            ("Huawei-Output-Average-Rate", down),
            ("Huawei-Output-Peak-Rate", down),
        )
    scale = 1000 if other.unit == "bps" else 1
    rendered: list[ReplyAttribute] = []
    if other.download_attribute:
        rendered.append((other.download_attribute, download_kbps * scale))
    if other.upload_attribute:
        rendered.append((other.upload_attribute, upload_kbps * scale))
    return tuple(rendered)
