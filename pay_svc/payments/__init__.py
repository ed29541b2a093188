"""Payments: one per order, from creation through the gateway's callback to refunds.

* :mod:`~pay_svc.payments.values` - the plain values: payments, refunds, callbacks, commands, answers.
* :mod:`~pay_svc.payments.state_machine` - the payment state machine as pure decisions (no I/O).
* :mod:`~pay_svc.payments.tables` - the SQL tables (created by ``pay_svc/migrations``).
* :mod:`~pay_svc.payments.queries` - queries on those tables: inside the caller's session, and the
  refund's units of work on a :class:`meshkit.store.Conn` (the store runner's hot path).
* :mod:`~pay_svc.payments.refunding` - a refund as one unit of work (Refund, and RefundBranch inside the
  runner barrier).
* :mod:`~pay_svc.payments.validation` - input checks naming the field, before any change.
* :mod:`~pay_svc.payments.domain` - :class:`PayDomain`: the use cases, applied transactionally.
"""
