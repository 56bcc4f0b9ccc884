"""inventory: OLTs and PON ports, service and customer addresses, operator cities

Adds `services.pon_port_id` (the PON port a service is attached to).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-24 12:00:00
"""
import sqlalchemy as sa
from alembic import op

import aaa.db.types

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('customer_addresses',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('street', sa.String(length=200), nullable=False),
    sa.Column('number', sa.String(length=20), nullable=True),
    sa.Column('complement', sa.String(length=200), nullable=True),
    sa.Column('neighbourhood', sa.String(length=100), nullable=False),
    sa.Column('city', sa.String(length=100), nullable=False),
    sa.Column('state', sa.String(length=2), nullable=False),
    sa.Column('cep', sa.String(length=8), nullable=False),
    sa.Column('latitude', sa.Numeric(precision=9, scale=6), nullable=True),
    sa.Column('longitude', sa.Numeric(precision=9, scale=6), nullable=True),
    sa.Column('updated_at', aaa.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_customer_addresses_customer_id_customers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_customer_addresses')),
    sa.UniqueConstraint('customer_id', name=op.f('uq_customer_addresses_customer_id'))
    )
    with op.batch_alter_table('customer_addresses', schema=None) as batch_op:
        batch_op.create_index('ix_customer_addresses_city_neighbourhood', ['city', 'neighbourhood'], unique=False)

    op.create_table('olts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('ip', sa.String(length=45), nullable=False),
    sa.Column('vendor', sa.String(length=32), nullable=False),
    sa.Column('model', sa.String(length=64), nullable=False),
    sa.Column('pop_id', sa.Integer(), nullable=True),
    sa.Column('username', sa.String(length=100), nullable=True),
    sa.Column('password_encrypted', sa.Text(), nullable=True),
    sa.Column('password_key_id', sa.String(length=16), nullable=True),
    sa.Column('protocol', sa.String(length=8), nullable=False),
    sa.Column('port', sa.Integer(), nullable=False),
    sa.Column('created_at', aaa.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', aaa.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("protocol IN ('telnet', 'ssh')", name=op.f('ck_olts_protocol')),
    sa.CheckConstraint('port >= 1 AND port <= 65535', name=op.f('ck_olts_port')),
    sa.ForeignKeyConstraint(['pop_id'], ['pops.id'], name=op.f('fk_olts_pop_id_pops')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_olts')),
    sa.UniqueConstraint('ip', name=op.f('uq_olts_ip')),
    sa.UniqueConstraint('name', name=op.f('uq_olts_name'))
    )
    op.create_table('operator_cities',
    sa.Column('operator_id', sa.Integer(), nullable=False),
    sa.Column('city', sa.String(length=100), nullable=False),
    sa.ForeignKeyConstraint(['operator_id'], ['operators.id'], name=op.f('fk_operator_cities_operator_id_operators')),
    sa.PrimaryKeyConstraint('operator_id', 'city', name=op.f('pk_operator_cities'))
    )
    op.create_table('olt_ports',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('olt_id', sa.Integer(), nullable=False),
    sa.Column('technology', sa.String(length=4), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('chassis', sa.Integer(), nullable=False),
    sa.Column('slot', sa.Integer(), nullable=False),
    sa.Column('pon', sa.Integer(), nullable=False),
    sa.Column('description', sa.String(length=200), nullable=True),
    sa.Column('default_vlan', sa.Integer(), nullable=True),
    sa.Column('default_cpe_profile', sa.String(length=100), nullable=True),
    sa.Column('routing_nas_id', sa.Integer(), nullable=True),
    sa.Column('routing_interface', sa.String(length=253), nullable=True),
    sa.Column('max_clients', sa.Integer(), nullable=True),
    sa.Column('block_over_utilization', sa.Boolean(), nullable=False),
    sa.Column('allow_verification', sa.Boolean(), nullable=False),
    sa.Column('signal_limit_dbm', sa.Numeric(precision=5, scale=2), nullable=True),
    sa.Column('created_at', aaa.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', aaa.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("technology IN ('gpon', 'epon')", name=op.f('ck_olt_ports_technology')),
    sa.CheckConstraint('max_clients IS NULL OR max_clients >= 1', name=op.f('ck_olt_ports_max_clients')),
    sa.ForeignKeyConstraint(['olt_id'], ['olts.id'], name=op.f('fk_olt_ports_olt_id_olts')),
    sa.ForeignKeyConstraint(['routing_nas_id'], ['nas.id'], name=op.f('fk_olt_ports_routing_nas_id_nas')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_olt_ports')),
    sa.UniqueConstraint('olt_id', 'name', name='uq_olt_ports_olt_name'),
    sa.UniqueConstraint('olt_id', 'technology', 'chassis', 'slot', 'pon', name='uq_olt_ports_olt_position')
    )
    with op.batch_alter_table('olt_ports', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_olt_ports_olt_id'), ['olt_id'], unique=False)

    op.create_table('service_addresses',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('service_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('street', sa.String(length=200), nullable=False),
    sa.Column('number', sa.String(length=20), nullable=True),
    sa.Column('complement', sa.String(length=200), nullable=True),
    sa.Column('neighbourhood', sa.String(length=100), nullable=False),
    sa.Column('city', sa.String(length=100), nullable=False),
    sa.Column('state', sa.String(length=2), nullable=False),
    sa.Column('cep', sa.String(length=8), nullable=False),
    sa.Column('latitude', sa.Numeric(precision=9, scale=6), nullable=True),
    sa.Column('longitude', sa.Numeric(precision=9, scale=6), nullable=True),
    sa.Column('updated_at', aaa.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("kind IN ('installation', 'registration', 'fiscal', 'billing')", name=op.f('ck_service_addresses_kind')),
    sa.ForeignKeyConstraint(['service_id'], ['services.id'], name=op.f('fk_service_addresses_service_id_services')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_service_addresses')),
    sa.UniqueConstraint('service_id', 'kind', name='uq_service_addresses_service_kind')
    )
    with op.batch_alter_table('service_addresses', schema=None) as batch_op:
        batch_op.create_index('ix_service_addresses_city_neighbourhood', ['city', 'neighbourhood'], unique=False)

    with op.batch_alter_table('services', schema=None) as batch_op:
        batch_op.add_column(sa.Column('pon_port_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_services_pon_port_id'), ['pon_port_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_services_pon_port_id_olt_ports'), 'olt_ports', ['pon_port_id'], ['id'])



def downgrade() -> None:
    with op.batch_alter_table('services', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_services_pon_port_id_olt_ports'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_services_pon_port_id'))
        batch_op.drop_column('pon_port_id')

    with op.batch_alter_table('service_addresses', schema=None) as batch_op:
        batch_op.drop_index('ix_service_addresses_city_neighbourhood')

    op.drop_table('service_addresses')
    with op.batch_alter_table('olt_ports', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_olt_ports_olt_id'))

    op.drop_table('olt_ports')
    op.drop_table('operator_cities')
    op.drop_table('olts')
    with op.batch_alter_table('customer_addresses', schema=None) as batch_op:
        batch_op.drop_index('ix_customer_addresses_city_neighbourhood')

    op.drop_table('customer_addresses')
