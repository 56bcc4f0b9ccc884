"""auth_log.id as bigint: at 20,000 decisions/s an int4 sequence runs out in 30 hours,
at 100/s in eight months (rows deleted by retention do not give numbers back)

SQLite's INTEGER PRIMARY KEY is 64-bit already: PostgreSQL only. The ALTER rewrites the
table under an exclusive lock: on an installation with a large auth log, run the
upgrade in a quiet hour (or prune the log first).

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-24 08:20:00
"""
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('ALTER TABLE auth_log ALTER COLUMN id TYPE bigint')
        op.execute('ALTER SEQUENCE auth_log_id_seq AS bigint')


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('ALTER SEQUENCE auth_log_id_seq AS integer')
        op.execute('ALTER TABLE auth_log ALTER COLUMN id TYPE integer')
