"""one record type for side effects: intended -> done | failed

Notifications, freeze records, publications and engagements share one shape (models.SideEffect):
idempotency_key, status (intended | done | failed), attempts, error, created_at, done_at.
Notifications said pending/delivered and kept delivered_at; publications said published and
kept published_at. The values and columns are renamed, nothing is lost.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""
from alembic import op
import sqlalchemy as sa

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("notifications") as batch:
        batch.alter_column("delivered_at", new_column_name="done_at")
        batch.add_column(sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"))
    op.execute("UPDATE notifications SET status = 'intended' WHERE status = 'pending'")
    op.execute("UPDATE notifications SET status = 'done', attempts = 1 WHERE status = 'delivered'")
    op.execute("UPDATE notifications SET attempts = 1 WHERE status = 'failed'")
    with op.batch_alter_table("publications") as batch:
        batch.alter_column("published_at", new_column_name="done_at")
    op.execute("UPDATE publications SET status = 'done' WHERE status = 'published'")
    with op.batch_alter_table("freeze_records") as batch:
        batch.add_column(sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("error", sa.Text(), nullable=True))
    with op.batch_alter_table("engagements") as batch:
        batch.add_column(sa.Column("error", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("engagements") as batch:
        batch.drop_column("error")
    with op.batch_alter_table("freeze_records") as batch:
        batch.drop_column("error")
        batch.drop_column("attempts")
    op.execute("UPDATE publications SET status = 'published' WHERE status = 'done'")
    with op.batch_alter_table("publications") as batch:
        batch.alter_column("done_at", new_column_name="published_at")
    op.execute("UPDATE notifications SET status = 'pending' WHERE status = 'intended'")
    op.execute("UPDATE notifications SET status = 'delivered' WHERE status = 'done'")
    with op.batch_alter_table("notifications") as batch:
        batch.drop_column("attempts")
        batch.alter_column("done_at", new_column_name="delivered_at")
