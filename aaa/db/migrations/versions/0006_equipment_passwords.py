"""equipment passwords

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23 18:00:00.000000
"""
from alembic import op
import sqlalchemy as sa
import aaa.db.types


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('equipment_passwords',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('service_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=100), nullable=False),
    sa.Column('username', sa.String(length=200), nullable=True),
    sa.Column('password_encrypted', sa.Text(), nullable=False),
    sa.Column('key_id', sa.String(length=16), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('created_at', aaa.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=64), nullable=False),
    sa.Column('updated_at', aaa.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_by', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['service_id'], ['services.id'], name=op.f('fk_equipment_passwords_service_id_services')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_equipment_passwords'))
    )
    with op.batch_alter_table('equipment_passwords', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_equipment_passwords_key_id'), ['key_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_equipment_passwords_service_id'), ['service_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('equipment_passwords', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_equipment_passwords_service_id'))
        batch_op.drop_index(batch_op.f('ix_equipment_passwords_key_id'))

    op.drop_table('equipment_passwords')
