"""Create the pay_svc tables payments, refunds and callback_nonces.

Revision ID: pay_0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "pay_0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def _key(length: int = 64) -> sa.types.TypeEngine[str]:
    """An identifier column compared exactly (MySQL's default collation ignores case)."""
    return sa.String(length).with_variant(mysql.VARCHAR(length, collation="utf8mb4_bin"), "mysql", "mariadb")


def upgrade() -> None:
    """Create the three tables with their unique keys and the notifier / nonce-expiry indexes."""
    op.create_table(
        "payments",
        sa.Column("payment_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("order_id", _key(), nullable=False),
        sa.Column("user_id", _key(), nullable=False),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("token", _key(), nullable=False),
        sa.Column("trade_no", _key(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("paid_at", sa.BigInteger(), nullable=True),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.Column("order_notified", sa.Boolean(), nullable=False),
        sa.Column("next_notify_at", sa.BigInteger(), nullable=True),
        sa.Column("notify_attempts", sa.Integer(), nullable=False),
        sa.Column("closed_by", _key(), nullable=False),
        sa.PrimaryKeyConstraint("payment_id", name="pk_payments"),
        sa.UniqueConstraint("order_id", name="uq_payments_order_id"),
        mysql_engine="InnoDB",
    )
    op.create_index("ix_payments_next_notify_at", "payments", ["next_notify_at"])
    op.create_table(
        "refunds",
        sa.Column("refund_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("out_refund_no", _key(), nullable=False),
        sa.Column("payment_id", sa.BigInteger(), nullable=False),
        sa.Column("order_id", _key(), nullable=False),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.String(256), nullable=False),
        sa.Column("gid", sa.String(128), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("refund_id", name="pk_refunds"),
        sa.UniqueConstraint("out_refund_no", name="uq_refunds_out_refund_no"),
        sa.UniqueConstraint("payment_id", name="uq_refunds_payment_id"),
        sa.ForeignKeyConstraint(["payment_id"], ["payments.payment_id"], name="fk_refunds_payment_id"),
        mysql_engine="InnoDB",
    )
    op.create_table(
        "callback_nonces",
        sa.Column("nonce", _key(), nullable=False),
        sa.Column("payment_id", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("nonce", name="pk_callback_nonces"),
        mysql_engine="InnoDB",
    )
    op.create_index("ix_callback_nonces_expires_at", "callback_nonces", ["expires_at"])


def downgrade() -> None:
    """Drop the three tables."""
    op.drop_index("ix_callback_nonces_expires_at", table_name="callback_nonces")
    op.drop_table("callback_nonces")
    op.drop_table("refunds")
    op.drop_index("ix_payments_next_notify_at", table_name="payments")
    op.drop_table("payments")
