"""How work reaches shipment: the gRPC servicer, the event consumers and the worker."""
