"""The flow overview's open exceptions against a real control tower (real nats-server and SQLite,
owner events published as the producers' relays publish them, dead letters written to the DLQ
stream as a consumer writes them): one row per kind with open exceptions, its owners, count,
oldest age and breaches, kinds with breaches first, each linking to its open ones; one line when
none is open; a precise message when the tower does not answer, the rest of the page intact."""

from __future__ import annotations

import contextlib
import html
import random
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from crossdock.events.v1 import shipment_events_pb2
from crossdock.shipment.v1 import shipment_pb2
from nats.aio.client import Client as NATS

from gateway.console.exception_summary import summarize
from gateway.console.exceptions import ExceptionRow, kind_name
from gateway.console.flow_pages import open_kind_url
from services.kit.dlq import Letter, publish_letters
from services.kit.ids import resource_id
from tests.control_tower.exception_scenarios import (
    code_unmapped,
    label_failed,
    manifested,
    order_exception_raised,
    outcome_unknown,
)
from tests.control_tower.lifecycle import T0, published
from tests.control_tower.test_service import publish, running_tower
from tests.fixtures.nats import NatsServer
from tests.fixtures.ports import free_port
from tests.fixtures.waiting import wait_for
from tests.gateway.console_helpers import ConsoleRig, console_rig, sign_in


@dataclass(frozen=True)
class KindRow:
    kind: str
    owners: tuple[tuple[str, int], ...]  # (service, its open exceptions of the kind)
    owners_shown: str  # the cell's text
    open: int
    breached: int
    oldest: str
    link: str


def kind_rows(page: str) -> list[KindRow]:
    """The overview's open-exceptions rows, in page order."""
    found = re.findall(
        r'<tr class="open-kind[^"]*" data-kind="([a-z_]+)" data-open="(\d+)" '
        r'data-breached="(\d+)">(.*?)</tr>',
        page,
        re.S,
    )
    rows = []
    for kind, count, breached, body in found:
        link = re.search(r'<a class="open-kind-link" href="([^"]+)">', body)
        owners = re.findall(r'<span class="owner" data-owner="([^"]*)" data-count="(\d+)">', body)
        shown = re.search(r'<td class="owners">(.*?)</td>', body, re.S)
        oldest = re.search(r'<td class="oldest">([^<]*)</td>', body)
        assert link and oldest and shown, body
        rows.append(
            KindRow(
                kind,
                tuple((html.unescape(owner), int(count)) for owner, count in owners),
                html.unescape(re.sub(r"<[^>]+>", "", shown.group(1))),
                int(count),
                int(breached),
                oldest.group(1),
                html.unescape(link.group(1)),
            )
        )
    return rows


def listed_kinds(page: str) -> list[tuple[str, str]]:
    """(kind, state) per row of the exceptions list."""
    return re.findall(r'data-kind="([a-z_]+)" data-state="(open|closed)"', page)


def text_of(page: str, element_id: str) -> str:
    found = re.search(rf'id="{element_id}">(.*?)</(?:div|p)>', page, re.S)
    assert found, f"the page shows no #{element_id}"
    return html.unescape(found.group(1))


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


async def dead_letter(nats_client: NATS, consumer: str) -> None:
    """A delivery `consumer` could not apply, written to the DLQ as the kit's consumer does."""
    shipment_id = resource_id("shp")
    event = published(
        shipment_events_pb2.ShipmentDelivered(
            shipment=shipment_pb2.Shipment(shipment_id=shipment_id, order_id=resource_id("ord"))
        ),
        shipment_id,
        time.time(),
        "corr-poison",
    )
    letter = Letter(
        consumer=consumer,
        subject=event.subject,
        stream="SHIPMENT",
        stream_seq=random.randrange(1, 10**9),
        num_delivered=5,
        reason="cannot decode the body",
        headers=event.headers,
        data=b"\xff\xff",
    )
    assert await publish_letters(nats_client.jetstream(), [letter], timeout=5) == [True]


