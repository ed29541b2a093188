"""What a process tells its operators: logs, metrics and traces.

* :mod:`~meshkit.observability.logging` - structured JSON (or escaped readable) log lines.
* :mod:`~meshkit.observability.logctx` - per-task log fields (trace, gid, branch, op, order_id).
* :mod:`~meshkit.observability.ratelimit` - a per-key limiter for repetitive log lines.
* :mod:`~meshkit.observability.redact` - credentials hidden in every URL that may be printed.
* :mod:`~meshkit.observability.metrics` - the per-process Prometheus registry, RPC and barrier metrics.
* :mod:`~meshkit.observability.tracing` - optional OpenTelemetry export over OTLP.
"""
