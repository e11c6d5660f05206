"""The console's timeline page against a real control tower (real nats-server and SQLite, events
published as the producers' relays publish them): rows, references, live refresh until the
order is final, and a precise message for each way a look-up fails."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from nats.aio.client import Client as NATS

from tests.control_tower.lifecycle import Lifecycle
from tests.control_tower.test_service import publish, running_tower
from tests.fixtures.nats import NatsServer
from tests.fixtures.waiting import wait_for
from tests.gateway.console_helpers import ConsoleRig, console_rig, sign_in


@pytest.fixture
async def rig(
    tmp_path: Path, sqlite_url: str, nats_server: NatsServer, nats_client: NATS
) -> AsyncIterator[ConsoleRig]:
    # nats_client first: it wipes every stream, so the tower must declare its own after it.
    gateway_db = f"sqlite:///{tmp_path}/gateway.db"
    async with contextlib.AsyncExitStack() as exits:
        target, _ = await exits.enter_async_context(running_tower(sqlite_url, nats_server.url))
        yield await exits.enter_async_context(console_rig(gateway_db, tower_target=target))


@pytest.fixture
async def operator(rig: ConsoleRig) -> AsyncIterator[httpx.AsyncClient]:
    key = await rig.new_operator_key(["ops:read"])
    async with rig.browser() as browser:
        assert (await sign_in(browser, key["operator_key"])).status_code == 303
        yield browser


def rows_of(page: str) -> list[str]:
    return re.findall(r'<tr class="producer-row-[^"]+" data-producer="([^"]+)"', page)


def refusal_of(page: str) -> str:
    found = re.search(r'id="refusal">([^<]*)<', page)
    assert found, "the page shows no refusal"
    return found.group(1)


async def test_a_timeline_refreshes_itself_until_the_order_is_final(
    rig: ConsoleRig, operator: httpx.AsyncClient, nats_client: NATS
) -> None:
    js = nats_client.jetstream()
    order = Lifecycle().build()
    *moving, completed = order.events
    for event in moving:
        await publish(js, event)

    async def page() -> httpx.Response:
        return await operator.get("/console/timeline", params={"ref": order.tracking_number})

    shown = await wait_for(page, lambda r: len(rows_of(r.text)) == len(moving))
    assert shown.status_code == 200
    text = shown.text
    assert rows_of(text)[:3] == ["order", "inventory", "order"]  # causal order
    assert {"order", "inventory", "shipment", "carrier-adapter", "billing"} <= set(rows_of(text))
    assert f'<code id="order-id">{order.order_id}</code>' in text
    assert "found by tracking number" in text
    assert '<strong id="order-state">RELEASED</strong>' in text
    # Producers are told apart; the trace id is shown with a copy button.
    assert 'class="producer producer-carrier-adapter"' in text
    assert f'data-copy="{order.trace_id}"' in text
    # References carried by the events link to a search for them.
    assert f'href="/console/timeline?ref={order.tracking_number}" data-kind="tracking"' in text
    assert f'href="/console/timeline?ref={order.external_order_id}"' in text
    assert f'href="/console/timeline?ref={order.invoice_number}" data-kind="invoice"' in text
    assert f'href="/console/timeline?ref={order.shipment_id}"' in text
    # Not final yet: the table asks htmx to fetch it again.
    rows_url = f"/console/timeline/rows?ref={order.tracking_number}&amp;partner="
    assert f'hx-get="{rows_url}" hx-trigger="every 5s"' in text

    await publish(js, completed)
    fragment = await wait_for(
        lambda: operator.get(
            "/console/timeline/rows",
            params={"ref": order.tracking_number, "partner": ""},
            headers={"HX-Request": "true"},
        ),
        lambda r: len(rows_of(r.text)) == len(order.events),
    )
    assert fragment.status_code == 200
    assert '<section id="timeline" data-final="true">' in fragment.text  # no trigger: stops
    assert '<strong id="order-state">COMPLETED</strong>' in fragment.text
    assert "<html" not in fragment.text  # the table alone


async def test_an_unknown_reference_says_so_and_keeps_looking(
    operator: httpx.AsyncClient,
) -> None:
    page = await operator.get("/console/timeline", params={"ref": "  PO-404 "})
    assert page.status_code == 404
    assert refusal_of(page.text).startswith("No order is known by &#39;PO-404&#39;.")
    assert 'hx-trigger="every 5s"' in page.text  # its events may still be on their way
    fragment = await operator.get("/console/timeline/rows", params={"ref": "PO-404"})
    assert fragment.status_code == 200  # htmx swaps only 2xx answers
    assert "No order is known by" in fragment.text


async def test_the_rows_without_a_reference_ask_for_one(operator: httpx.AsyncClient) -> None:
    for params in ({}, {"ref": ""}, {"ref": "   "}):
        fragment = await operator.get("/console/timeline/rows", params=params)
        assert fragment.status_code == 200, params
        assert 'id="no-reference"' in fragment.text
        assert "hx-trigger" not in fragment.text


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ("PO 1", "reference: must be printable ASCII without spaces or control characters"),
        ("x" * 129, "reference: must be at most 128 characters"),
    ],
)
async def test_a_malformed_reference_names_what_is_wrong(
    operator: httpx.AsyncClient, reference: str, message: str
) -> None:
    page = await operator.get("/console/timeline", params={"ref": reference})
    assert page.status_code == 400
    assert refusal_of(page.text) == message
    assert "hx-trigger" not in page.text


async def test_a_shared_external_id_asks_for_the_partner(
    operator: httpx.AsyncClient, nats_client: NATS
) -> None:
    js = nats_client.jetstream()
    first = Lifecycle().build()
    second = Lifecycle(external_order_id=first.external_order_id).build()
    await publish(js, first.events[0])
    await publish(js, second.events[0])

    shared = await wait_for(
        lambda: operator.get("/console/timeline", params={"ref": first.external_order_id}),
        lambda r: r.status_code == 409,
    )
    assert "is used by 2 partners" in refusal_of(shared.text)
    assert "Enter the partner id (ptn_…) of the order you mean." in refusal_of(shared.text)
    assert 'name="partner" id="partner"' in shared.text  # the field that settles it

    picked = await operator.get(
        "/console/timeline", params={"ref": first.external_order_id, "partner": first.partner_id}
    )
    assert picked.status_code == 200
    assert f'<code id="order-id">{first.order_id}</code>' in picked.text
    bad_partner = await operator.get(
        "/console/timeline", params={"ref": first.external_order_id, "partner": "acme"}
    )
    assert bad_partner.status_code == 400
    assert refusal_of(bad_partner.text).startswith("partner id: ")


async def test_a_gateway_without_a_tower_says_it_is_not_configured(tmp_path: Path) -> None:
    async with console_rig(f"sqlite:///{tmp_path}/gateway.db") as rig:
        key = await rig.new_operator_key(["ops:read"])
        async with rig.browser() as browser:
            await sign_in(browser, key["operator_key"])
            page = await browser.get("/console/timeline", params={"ref": "PO-1"})
    assert page.status_code == 503
    assert "CROSSDOCK_GATEWAY_TOWER_TARGET is empty" in refusal_of(page.text)