async def open_some(nats_client: NATS) -> None:
    """Two order exceptions months old and one label outcome unknown months old (past their
    SLAs), a fresh label failure and a fresh unmapped code (within), a label failure fixed by
    its manifest (closed: not counted), three dead letters (two billing's, one inventory's)."""
    js, now = nats_client.jetstream(), time.time()
    fixed, tracking = resource_id("shp"), f"1Z{random.randrange(10**12):012d}"
    events = [
        order_exception_raised(resource_id("ord"), 1, T0, "AWAIT_PICK not done"),
        order_exception_raised(resource_id("ord"), 1, T0 + 60, "AWAIT_PICK not done"),
        outcome_unknown(resource_id("shp"), resource_id("ord"), T0 + 30),
        label_failed(resource_id("shp"), resource_id("ord"), now - 30, "no rate"),
        manifested(resource_id("shp"), resource_id("ord"), now - 60, tracking),
        code_unmapped("sandbox", f"Z{random.randrange(10**6)}", tracking, now - 10),
        label_failed(fixed, resource_id("ord"), T0 + 1, "timeout"),
        manifested(fixed, resource_id("ord"), T0 + 5),
    ]
    for event in events:
        await publish(js, event)
    for consumer in ("billing-events", "inventory-order-events", "billing-events"):
        await dead_letter(nats_client, consumer)


async def test_the_overview_counts_open_exceptions_per_kind_breaches_first_with_links(
    operator: httpx.AsyncClient, nats_client: NATS
) -> None:
    await open_some(nats_client)
    expected = {
        "order_exception": (2, 2),
        "label_outcome_unknown": (1, 1),
        "label_failed": (1, 0),
        "carrier_code_unmapped": (1, 0),
        "dead_letter": (3, 0),
    }

    def settled(page: httpx.Response) -> bool:
        return {row.kind: (row.open, row.breached) for row in kind_rows(page.text)} == expected

    page = await wait_for(lambda: operator.get("/console/flows"), settled)
    rows = kind_rows(page.text)
    assert page.status_code == 200 and settled(page), rows
    # Breaches first (most first), then the others in the contract's kind order.
    assert [row.kind for row in rows] == [
        "order_exception",
        "label_outcome_unknown",
        "label_failed",
        "carrier_code_unmapped",
        "dead_letter",
    ]
    owners = {row.kind: row.owners for row in rows}
    assert owners["order_exception"] == (("order", 2),)
    assert owners["label_failed"] == (("shipment", 1),)
    assert owners["carrier_code_unmapped"] == (("carrier-adapter", 1),)
    # Dead letters per consuming service: the DLQ depth an operator redrives, deepest first.
    assert owners["dead_letter"] == (("billing", 2), ("inventory", 1))
    shown = {row.kind: row.owners_shown for row in rows}
    times = "\N{MULTIPLICATION SIGN}"
    assert shown["dead_letter"] == f"billing {times}2, inventory {times}1"
    assert shown["order_exception"] == "order"  # one owner: the count column says how many
    oldest = {row.kind: row.oldest for row in rows}
    assert re.fullmatch(r"\d+d\d+h", oldest["order_exception"]), oldest  # months
    assert re.fullmatch(r"\d+s", oldest["label_failed"]), oldest  # half a minute
    assert 'class="open-kind breaching" data-kind="order_exception"' in page.text
    assert 'class="open-kind" data-kind="label_failed"' in page.text  # within: not marked

    # Each kind links to its open ones; the link leads to exactly those.
    for row in rows:
        assert row.link == f"/console/exceptions?kind={row.kind}&state=open"
    letters = await operator.get(next(row.link for row in rows if row.kind == "dead_letter"))
    assert letters.status_code == 200
    assert listed_kinds(letters.text) == [("dead_letter", "open")] * 3

    # In the fragment the overview re-reads: the section refreshes with the flows.
    assert 'hx-get="/console/flows/rows" hx-trigger="every 5s"' in page.text
    fragment = await operator.get("/console/flows/rows", headers={"HX-Request": "true"})
    assert fragment.status_code == 200 and "<html" not in fragment.text
    assert [row.kind for row in kind_rows(fragment.text)] == [row.kind for row in rows]
    # The flows are still the page's: their table follows the section.
    assert page.text.index('id="open-exceptions"') < page.text.index('id="flow-table"')


async def test_with_nothing_open_the_overview_says_so_in_one_line(
    operator: httpx.AsyncClient,
) -> None:
    page = await operator.get("/console/flows")
    assert page.status_code == 200
    assert text_of(page.text, "no-open-exceptions") == (
        "No exception is open: nothing needs an operator."
    )
    assert 'id="open-exceptions-table"' not in page.text
    assert 'id="flow-table"' in page.text


