"""Order's use cases, each one unit of work on the kit's `UnitOfWork`.

- `orders`: capture (CreateOrder, async: it asks inventory first), reads, cancel and retry;
- `transitions`: how every saga transition is persisted (order, events, commands) and the
  inputs other services' events and the deadline sweep feed in;
- `saga_commands`: claiming, sending and settling the saga's commands to other services;
- `returns`: returns (RMA): authorize, read, and the receipts and credit notes coming back.
"""
