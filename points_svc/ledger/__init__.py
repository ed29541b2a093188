"""The points ledger: accounts and the points log, one row per movement.

* :mod:`~points_svc.ledger.values` - the vocabulary: log entry types and states, and the values handed out.
* :mod:`~points_svc.ledger.tables` - the SQL tables (created by ``points_svc/migrations``).
* :mod:`~points_svc.ledger.queries` - queries on those tables: conditional UPDATEs as units of work on
  the store runner's connection, and the audit on SQLAlchemy.
* :mod:`~points_svc.ledger.validation` - input checks naming the field, before anything changes.
* :mod:`~points_svc.ledger.domain` - :class:`Points`: grants, holds, refunds, the audit.
"""