async def test_a_tower_that_does_not_answer_is_said_in_the_section_and_the_page_renders(
    tmp_path: Path,
) -> None:
    # Nothing listens on this port: the gateway's calls fail as UNAVAILABLE.
    silent = f"127.0.0.1:{free_port()}"
    async with console_rig(f"sqlite:///{tmp_path}/gateway.db", tower_target=silent) as rig:
        key = await rig.new_operator_key(["ops:read"])
        async with rig.browser() as browser:
            await sign_in(browser, key["operator_key"])
            overview = await browser.get("/console/flows")
            fragment = await browser.get("/console/flows/rows", headers={"HX-Request": "true"})
    assert overview.status_code == 503  # the flows' status, as before
    said = (
        "The open exceptions could not be read: The control tower did not answer "
        "(UNAVAILABLE); this page tries again."
    )
    assert text_of(overview.text, "open-exceptions-refusal") == said
    assert 'class="notice warn" role="alert" id="open-exceptions-refusal"' in overview.text
    # The rest of the page: the flows' own message, the search, the navigation, the live refresh.
    assert 'id="refusal">The control tower did not answer (UNAVAILABLE)' in overview.text
    assert 'id="reference"' in overview.text and 'aria-label="console pages"' in overview.text
    assert 'hx-get="/console/flows/rows" hx-trigger="every 5s"' in overview.text
    assert fragment.status_code == 200
    assert text_of(fragment.text, "open-exceptions-refusal") == said


async def test_a_gateway_without_a_tower_says_so_in_the_section(tmp_path: Path) -> None:
    async with console_rig(f"sqlite:///{tmp_path}/gateway.db") as rig:
        key = await rig.new_operator_key(["ops:read"])
        async with rig.browser() as browser:
            await sign_in(browser, key["operator_key"])
            page = await browser.get("/console/flows")
    assert page.status_code == 503
    assert "CROSSDOCK_GATEWAY_TOWER_TARGET is empty" in text_of(
        page.text, "open-exceptions-refusal"
    )
    assert 'class="notice error" role="alert" id="open-exceptions-refusal"' in page.text


def _row(
    kind: str, owner: str, age_seconds: float, breached: bool, is_open: bool = True
) -> ExceptionRow:
    return ExceptionRow(
        exception_id=random.randrange(1, 10**9),
        kind=kind,
        owner=owner,
        subject_kind="",
        subject_id="",
        order_id="",
        is_open=is_open,
        age="",
        breached=breached,
        occurrences=1,
        detail="",
        opened="",
        last_seen="",
        closed="",
        closed_by="",
        age_seconds=age_seconds,
        close_seconds=0.0,
    )


def test_the_summary_counts_open_ones_only_and_orders_owners_and_ties() -> None:
    summary = summarize(
        [
            _row("dead_letter", "inventory", 10, False),
            _row("dead_letter", "billing", 5, True),
            _row("dead_letter", "", 7, False),  # a durable the tower could not name
            _row("dead_letter", "billing", 3, False),
            _row("label_failed", "shipment", 9000, True),
            _row("label_failed", "shipment", 90000, False, is_open=False),  # closed
            _row("carrier_code_unmapped", "carrier-adapter", 20, False),
            _row("kind_99", "shipment", 1, False),  # a kind newer than this gateway's contract
            _row("label_void_failed", "shipment", 4000, False),
        ]
    )
    # One breach each: a tie, kept in the contract's order; then the calm ones in that order.
    assert [kind.kind for kind in summary.kinds] == [
        "label_failed",
        "dead_letter",
        "label_void_failed",
        "carrier_code_unmapped",
        "kind_99",
    ]
    letters = summary.kinds[1]
    assert [(owner.owner, owner.count) for owner in letters.owners] == [
        ("billing", 2),
        ("", 1),
        ("inventory", 1),
    ]
    assert (letters.count, letters.breached, letters.oldest) == (4, 1, "10s")
    labels = summary.kinds[0]
    assert (labels.count, labels.breached, labels.oldest) == (1, 1, "2h30m")  # closed: not counted
    assert (summary.count, summary.breached, summary.truncated) == (8, 2, False)
    assert summarize([]).kinds == ()
    # A newer kind is named by its number and links to every open one: the list's filter
    # does not know it.
    assert kind_name(99) == "kind_99"
    assert open_kind_url("kind_99") == "/console/exceptions?state=open"
    assert open_kind_url("dead_letter") == "/console/exceptions?kind=dead_letter&state=open"
