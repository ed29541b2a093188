"""Stock: the SKUs, their durable stock in SQL, and the use cases over both copies.

* :mod:`~stock_svc.stock.tables` - the SQL tables (created by ``stock_svc/migrations``).
* :mod:`~stock_svc.stock.queries` - queries on those tables: units of work on the store runner's
  connection (hot path), and :class:`StockRepo` on SQLAlchemy sessions (audit, reconciler, epoch).
* :mod:`~stock_svc.stock.validation` - input checks naming the field, plain values in and out.
* :mod:`~stock_svc.stock.domain` - :class:`StockDomain`: PutSku, reads, audit, Reserve/Release branches.
"""
