"""services.password wide enough for a sealed (AES-GCM) password

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-23 18:05:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('services', schema=None) as batch_op:
        batch_op.alter_column('password', existing_type=sa.String(length=128),
                              type_=sa.String(length=512), existing_nullable=False)


def downgrade() -> None:
    with op.batch_alter_table('services', schema=None) as batch_op:
        batch_op.alter_column('password', existing_type=sa.String(length=512),
                              type_=sa.String(length=128), existing_nullable=False)
