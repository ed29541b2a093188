"""``meshctl tx``: see and repair global transactions through the coordinator's Admin service.

* :mod:`~meshctl.tx.cli` - the commands (list, show, stuck, stats and the repair actions).
* :mod:`~meshctl.tx.render` - rich tables for people, JSON for scripts.
"""
