"""meshkit: the participant SDK and the runtime every saga-mesh process shares.

* :mod:`meshkit.sdk` - the SDK's public surface in one import (barriers, tx context, initiator
  builders, server bootstrap, domain errors); what service teams write against.
* :mod:`meshkit.barrier` - the subtransaction barrier (SQL and Redis) and its cleaners.
* :mod:`meshkit.tx` - transactions on the wire: the tx context <-> metadata, branch targets, raw
  branch calls, the initiator builders and the coordinator-backed finality oracle.
* :mod:`meshkit.rpc` - gRPC plumbing: the server bootstrap and its interceptor, mesh credentials,
  status mapping, undecodable bodies, timestamps, the health client.
* :mod:`meshkit.store` - the unit-of-work runner: one hop and one (grouped) commit per unit.
* :mod:`meshkit.settings` - typed settings, URL checks, start-up refusals, the config sample.
* :mod:`meshkit.observability` - logs, log fields, metrics, traces, redaction.
* :mod:`meshkit.runtime` - clocks, ids, periodic work, store health probes.
* :mod:`meshkit.infra` - clients of the infrastructure servers: SQL engines and migrations, NATS
  JetStream, Redis helpers.
* :mod:`meshkit.errors` - the domain errors; domain code raises these and never imports grpc.

Import direction: services -> meshkit -> meshpb. Local-only tooling (embedded servers) lives in
``meshctl.stack``, and the protobuf generator in ``devtools``; neither is part of this runtime.
"""
