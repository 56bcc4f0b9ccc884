"""acct_sessions: Interim-Updates as HOT updates (fillfactor 80, login index without started_at)

An Interim-Update rewrites a session's counters and updated_at, none of them indexed;
PostgreSQL can then update the row in place on its page (a HOT update: no new entry in
any of the table's six indexes) when the page has room and no indexed column changed.
fillfactor 80 leaves that room on new pages (existing pages keep theirs as they are).
started_at is LEAST(known, at - Acct-Session-Time): it moves whenever an interim reports
a slightly earlier start, and while it was in ix_acct_sessions_login_start each such move
made the update non-HOT. The per-login listing (Extrato de Conexões) now reads the
login's rows by ix_acct_sessions_login and sorts them.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-23 20:20:00
"""
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('acct_sessions', schema=None) as batch_op:
        batch_op.drop_index('ix_acct_sessions_login_start')
        batch_op.create_index('ix_acct_sessions_login', ['login'], unique=False)
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('ALTER TABLE acct_sessions SET (fillfactor = 80)')


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('ALTER TABLE acct_sessions RESET (fillfactor)')
    with op.batch_alter_table('acct_sessions', schema=None) as batch_op:
        batch_op.drop_index('ix_acct_sessions_login')
        batch_op.create_index('ix_acct_sessions_login_start', ['login', 'started_at'], unique=False)
