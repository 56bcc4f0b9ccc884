"""tickets (atendimentos), messages, protocol counters, service orders and closing reasons

Also seeds the built-in ticket type `SAC` and the built-in operator `sac`
("SAC (Atendimento)", no password: it cannot log in) that opens the subscriber portal's
tickets.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24 10:00:00
"""
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

import aaa.db.types

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

UTC_NOW = aaa.db.types.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        'ticket_types',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=100), nullable=False),
        sa.Column('builtin', sa.Boolean(), nullable=False),
        sa.Column('active', sa.Boolean(), nullable=False),
        sa.Column('created_at', aaa.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_ticket_types')),
        sa.UniqueConstraint('name', name=op.f('uq_ticket_types_name')),
    )
    op.create_table(
        'ticket_protocol_counters',
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('last', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('day', name=op.f('pk_ticket_protocol_counters')),
    )
    op.create_table(
        'service_order_reasons',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=100), nullable=False),
        sa.Column('active', sa.Boolean(), nullable=False),
        sa.Column('created_at', aaa.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_service_order_reasons')),
        sa.UniqueConstraint('name', name=op.f('uq_service_order_reasons_name')),
    )
    op.create_table(
        'tickets',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('protocol', sa.String(length=20), nullable=False),
        sa.Column('customer_id', sa.Integer(), nullable=False),
        sa.Column('service_id', sa.Integer(), nullable=False),
        sa.Column('type_id', sa.Integer(), nullable=True),
        sa.Column('status', sa.String(length=24), nullable=False),
        sa.Column('origin', sa.String(length=16), nullable=False),
        sa.Column('opened_by_id', sa.Integer(), nullable=False),
        sa.Column('opened_by_login', sa.String(length=64), nullable=False),
        sa.Column('destination', sa.String(length=100), nullable=True),
        sa.Column('opening_description', sa.Text(), nullable=True),
        sa.Column('closing_description', sa.Text(), nullable=True),
        sa.Column('diagnostics', sa.Text(), nullable=False),
        sa.Column('created_at', aaa.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column('updated_at', aaa.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column('finished_at', aaa.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column('finished_by_login', sa.String(length=64), nullable=True),
        sa.CheckConstraint(
            "status IN ('draft', 'awaiting_analysis', 'pending', 'resolved', 'finished')",
            name=op.f('ck_tickets_status')),
        sa.CheckConstraint("origin IN ('operator', 'portal')", name=op.f('ck_tickets_origin')),
        sa.ForeignKeyConstraint(['customer_id'], ['customers.id'],
                                name=op.f('fk_tickets_customer_id_customers')),
        sa.ForeignKeyConstraint(['service_id'], ['services.id'],
                                name=op.f('fk_tickets_service_id_services')),
        sa.ForeignKeyConstraint(['type_id'], ['ticket_types.id'],
                                name=op.f('fk_tickets_type_id_ticket_types')),
        sa.ForeignKeyConstraint(['opened_by_id'], ['operators.id'],
                                name=op.f('fk_tickets_opened_by_id_operators')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_tickets')),
        sa.UniqueConstraint('protocol', name=op.f('uq_tickets_protocol')),
    )
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.create_index('ix_tickets_customer_created', ['customer_id', 'created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_tickets_service_id'), ['service_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_tickets_type_id'), ['type_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_tickets_status'), ['status'], unique=False)
        batch_op.create_index(batch_op.f('ix_tickets_origin'), ['origin'], unique=False)
        batch_op.create_index(batch_op.f('ix_tickets_opened_by_id'), ['opened_by_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_tickets_created_at'), ['created_at'], unique=False)

    op.create_table(
        'ticket_messages',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('ticket_id', sa.Integer(), nullable=False),
        sa.Column('author_kind', sa.String(length=16), nullable=False),
        sa.Column('author_id', sa.Integer(), nullable=True),
        sa.Column('author_login', sa.String(length=64), nullable=False),
        sa.Column('body', sa.Text(), nullable=False),
        sa.Column('created_at', aaa.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column('edited_at', aaa.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.CheckConstraint("author_kind IN ('operator', 'subscriber')",
                           name=op.f('ck_ticket_messages_author_kind')),
        sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'],
                                name=op.f('fk_ticket_messages_ticket_id_tickets')),
        sa.ForeignKeyConstraint(['author_id'], ['operators.id'],
                                name=op.f('fk_ticket_messages_author_id_operators')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_ticket_messages')),
    )
    with op.batch_alter_table('ticket_messages', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ticket_messages_ticket_id'), ['ticket_id'], unique=False)

    op.create_table(
        'service_orders',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('ticket_id', sa.Integer(), nullable=False),
        sa.Column('customer_id', sa.Integer(), nullable=False),
        sa.Column('service_id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=100), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('technician', sa.String(length=100), nullable=True),
        sa.Column('description', sa.Text(), nullable=False),
        sa.Column('opened_by_login', sa.String(length=64), nullable=False),
        sa.Column('opened_at', aaa.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column('closed_at', aaa.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column('closed_by_login', sa.String(length=64), nullable=True),
        sa.Column('closing_reason_id', sa.Integer(), nullable=True),
        sa.Column('closing_description', sa.Text(), nullable=True),
        sa.CheckConstraint("status IN ('open', 'closed')", name=op.f('ck_service_orders_status')),
        sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'],
                                name=op.f('fk_service_orders_ticket_id_tickets')),
        sa.ForeignKeyConstraint(['customer_id'], ['customers.id'],
                                name=op.f('fk_service_orders_customer_id_customers')),
        sa.ForeignKeyConstraint(['service_id'], ['services.id'],
                                name=op.f('fk_service_orders_service_id_services')),
        sa.ForeignKeyConstraint(['closing_reason_id'], ['service_order_reasons.id'],
                                name=op.f('fk_service_orders_closing_reason_id_service_order_reasons')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_service_orders')),
    )
    with op.batch_alter_table('service_orders', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_service_orders_ticket_id'), ['ticket_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_service_orders_customer_id'), ['customer_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_service_orders_service_id'), ['service_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_service_orders_status'), ['status'], unique=False)
        batch_op.create_index(batch_op.f('ix_service_orders_opened_at'), ['opened_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_service_orders_closing_reason_id'), ['closing_reason_id'],
                              unique=False)

    # Built-ins: the SAC ticket type and the operator that opens the portal's tickets.
    now = datetime.now(UTC)
    types = sa.table('ticket_types', sa.column('name', sa.String), sa.column('builtin', sa.Boolean),
                     sa.column('active', sa.Boolean), sa.column('created_at', UTC_NOW))
    op.bulk_insert(types, [{'name': 'SAC', 'builtin': True, 'active': True, 'created_at': now}])
    operators = sa.table('operators', sa.column('login', sa.String), sa.column('name', sa.String),
                         sa.column('password_hash', sa.String), sa.column('active', sa.Boolean),
                         sa.column('is_admin', sa.Boolean), sa.column('created_at', UTC_NOW))
    connection = op.get_bind()
    exists = connection.execute(sa.text("SELECT 1 FROM operators WHERE login = 'sac'")).first()
    if exists is None:
        op.bulk_insert(operators, [{'login': 'sac', 'name': 'SAC (Atendimento)', 'password_hash': None,
                                    'active': True, 'is_admin': False, 'created_at': now}])


def downgrade() -> None:
    with op.batch_alter_table('service_orders', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_service_orders_closing_reason_id'))
        batch_op.drop_index(batch_op.f('ix_service_orders_opened_at'))
        batch_op.drop_index(batch_op.f('ix_service_orders_status'))
        batch_op.drop_index(batch_op.f('ix_service_orders_service_id'))
        batch_op.drop_index(batch_op.f('ix_service_orders_customer_id'))
        batch_op.drop_index(batch_op.f('ix_service_orders_ticket_id'))
    op.drop_table('service_orders')
    with op.batch_alter_table('ticket_messages', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ticket_messages_ticket_id'))
    op.drop_table('ticket_messages')
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_tickets_created_at'))
        batch_op.drop_index(batch_op.f('ix_tickets_opened_by_id'))
        batch_op.drop_index(batch_op.f('ix_tickets_origin'))
        batch_op.drop_index(batch_op.f('ix_tickets_status'))
        batch_op.drop_index(batch_op.f('ix_tickets_type_id'))
        batch_op.drop_index(batch_op.f('ix_tickets_service_id'))
        batch_op.drop_index('ix_tickets_customer_created')
    op.drop_table('tickets')
    op.drop_table('service_order_reasons')
    op.drop_table('ticket_protocol_counters')
    op.drop_table('ticket_types')
    # The `sac` operator stays: history rows may name it.
