"""Which RPCs the gateway exposes: every method carrying a `google.api.http` annotation.

Discovery is by descriptor, not by code: every generated `crossdock/**/*_service_pb2.py` module is
imported and each of its services' methods is read. So a new annotated RPC (or a new service
module) is exposed by regenerating the contracts, with no gateway change.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from google.api import annotations_pb2, http_pb2
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor

_VERBS = ("get", "put", "post", "delete", "patch")


@dataclass(frozen=True)
class HttpBinding:
    """One REST binding of an RPC: `POST /v1/orders/{order_id}:cancel` with body "*"."""

    service: ServiceDescriptor
    method: MethodDescriptor
    http_method: str  # upper case
    template: str
    body: str  # "" (no body), "*" (whole request) or a top-level field name
    response_body: str  # "" (whole response) or a top-level field name

    @property
    def grpc_path(self) -> str:
        """The gRPC method path, `/crossdock.order.v1.OrderService/GetOrder`."""
        return f"/{self.service.full_name}/{self.method.name}"

    @property
    def operation_id(self) -> str:
        return f"{self.service.name}_{self.method.name}"


def _bindings_of_rule(
    service: ServiceDescriptor, method: MethodDescriptor, rule: http_pb2.HttpRule
) -> list[HttpBinding]:
    found: list[HttpBinding] = []
    pattern = rule.WhichOneof("pattern")
    if pattern in _VERBS:
        verb, template = pattern.upper(), getattr(rule, pattern)
    elif pattern == "custom":
        verb, template = rule.custom.kind.upper(), rule.custom.path
    else:
        verb, template = "", ""
    if verb and template:
        found.append(HttpBinding(service, method, verb, template, rule.body, rule.response_body))
    for extra in rule.additional_bindings:
        found.extend(_bindings_of_rule(service, method, extra))
    return found


def bindings_of(services: Iterable[ServiceDescriptor]) -> list[HttpBinding]:
    """Every HTTP binding of every annotated, unary method of `services`."""
    found: list[HttpBinding] = []
    for service in services:
        for method in service.methods:
            # Streaming RPCs have no sensible JSON request/response mapping here.
            if method.client_streaming or method.server_streaming:
                continue
            options = method.GetOptions()
            if not options.HasExtension(annotations_pb2.http):
                continue
            found.extend(
                _bindings_of_rule(service, method, options.Extensions[annotations_pb2.http])
            )
    return found


def contract_services(package: str = "crossdock") -> list[ServiceDescriptor]:
    """The services of every generated `*_service_pb2` module under `package`, sorted by name."""
    root = importlib.import_module(package)
    services: dict[str, ServiceDescriptor] = {}
    for base in [Path(p) for p in root.__path__]:
        for source in sorted(base.rglob("*_service_pb2.py")):
            relative = source.relative_to(base).with_suffix("")
            module = importlib.import_module(".".join((package, *relative.parts)))
            for service in module.DESCRIPTOR.services_by_name.values():
                services[service.full_name] = service
    return [services[name] for name in sorted(services)]


def domain_of(service: ServiceDescriptor) -> str:
    """`crossdock.order.v1.OrderService` → "order" (the contract directory)."""
    parts = service.full_name.split(".")
    return parts[1] if len(parts) >= 4 else parts[0]
