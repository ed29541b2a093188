"""What a running process leans on besides settings and observability.

* :mod:`~meshkit.runtime.clock` - injectable clocks (tests move a manual clock).
* :mod:`~meshkit.runtime.ids` - snowflake-style 64-bit ids.
* :mod:`~meshkit.runtime.periodic` - background rounds on an interval until stopped.
* :mod:`~meshkit.runtime.store_probe` - the periodic ping of required stores, driving gRPC health.
* :mod:`~meshkit.runtime.closing` - ``async with`` for anything with an ``async close()``.
"""
