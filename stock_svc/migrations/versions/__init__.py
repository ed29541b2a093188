"""Alembic revisions of the stock tables (component ``stock``)."""
