"""Plain-text tables: what runs where, and the demo's summary."""

from __future__ import annotations

from collections.abc import Sequence

from localmesh.mesh import Mesh
from localmesh.services import SANDBOX_CARRIER


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
    rows = [["nats-server", str(mesh.pids.get("nats-server", "")), mesh.nats_url,
             mesh.nats_monitor_url + "/jsz"]]  # fmt: skip
    if "postgres" in mesh.pids:
        rows.append(["postgres", str(mesh.pids["postgres"]), _postgres_endpoint(mesh), ""])
    for service in mesh.services:
        pid = str(mesh.pids.get(service, ""))
        if service == "gateway":
            rows.append([service, pid, mesh.gateway_url, f"docs {mesh.docs_url}"])
            rows.append(["gateway admin", pid, mesh.admin_url, ""])
            continue
        endpoint = "grpc " + mesh.grpc_targets[service]
        rows.append([service, pid, endpoint, mesh.metrics_urls.get(service, "")])
        if service == "schema-registry":
            rows.append(["schema-registry REST", pid, mesh.registry_url + "/subjects", ""])
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
        "",
        f"try:  export CROSSDOCK_DEMO_API_KEY={mesh.demo_api_key}",
        '      curl -H "Authorization: Bearer $CROSSDOCK_DEMO_API_KEY" '
        f"{mesh.gateway_url}/v1/items",
        "      make demo     places sample orders and follows them to invoiced",
        "Ctrl-C stops everything; the data stays for the next run (make clean wipes it).",
    ]
    return table + "\n\n" + "\n".join(facts)


def _postgres_endpoint(mesh: Mesh) -> str:
    for url in mesh.db_urls.values():
        if url.startswith("postgresql"):
            return url.split("@", 1)[-1].rsplit("/", 1)[0]
    return ""
