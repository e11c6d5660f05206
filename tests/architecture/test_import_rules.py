"""The architecture rules in .importlinter hold, and they really catch a break.

The first test runs import-linter on the repository, as `make lint` does. The others copy the same
config next to a tiny package tree shaped like ours (the kit; six services with a domain, adapters
and entrypoints each; the gateway; localmesh): clean it passes, and one forbidden import makes
exactly the contract it breaks fail, so a contract that could never fail (a typo in a module name,
a missing `include_external_packages`) shows up here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

# Each test runs lint-imports as a child process.
pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / ".importlinter"
SERVICES = (
    "order",
    "inventory",
    "shipment",
    "billing",
    "carrier_adapter",
    "schema_registry",
    "control_tower",
)

KIT = "The kit imports no service, nor the gateway or localmesh"
INDEPENDENT = "No service imports another service"
PURE = "Domains import no gRPC, database, NATS or generated contract code"
LAYERS = "The gateway's adapters never import its entrypoints"
SERVICE_LAYERS = "Inside a service, imports point down: main, entrypoints, app, adapters, domain"
GATEWAY = "The gateway imports no service"
CONTRACTS = (KIT, INDEPENDENT, PURE, LAYERS, SERVICE_LAYERS, GATEWAY)


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """`lint-imports` with the config in `root`, importing the packages found there."""
    binary = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert binary, "import-linter is not installed (pip install -e '.[dev]')"
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [binary, "--no-cache", "--no-logo", str(root / ".importlinter")],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def verdicts(output: str) -> dict[str, str]:
    """Contract name → KEPT or BROKEN, from lint-imports' report (names may wrap)."""
    flat = " ".join(output.split())
    found = {}
    for name in CONTRACTS:
        at = flat.find(name)
        assert at >= 0, f"contract {name!r} not in the report:\n{output}"
        rest = flat[at:]
        kept, broken = rest.find(" KEPT"), rest.find(" BROKEN")
        candidates = [i for i in (kept, broken) if i >= 0]
        assert candidates, output
        found[name] = "KEPT" if min(candidates) == kept else "BROKEN"
    return found


def test_the_repository_keeps_every_contract() -> None:
    result = lint_imports(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert verdicts(result.stdout) == dict.fromkeys(CONTRACTS, "KEPT")


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A package tree shaped like the repository's, with its real .importlinter."""
    rooms = ("domain", "adapters", "entrypoints")
    packages = [
        "services",
        "services/kit",
        "gateway",
        "gateway/adapters",
        "gateway/entrypoints",
        "localmesh",
        *(f"services/{name}" for name in SERVICES),
        *(f"services/{name}/{room}" for name in SERVICES for room in rooms),
    ]
    for package in packages:
        (tmp_path / package).mkdir(parents=True, exist_ok=True)
        (tmp_path / package / "__init__.py").write_text("")
    for name in SERVICES:
        (tmp_path / f"services/{name}/main.py").write_text(f"import services.{name}.entrypoints\n")
        (tmp_path / f"services/{name}/app.py").write_text(f"import services.{name}.adapters\n")
    # What a clean tree may do: a service uses the kit, a domain uses the kit's pure helpers,
    # entrypoints use adapters and the domain.
    (tmp_path / "services/kit/values.py").write_text("import decimal\n")
    (tmp_path / "services/order/app.py").write_text("import grpc\nimport services.kit.values\n")
    (tmp_path / "services/order/domain/model.py").write_text("import services.kit.values\n")
    (tmp_path / "services/order/entrypoints/grpc.py").write_text(
        "import grpc\nimport services.order.adapters\nimport services.order.domain.model\n"
    )
    shutil.copy(CONFIG, tmp_path / ".importlinter")
    return tmp_path


def test_a_tree_shaped_like_ours_keeps_every_contract(tree: Path) -> None:
    result = lint_imports(tree)
    assert result.returncode == 0, result.stdout + result.stderr
    assert verdicts(result.stdout) == dict.fromkeys(CONTRACTS, "KEPT")


@pytest.mark.parametrize(
    ("module", "source", "broken"),
    [
        ("services/kit/runtime.py", "import services.billing\n", KIT),
        ("services/kit/cli.py", "import localmesh\n", KIT),
        ("services/order/app.py", "from services.inventory import domain\n", INDEPENDENT),
        ("services/shipment/domain/rules.py", "import sqlalchemy\n", PURE),
        ("services/billing/domain/money.py", "from crossdock.common.v1 import common_pb2\n", PURE),
        ("services/order/domain/saga.py", "import grpc\n", PURE),
        ("services/carrier_adapter/domain/events.py", "import nats\n", PURE),
        (
            "services/billing/adapters/clients.py",
            "import services.billing.entrypoints\n",
            SERVICE_LAYERS,
        ),
        ("services/order/domain/saga_steps.py", "import services.order.app\n", SERVICE_LAYERS),
        ("services/shipment/adapters/codecs.py", "import services.shipment.app\n", SERVICE_LAYERS),
        (
            "services/inventory/domain/ports.py",
            "import services.inventory.adapters\n",
            SERVICE_LAYERS,
        ),
        ("gateway/adapters/store.py", "from gateway.entrypoints import grpc\n", LAYERS),
        ("gateway/transcoder.py", "import services.order.app\n", GATEWAY),
    ],
    ids=["kit-imports-a-service", "kit-imports-localmesh", "service-imports-a-service"]
    + ["domain-imports-" + name for name in ("sqlalchemy", "crossdock", "grpc", "nats")]
    + [
        "service-adapter-imports-entrypoints",
        "domain-imports-app",
        "adapter-imports-app",
        "domain-imports-adapters",
        "gateway-adapter-imports-entrypoints",
        "gateway-imports-a-service",
    ],
)
def test_one_forbidden_import_breaks_its_contract(
    tree: Path, module: str, source: str, broken: str
) -> None:
    (tree / module).write_text(source)

    result = lint_imports(tree)

    assert result.returncode != 0, result.stdout
    expected = dict.fromkeys(CONTRACTS, "KEPT") | {broken: "BROKEN"}
    assert verdicts(result.stdout) == expected
