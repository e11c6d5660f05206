"""Partner-facing RPCs carry google.api.http annotations under /v1, as the gateway needs them."""

from __future__ import annotations

from crossdock.billing.v1 import billing_service_pb2
from crossdock.carrier.v1 import carrier_service_pb2
from crossdock.inventory.v1 import inventory_service_pb2
from crossdock.order.v1 import order_service_pb2
from crossdock.shipment.v1 import shipment_service_pb2
from google.api import annotations_pb2, http_pb2
from google.protobuf.descriptor import ServiceDescriptor

SERVICES: list[ServiceDescriptor] = [
    order_service_pb2.DESCRIPTOR.services_by_name["OrderService"],
    inventory_service_pb2.DESCRIPTOR.services_by_name["InventoryService"],
    shipment_service_pb2.DESCRIPTOR.services_by_name["ShipmentService"],
    billing_service_pb2.DESCRIPTOR.services_by_name["BillingService"],
    carrier_service_pb2.DESCRIPTOR.services_by_name["CarrierAdapterService"],
]

# The partner API the README promises: (HTTP method, path template).
PARTNER_ROUTES = {
    ("post", "/v1/orders"),
    ("get", "/v1/orders"),
    ("get", "/v1/orders/{order_id}"),
    ("post", "/v1/orders/{order_id}:cancel"),
    ("get", "/v1/orders/{order_id}/timeline"),
    ("post", "/v1/orders/{order_id}/shipments/{shipment_id}:reship"),
    ("post", "/v1/orders/{order_id}/shipments/{shipment_id}:cancelAndCredit"),
    ("post", "/v1/orders/{order_id}/returns"),
    ("get", "/v1/returns/{return_id}"),
    ("get", "/v1/returns"),
    ("get", "/v1/shipments/{shipment_id}"),
    ("get", "/v1/shipments/{shipment_id}/tracking"),
    ("get", "/v1/items"),
    ("get", "/v1/inventory/availability"),
    ("get", "/v1/invoices"),
    ("get", "/v1/invoices/{invoice_id}"),
    ("post", "/v1/carriers/{carrier}/webhooks"),
}


def _routes() -> dict[tuple[str, str], str]:
    found: dict[tuple[str, str], str] = {}
    for service in SERVICES:
        for method in service.methods:
            options = method.GetOptions()
            if not options.HasExtension(annotations_pb2.http):
                continue
            rule: http_pb2.HttpRule = options.Extensions[annotations_pb2.http]
            verb = rule.WhichOneof("pattern")
            assert verb is not None, method.full_name
            found[(verb, getattr(rule, verb))] = method.full_name
    return found


def test_every_partner_route_is_annotated() -> None:
    missing = PARTNER_ROUTES - set(_routes())
    assert not missing, f"partner routes without an annotated RPC: {sorted(missing)}"


def test_annotated_routes_are_versioned_and_bind_existing_fields() -> None:
    for service in SERVICES:
        for method in service.methods:
            options = method.GetOptions()
            if not options.HasExtension(annotations_pb2.http):
                continue
            rule = options.Extensions[annotations_pb2.http]
            verb = rule.WhichOneof("pattern")
            path = getattr(rule, verb)
            assert path.startswith("/v1/"), f"{method.full_name}: {path}"
            fields = method.input_type.fields_by_name
            for segment in path.split("/"):
                if segment.startswith("{"):
                    name = segment.strip("{}").split(":")[0].rstrip("}")
                    name = name.split("}")[0]
                    assert name in fields, f"{method.full_name}: {{{name}}} is not a request field"
            if rule.body not in ("", "*"):
                assert rule.body in fields, f"{method.full_name}: body {rule.body!r} is not a field"
            if verb == "get":
                assert rule.body == "", f"{method.full_name}: a GET has no body"
