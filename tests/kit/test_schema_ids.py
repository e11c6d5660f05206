"""`ce-dataschema` values: the placeholder without a registry, registered ids with one."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from services.kit import events as ev

NAME = "crossdock.events.v1.OrderPlaced"


@pytest.fixture(autouse=True)
def _clean() -> Iterator[None]:
    assert not ev.schema_ids_installed()
    yield
    while ev.schema_ids_installed():
        ev.uninstall_schema_ids({})


def test_without_a_registry_events_carry_the_placeholder() -> None:
    assert ev.dataschema_for(NAME) == f"urn:crossdock:schema:{NAME}"
    assert ev.schema_id_of(ev.dataschema_for(NAME)) is None


def test_with_a_registry_events_carry_their_id_as_an_absolute_uri() -> None:
    ev.install_schema_ids({NAME: 42})
    assert ev.dataschema_for(NAME) == "crossdock-registry:/schemas/ids/42"
    assert ev.schema_id_of(ev.dataschema_for(NAME)) == 42


def test_an_unregistered_event_fails_loudly_while_a_registry_is_in_force() -> None:
    ev.install_schema_ids({NAME: 42})
    with pytest.raises(ev.UnregisteredSchemaError, match="OrderCancelled"):
        ev.dataschema_for("crossdock.events.v1.OrderCancelled")


def test_the_last_uninstall_returns_to_the_placeholder() -> None:
    ev.install_schema_ids({NAME: 42})
    ev.install_schema_ids({"other.Message": 7})
    ev.uninstall_schema_ids({"other.Message": 7})
    assert ev.dataschema_for(NAME).endswith("/42")
    ev.uninstall_schema_ids({NAME: 42})
    assert ev.dataschema_for(NAME).startswith("urn:crossdock:schema:")


@pytest.mark.parametrize(
    "value",
    [
        "crossdock-registry:/schemas/ids/",
        "crossdock-registry:/schemas/ids/0",
        "crossdock-registry:/schemas/ids/x1",
        "crossdock-registry:/schemas/ids/-3",
    ],
)
def test_a_malformed_id_uri_is_an_error(value: str) -> None:
    with pytest.raises(ValueError, match="malformed ce-dataschema"):
        ev.schema_id_of(value)


@pytest.mark.parametrize("value", [None, "", "urn:crossdock:schema:x.Y", "https://x/y"])
def test_values_without_an_id_name_none(value: str | None) -> None:
    assert ev.schema_id_of(value) is None
