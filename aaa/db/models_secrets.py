"""Models of secrets; imported by aaa.db.models so there is one metadata.

Equipment passwords (Documentação de Senhas): the credentials of the CPE, ONU and Wi-Fi
handed to a subscriber, kept per service. The password is stored only AES-256-GCM
encrypted (`management.equipment_passwords`); `key_id` names the key that encrypted it so
that a key rotation knows what it holds and a wrong key is told apart from a damaged value.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from aaa.db.base import Base
from aaa.db.types import UTCDateTime


class EquipmentPassword(Base):
    __tablename__ = "equipment_passwords"

    id: Mapped[int] = mapped_column(primary_key=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id"), index=True)
    kind: Mapped[str] = mapped_column(String(100))  # "router admin", "Wi-Fi 2.4 GHz", ...
    username: Mapped[str | None] = mapped_column(String(200))
    # base64(nonce ‖ ciphertext ‖ tag); never the plain text.
    password_encrypted: Mapped[str] = mapped_column(Text)
    key_id: Mapped[str] = mapped_column(String(16), index=True)
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_by: Mapped[str] = mapped_column(String(64))

    def __repr__(self) -> str:  # no secret material, not even the ciphertext
        return f"EquipmentPassword(id={self.id}, service_id={self.service_id}, kind={self.kind!r})"
