"""The shared Alembic environment (``env.py``) of every component's migrations (see meshkit.infra.migrate)."""
