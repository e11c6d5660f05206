"""Plain-text tables: what runs where, and the demo's summary."""

from __future__ import annotations

from collections.abc import Sequence

from localmesh.mesh import Mesh
from localmesh.services import SANDBOX_CARRIER, instance_name


def render(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [len(header) for header in headers]
    for row in rows:
        widths = [max(width, len(cell)) for width, cell in zip(widths, row, strict=True)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True))

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([line(headers), rule, *(line(row) for row in rows)]).rstrip()


def mesh_table(mesh: Mesh) -> str:
    """Every process with its pid, endpoints and metrics, then the things to copy."""
    rows = _nats_rows(mesh)
    if "postgres" in mesh.pids:
        rows.append(["postgres", str(mesh.pids["postgres"]), _postgres_endpoint(mesh), ""])
    for service in mesh.services:
        for index, instance in enumerate(mesh.instances.get(service) or (service,)):
            rows += _service_rows(mesh, service, instance, index)
    if SANDBOX_CARRIER in mesh.pids:
        rows.append(
            [SANDBOX_CARRIER, str(mesh.pids[SANDBOX_CARRIER]), mesh.sandbox_carrier_url, ""]
        )
    if "warehouse-sim" in mesh.pids:
        rows.append(["warehouse-sim", str(mesh.pids["warehouse-sim"]), "confirms picks", ""])
    table = render(["process", "pid", "listens on", "metrics / docs"], rows)
    facts = [
        f"partner API     {mesh.gateway_url}   (docs {mesh.docs_url}, {mesh.openapi_url})",
        f"demo API key    {mesh.demo_api_key}",
        f"admin token     {mesh.admin_token}   ({mesh.admin_url})",
        f"console         {mesh.console_url}   (sign in with the operator key)",
        f"operator key    {mesh.demo_operator_key}   (ops:read, ops:act)",
        f"NATS (admin)    {mesh.nats_admin_url}",
        f"database        {mesh.db}; data in {mesh.data_dir}, logs in {mesh.log_dir}",
        *_replica_facts(mesh),
        "",
        f"try:  export CROSSDOCK_DEMO_API_KEY={mesh.demo_api_key}",
        '      curl -H "Authorization: Bearer $CROSSDOCK_DEMO_API_KEY" '
        f"{mesh.gateway_url}/v1/items",
        "      make demo     places sample orders and follows them to invoiced",
        "Ctrl-C stops everything; the data stays for the next run (make clean wipes it).",
    ]
    return table + "\n\n" + "\n".join(facts)


def _replica_facts(mesh: Mesh) -> list[str]:
    facts = []
    if mesh.replicas > 1:
        facts.append(
            f"replicas        {mesh.replicas} per service; gateways {', '.join(mesh.gateway_urls)}"
        )
    if len(mesh.nats_urls) > 1:
        facts.append(f"NATS cluster    {len(mesh.nats_urls)} nodes, streams R{len(mesh.nats_urls)}")
    return facts


def _nats_rows(mesh: Mesh) -> list[list[str]]:
    urls = mesh.nats_urls or (mesh.nats_url,)
    monitors = mesh.nats_monitor_urls or (mesh.nats_monitor_url,)
    return [
        [
            instance_name("nats-server", index),
            str(mesh.pids.get(instance_name("nats-server", index), "")),
            url,
            monitor + "/jsz",
        ]
        for index, (url, monitor) in enumerate(zip(urls, monitors, strict=True), start=1)
    ]


def _service_rows(mesh: Mesh, service: str, instance: str, index: int) -> list[list[str]]:
    """One process's rows; the partner URL, docs and admin are the first gateway's."""
    pid = str(mesh.pids.get(instance, ""))
    if service == "gateway":
        if index > 0:
            return [[instance, pid, mesh.gateway_urls[index], ""]]
        return [
            [instance, pid, mesh.gateway_url, f"docs {mesh.docs_url}"],
            ["gateway admin", pid, mesh.admin_url, ""],
        ]
    target = mesh.instance_grpc_targets.get(instance) or mesh.grpc_targets[service]
    metrics = mesh.instance_metrics_urls.get(instance) or mesh.metrics_urls.get(service, "")
    rows = [[instance, pid, "grpc " + target, metrics]]
    if service == "schema-registry" and index == 0:
        rows.append(["schema-registry REST", pid, mesh.registry_url + "/subjects", ""])
    return rows


def _postgres_endpoint(mesh: Mesh) -> str:
    for url in mesh.db_urls.values():
        if url.startswith("postgresql"):
            return url.split("@", 1)[-1].rsplit("/", 1)[0]
    return ""
