"""What every process is built from at start: settings, logging, metrics, time and ids.

* :mod:`~meshkit.runtime.config` - typed settings: defaults < YAML < ``MESH_<SECTION>__<KEY>``.
* :mod:`~meshkit.runtime.config_sample` - renders the commented ``config.sample.yaml``.
* :mod:`~meshkit.runtime.peers` - the ``peers`` section: where the other services listen.
* :mod:`~meshkit.runtime.logging` - structured JSON (or readable) log lines.
* :mod:`~meshkit.runtime.metrics` - the per-process Prometheus registry and exporter.
* :mod:`~meshkit.runtime.clock` - injectable clocks (tests move a manual clock).
* :mod:`~meshkit.runtime.ids` - snowflake-style 64-bit ids.
* :mod:`~meshkit.runtime.periodic` - background rounds on an interval until stopped.
"""
