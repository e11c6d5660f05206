"""schemathesis, with all checks, against the running mesh's /openapi.json.

The CLI runs in a subprocess (as CI runs it) with a fixed seed and deterministic generation, so a
failure reproduces. This module is also the run's hooks file (`hooks` in the generated config).
The hooks never relax a check globally: `before_call` replaces values no schema can describe
(opaque page tokens, per-request idempotency keys), and `filter_failure` drops only the residual
failures `_residual` names, each with the reason no truthful schema can prevent it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

if TYPE_CHECKING:  # the CLI loads this file as its hooks, outside the project's path
    from localmesh import Mesh

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
MAX_EXAMPLES = 20
SEED = 1
# What the Idempotency-Key header's schema allows (printable ASCII, no outer spaces, <= 255).
_VALID_IDEMPOTENCY_KEY = re.compile(r"^[!-~]([ -~]{0,253}[!-~])?$")
_MAX_PAGE_TOKEN = 512

# The marker openapi_rules.with_notes puts before rules JSON Schema cannot express (CEL).
_NOT_EXPRESSIBLE = "Also enforced (not expressible in JSON Schema): "
# Residual ST202s on POST /v1/orders that no schema can prevent, by violation description:
_STATE_OR_DOMAIN_ONLY = re.compile(
    # The catalog is data, not contract: whether a SKU exists or is orderable is state, like
    # an id's existence (which schemathesis already tolerates as 404).
    r"SKU '.*' (does not exist|can no longer be ordered)"
    # The order domain's forms of the CEL rules order.currency_consistent and order.sku_unique.
    r"|price is in .*, the order in .*|SKU '.*' is on another line"
    # Domain rules the contract does not state (reported as contract gaps, proto/ is not ours):
    # Money has no sign rule on unit prices, and Address fields accept whitespace-only text.
    r"|a price cannot be negative|ship_to\.\w+ is required"
)
# Residual ST202s on POST /v1/orders/{order_id}/returns: the return reason codes are data (the
# order service's list, like the catalog's SKUs), so a well-formed code may still be unknown; and
# which line numbers an order has is state, like an id's existence.
_RETURN_REASON_IS_DATA = re.compile(
    r"'.*' is not a return reason code \(one of .*\)|the order has no line \d+"
)


def _config(hooks: Path) -> str:
    return f'hooks = "{hooks}"\n'


def test_schemathesis_finds_no_failures(mesh: Mesh, tmp_path: Path) -> None:
    config = tmp_path / "schemathesis.toml"
    config.write_text(_config(Path(__file__).resolve()))
    command = [
        str(SCHEMATHESIS),
        "--config-file",
        str(config),
        "run",
        mesh.openapi_url,
        "--checks",
        "all",
        "--header",
        f"Authorization: Bearer {mesh.demo_api_key}",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        str(SEED),
        "--generation-deterministic",
        "--wait-for-schema",
        "10",
        "--no-color",
    ]
    env = {**os.environ, "NO_COLOR": "1"}
    run = subprocess.run(
        command, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path
    )
    report = run.stdout + run.stderr
    print(report)  # pytest shows it when the test fails
    assert "ST101" not in report, "schemathesis found server errors"
    assert run.returncode == 0, "schemathesis found failures (report above)"


@pytest.mark.parametrize("path", ["/v1/orders", "/v1/shipments", "/v1/invoices", "/v1/items"])
def test_a_made_up_page_token_is_a_400_not_a_server_error(mesh: Mesh, path: str) -> None:
    # The hook below keeps made-up page tokens out of the schemathesis run, so this pins them.
    response = httpx.get(
        mesh.gateway_url + path,
        params={"page_token": "t7e\u00b7garbage"},
        headers={"Authorization": f"Bearer {mesh.demo_api_key}"},
    )
    assert response.status_code == 400, response.text
    assert [v["field"] for v in response.json()["violations"]] == ["page_token"]


# -- hooks (loaded by the schemathesis CLI from this file, not used by pytest) ----------------


def _register_hooks() -> None:
    import schemathesis

    @schemathesis.hook
    def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
        if case.meta is not None and case.meta.generation.mode.is_negative:
            # Negative cases expect a 4xx anyway (422 included). Editing one would make
            # schemathesis revalidate it as positive and re-add headers it meant to omit.
            return
        # Idempotency-Key: one key per distinct request, as the header's description asks.
        # Deterministic generation draws the same key for different bodies, which the gateway
        # rightly answers 422 (Stripe semantics). Invalid keys are kept: they test the 400.
        headers = case.headers or {}
        for name in list(headers):
            if name.lower() == "idempotency-key" and _VALID_IDEMPOTENCY_KEY.match(
                str(headers[name])
            ):
                headers[name] = str(uuid.uuid4())
        # page_token is opaque (AIP-158): only tokens the server issued are valid, and no schema
        # can list them, so a made-up one is rightly a 400. Too-long ones are kept (400 test).
        query = case.query or {}
        token = query.get("page_token")
        if isinstance(token, str) and token and len(token) <= _MAX_PAGE_TOKEN:
            del query["page_token"]

    @schemathesis.hook
    def filter_failure(context: Any, failure: Any, case: Any, response: Any) -> bool:
        """Keep every failure except the residuals documented in `_residual`."""
        try:
            problem = response.json()
        except ValueError:
            return True
        if not isinstance(problem, dict):
            return True
        operation = (case.method.upper(), case.operation.path)
        return not _residual(failure.code, response.status_code, operation, problem, case)


def _residual(
    code: str, status: int, operation: tuple[str, str], problem: dict[str, Any], case: Any
) -> bool:
    """A failure no truthful schema can prevent (each kind is explained here)."""
    grpc_code = problem.get("grpc_code")
    if code != "ST202" or status not in (400, 409, 422):
        return False
    if grpc_code == "FAILED_PRECONDITION":
        # State, not shape: e.g. cancelling an order that is already completed (409) or
        # returning units that were never delivered (422). A request schema cannot know a
        # resource's state.
        return True
    if status != 400:
        return False
    # Rules the operation documents as not expressible in JSON Schema (CEL), on any route, and
    # on POST /v1/orders the catalog's and the domain's own forms of them.
    violations = problem.get("violations") or []
    documented = _cel_rules(case.operation.schema.raw_schema)
    orders = operation == ("POST", "/v1/orders")
    returns = operation == ("POST", "/v1/orders/{order_id}/returns")
    return bool(violations) and all(
        v["description"] in documented
        or (orders and _STATE_OR_DOMAIN_ONLY.fullmatch(v["description"]))
        or (returns and _RETURN_REASON_IS_DATA.fullmatch(v["description"]))
        for v in violations
    )


def _cel_rules(document: Any) -> set[str]:
    """The rule messages the document lists as not expressible in JSON Schema."""
    found: set[str] = set()
    if isinstance(document, dict):
        text = document.get("description")
        if isinstance(text, str) and _NOT_EXPRESSIBLE in text:
            found.update(text.split(_NOT_EXPRESSIBLE, 1)[1].rstrip(".").split("; "))
        for value in document.values():
            found |= _cel_rules(value)
    elif isinstance(document, list):
        for value in document:
            found |= _cel_rules(value)
    return found


if __name__ == "_schemathesis_hooks":  # the name the CLI loads a hooks file under
    _register_hooks()
