"""Order's gRPC api: the servicer (`servicer`) and proto ↔ domain mapping (`mapping`)."""

from services.order.api.servicer import OrderApi, add_to_server

__all__ = ["OrderApi", "add_to_server"]
