"""Typed settings, built once in each process's ``__main__`` and passed down.

* :mod:`~meshkit.settings.config` - the sections every process shares: defaults < YAML <
  ``MESH_<SECTION>__<KEY>``, validated, logged with secrets hidden.
* :mod:`~meshkit.settings.peers` - the ``peers`` section: where the other services listen.
* :mod:`~meshkit.settings.urls` - shape checks of the store URLs (``db.url``, ``redis.url``, ``nats.url``).
* :mod:`~meshkit.settings.failfast` - start-up refusals of insecure or fragile production settings.
* :mod:`~meshkit.settings.sample` - renders the commented ``config.sample.yaml``.
"""
