"""Alembic revisions of order_svc (component ``order``)."""
