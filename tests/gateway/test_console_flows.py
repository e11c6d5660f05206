"""The console's flow pages against a real control tower (real nats-server and SQLite, events
published as the producers' relays publish them): the overview (breaches first, its chart, live
refresh, the empty state), the drill-down page by page with links to each order's timeline, and
a precise page for each way a request fails."""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest
from nats.aio.client import Client as NATS

from gateway.console.flow_chart import BAR_WIDTH, bucket_labels, chart_row
from gateway.console.flow_history import TREND_HEIGHT, FlowHistory, FlowSample
from tests.control_tower.flow_scenarios import RELEASED, held_order, return_events
from tests.control_tower.test_service import publish, running_tower
from tests.fixtures.nats import NatsServer
from tests.fixtures.ports import free_port
from tests.fixtures.waiting import wait_for
from tests.gateway.console_helpers import ConsoleRig, console_rig, sign_in

# Every flow the tower reports, in its spine order.
SPINE = [
    "awaiting_allocation",
    "released_not_picked",
    "picked_no_label",
    "labelled_not_picked_up",
    "in_transit_past_promise",
    "delivered_not_invoiced",
    "return_authorized_not_received",
    "return_received_not_credited",
]


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


@dataclass
class Held:
    """What the scenario put in the flows: old orders (long past the SLA) and fresh ones."""

    old_released: list[str] = field(default_factory=list)
    fresh_released: str = ""
    fresh_placed: str = ""
    old_return: str = ""


async def hold_items(nats_client: NATS) -> Held:
    """Two orders released at the lifecycle's start (months ago: past the 4 h SLA), one released
    and one placed half a minute ago (within), and a return authorized months ago (past 14 d)."""
    js, held = nats_client.jetstream(), Held()
    for _ in range(2):
        order = held_order(RELEASED)
        held.old_released.append(order.order_id)
        for event in order.events:
            await publish(js, event)
    recently = time.time() - 30
    fresh = held_order(RELEASED, start=recently)
    placed = held_order(1, start=recently)
    held.fresh_released, held.fresh_placed = fresh.order_id, placed.order_id
    held.old_return, returned = return_events(1)
    for event in [*fresh.events, *placed.events, *returned]:
        await publish(js, event)
    return held


@dataclass
class Bar:
    flow: str
    items: int
    breaches: int
    segments: list[dict[str, str]] = field(default_factory=list)
    sla_x: float | None = None


class ChartReader(HTMLParser):
    """The overview's chart: one bar per `g.flow-bar`, its segments and its SLA mark."""

    def __init__(self) -> None:
        super().__init__()
        self.bars: list[Bar] = []
        self._bar: Bar | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {name: value or "" for name, value in attrs}
        classes = found.get("class", "").split()
        if tag == "g" and "flow-bar" in classes:
            self._bar = Bar(
                found["data-flow"], int(found["data-items"]), int(found["data-breaches"])
            )
            self.bars.append(self._bar)
        elif self._bar is not None and tag == "rect" and "seg" in classes:
            self._bar.segments.append(found)
        elif self._bar is not None and tag == "line" and "sla-mark" in classes:
            self._bar.sla_x = float(found["data-sla-x"])

    def handle_endtag(self, tag: str) -> None:
        if tag == "g":
            self._bar = None


def bars_of(page: str) -> list[Bar]:
    reader = ChartReader()
    reader.feed(page)
    return reader.bars


def table_rows(page: str) -> list[tuple[str, int, int]]:
    """(flow, items, breaches) per row of the overview's table, in page order."""
    rows = re.findall(
        r'<tr class="flow-row[^"]*" data-flow="([a-z_]+)">.*?<td class="num items">(\d+)</td>'
        r'\s*<td class="num breaches">(?:<span class="badge bad">)?(?:<span class="muted">)?(\d+)<',
        page,
        re.S,
    )
    return [(flow, int(items), int(breaches)) for flow, items, breaches in rows]


def trends_of(page: str) -> dict[str, tuple[int, bool]]:
    """Flow → (bars in its last-hour trend, whether its newest bar is past the SLA)."""
    found = re.findall(
        r'<tr class="flow-row[^"]*" data-flow="([a-z_]+)">.*?<svg class="trend" '
        r'data-bars="(\d+)"(.*?)</svg>',
        page,
        re.S,
    )
    trends = {}
    for flow, bars, body in found:
        classes = re.findall(r'<rect class="(trend-bar[^"]*)"', body)
        trends[flow] = (int(bars), bool(classes) and "past-sla" in classes[-1])
    return trends


def item_rows(page: str) -> list[tuple[str, bool]]:
    found = re.findall(r'data-item="([^"]+)" data-breached="(true|false)"', page)
    return [(item, breached == "true") for item, breached in found]


def refusal_of(page: str) -> str:
    found = re.search(r'id="refusal">([^<]*)<', page)
    assert found, "the page shows no refusal"
    return found.group(1)


async def overview_when(
    operator: httpx.AsyncClient, expected: dict[str, tuple[int, int]]
) -> httpx.Response:
    """The overview once the tower has consumed the scenario: flow → (items, breaches)."""

    def settled(page: httpx.Response) -> bool:
        counts = {flow: (items, breaches) for flow, items, breaches in table_rows(page.text)}
        return all(counts.get(flow) == want for flow, want in expected.items())

    page = await wait_for(lambda: operator.get("/console/flows"), settled)
    assert settled(page), table_rows(page.text)
    return page


async def test_the_overview_puts_breaches_first_and_charts_each_flows_ages(
    operator: httpx.AsyncClient, nats_client: NATS
) -> None:
    held = await hold_items(nats_client)
    page = await overview_when(
        operator,
        {
            "released_not_picked": (3, 2),
            "return_authorized_not_received": (1, 1),
            "awaiting_allocation": (1, 0),
        },
    )
    assert page.status_code == 200
    # Flows in breach first (most breaches first), then the others in spine order.
    order = [flow for flow, _, _ in table_rows(page.text)]
    calm = [flow for flow in SPINE if flow not in order[:2]]
    assert order == ["released_not_picked", "return_authorized_not_received", *calm]
    assert '<strong class="bad">2 of 8 flows in breach</strong>' in page.text
    assert '<span id="waiting">5 items waiting</span>' in page.text
    released = re.search(r'data-flow="released_not_picked">(.*?)</tr>', page.text, re.S)
    assert released is not None
    assert '<td class="oldest">' in released.group(1) and "d" in released.group(1)  # months
    assert '<td class="sla">4h00m</td>' in released.group(1)
    assert 'href="/console/flows/released_not_picked"' in page.text

    # The chart: one bar per flow, in the table's order, each segment as wide as its share.
    bars = bars_of(page.text)
    assert [bar.flow for bar in bars] == order
    for bar in bars:
        counted = sum(int(seg["data-items"]) for seg in bar.segments)
        assert counted == bar.items, bar.flow
        for seg in bar.segments:
            share = int(seg["data-items"]) / bar.items
            assert float(seg["width"]) == pytest.approx(share * BAR_WIDTH, abs=0.02), bar.flow
        past = sum(int(seg["data-items"]) for seg in bar.segments if "past-sla" in seg["class"])
        assert past == bar.breaches, bar.flow
        if bar.items:
            # The SLA falls after the youngest items within it: where the warning colour starts.
            within = (bar.items - bar.breaches) / bar.items * BAR_WIDTH
            assert bar.sla_x == pytest.approx(within, abs=0.02), bar.flow
        else:
            assert bar.sla_x is None and not bar.segments, bar.flow
    mixed = bars[0]
    # The fresh order in a young bucket, the two old ones in the last (over a month), past it.
    (young,) = [seg for seg in mixed.segments if "within-sla" in seg["class"]]
    (old,) = [seg for seg in mixed.segments if "past-sla" in seg["class"]]
    assert (young["data-items"], old["data-items"]) == ("1", "2")
    assert int(young["data-bucket"]) < int(old["data-bucket"]) == 10
    assert float(old["x"]) == pytest.approx(float(young["x"]) + float(young["width"]), abs=0.02)
    assert f'href="/console/flows/{mixed.flow}"' in page.text
    assert held.fresh_placed not in page.text  # the overview counts; the drill-down lists

    # The last hour, as this gateway sampled it: the newest bar is the newest reading.
    trends = trends_of(page.text)
    assert list(trends) == order
    assert all(bars >= 1 for bars, _ in trends.values())
    assert {flow for flow, (_, past) in trends.items() if past} == set(order[:2])

    # Live: the chart and table are re-read every few seconds, and the fragment is them alone.
    assert 'hx-get="/console/flows/rows" hx-trigger="every 5s"' in page.text
    fragment = await operator.get("/console/flows/rows", headers={"HX-Request": "true"})
    assert fragment.status_code == 200
    assert '<section id="flows" hx-get="/console/flows/rows"' in fragment.text
    assert "<html" not in fragment.text
    assert [bar.flow for bar in bars_of(fragment.text)] == order
    assert trends_of(fragment.text)["released_not_picked"][1]


async def test_the_overview_keeps_the_last_hour_of_samples_in_this_process(
    rig: ConsoleRig, operator: httpx.AsyncClient, nats_client: NATS
) -> None:
    await hold_items(nats_client)
    page = await overview_when(operator, {"released_not_picked": (3, 2)})
    sampled = trends_of(page.text)["released_not_picked"][0]
    # A minute apart: a new sample each time (reads within one 30 s slot replace each other).
    for minutes in (1, 2, 3):
        rig.clock.shift_seconds = minutes * 60.0
        fragment = await operator.get("/console/flows/rows", headers={"HX-Request": "true"})
    trends = trends_of(fragment.text)
    assert trends["released_not_picked"] == (sampled + 3, True)
    assert trends["picked_no_label"] == (sampled + 3, False)
    assert f"{sampled + 3} samples so far" in fragment.text


async def test_the_console_lands_on_the_overview_and_lists_it_first(
    operator: httpx.AsyncClient,
) -> None:
    for root in ("/console", "/console/"):
        landing = await operator.get(root)
        assert (landing.status_code, landing.headers["location"]) == (303, "/console/flows")
    page = await operator.get("/console/flows")
    nav = re.search(r'<nav aria-label="console pages">(.*?)</nav>', page.text, re.S)
    assert nav is not None
    links = re.findall(r'<a href="([^"]+)"', nav.group(1))
    assert links == ["/console/flows", "/console/exceptions", "/console/timeline"]
    assert 'href="/console/flows" class="current" aria-current="page"' in page.text


async def test_with_nothing_waiting_the_overview_says_so(operator: httpx.AsyncClient) -> None:
    page = await operator.get("/console/flows")
    assert page.status_code == 200
    assert 'id="empty">Nothing is waiting in any flow' in page.text
    assert 'id="flow-chart"' not in page.text
    assert [flow for flow, _, _ in table_rows(page.text)] == SPINE  # each flow and its SLA
    assert '<strong class="good">no flow in breach</strong>' in page.text


async def test_the_drill_down_pages_through_a_flows_items_and_links_their_timelines(
    operator: httpx.AsyncClient, nats_client: NATS
) -> None:
    held = await hold_items(nats_client)
    await overview_when(operator, {"released_not_picked": (3, 2)})

    first = await operator.get("/console/flows/released_not_picked", params={"size": "2"})
    assert first.status_code == 200
    assert '<strong id="flow-sla">4h00m</strong>' in first.text
    assert '<strong class="bad">2 past the SLA</strong>' in first.text
    next_link = re.search(r'<a id="next-page" href="([^"]+)">', first.text)
    assert next_link is not None
    assert 'id="first-page"' not in first.text
    assert "hx-trigger" not in first.text  # a snapshot to click through, not a moving table
    second = await operator.get(next_link.group(1).replace("&amp;", "&"))
    assert second.status_code == 200
    assert 'id="next-page"' not in second.text
    assert 'id="first-page" href="/console/flows/released_not_picked?size=2"' in second.text

    items = item_rows(first.text) + item_rows(second.text)
    assert len(items) == 3
    assert dict(items) == {
        held.old_released[0]: True,
        held.old_released[1]: True,
        held.fresh_released: False,
    }
    # Each item links to its order's timeline (a search by order id); breaches are marked.
    for order_id in (*held.old_released, held.fresh_released):
        page = first.text if order_id in first.text else second.text
        assert f'class="order-link" href="/console/timeline?ref={order_id}"' in page
    assert (
        first.text.count('<span class="badge bad">past SLA</span>')
        + second.text.count('<span class="badge bad">past SLA</span>')
        == 2
    )

    # A shipment or return flow: the item is found on the timeline by its own id too.
    returns = await operator.get("/console/flows/return_authorized_not_received")
    assert item_rows(returns.text) == [(held.old_return, True)]
    assert f'href="/console/timeline?ref={held.old_return}"' in returns.text

    # The link opens the order's timeline.
    timeline = await operator.get("/console/timeline", params={"ref": held.fresh_released})
    assert timeline.status_code == 200
    assert f'<code id="order-id">{held.fresh_released}</code>' in timeline.text


async def test_an_empty_flow_says_so(operator: httpx.AsyncClient) -> None:
    page = await operator.get("/console/flows/picked_no_label")
    assert page.status_code == 200
    assert 'id="empty">Nothing is waiting in this flow.' in page.text
    assert 'id="next-page"' not in page.text


@pytest.mark.parametrize(
    ("path", "query", "status", "message"),
    [
        (
            "nope",
            {},
            404,
            "No flow is named &#39;nope&#39;: unknown flow &#39;nope&#39;; flows are: ",
        ),
        ("Not-A-Flow", {}, 404, "No flow is named &#39;Not-A-Flow&#39;: "),
        (
            "released_not_picked",
            {"page": "not-a-token"},
            400,
            "This page link is not one the control tower issued (or it has expired): ",
        ),
        ("released_not_picked", {"size": "0"}, 400, "size: must be a whole number from 1 to 500"),
        ("released_not_picked", {"size": "ten"}, 400, "size: must be a whole number from 1 to 500"),
    ],
)
async def test_a_bad_drill_down_gets_a_precise_page(
    operator: httpx.AsyncClient, path: str, query: dict[str, str], status: int, message: str
) -> None:
    page = await operator.get(f"/console/flows/{path}", params=query)
    assert page.status_code == status
    assert refusal_of(page.text).startswith(message), refusal_of(page.text)
    assert "hx-trigger" not in page.text  # asking again would not help
    assert 'href="/console/flows">Every flow</a>' in page.text


async def test_flow_pages_need_a_signed_in_operator_with_ops_read(rig: ConsoleRig) -> None:
    partner_key = await rig.new_partner_key()
    act_only = await rig.new_operator_key(["ops:act"])
    for path in ("/console/flows", "/console/flows/released_not_picked"):
        async with rig.browser() as browser:
            before = await browser.get(path)
            assert before.status_code == 303
            assert before.headers["location"].startswith("/console/login?next=%2Fconsole%2Fflows")
            fragment = await browser.get("/console/flows/rows", headers={"HX-Request": "true"})
            assert fragment.status_code == 401 and "HX-Redirect" in fragment.headers
            for refused_key in (partner_key, act_only["operator_key"]):
                refused = await sign_in(browser, refused_key, path)
                assert refused.status_code == 401
                after = await browser.get(path)
                assert after.status_code == 303  # still the sign-in page, not the flows
            # Bearer credentials are the admin API's way in, not the console's.
            bearer = await browser.get(
                path, headers={"Authorization": f"Bearer {act_only['operator_key']}"}
            )
            assert bearer.status_code == 303


async def test_a_tower_that_does_not_answer_gives_503_and_the_page_keeps_asking(
    tmp_path: Path,
) -> None:
    # Nothing listens on this port: the gateway's call fails as UNAVAILABLE.
    silent = f"127.0.0.1:{free_port()}"
    async with console_rig(f"sqlite:///{tmp_path}/gateway.db", tower_target=silent) as rig:
        key = await rig.new_operator_key(["ops:read"])
        async with rig.browser() as browser:
            await sign_in(browser, key["operator_key"])
            overview = await browser.get("/console/flows")
            drill = await browser.get("/console/flows/released_not_picked", params={"size": "3"})
            fragment = await browser.get("/console/flows/rows", headers={"HX-Request": "true"})
    assert overview.status_code == 503
    assert refusal_of(overview.text) == (
        "The control tower did not answer (UNAVAILABLE); this page tries again."
    )
    assert 'hx-get="/console/flows/rows" hx-trigger="every 5s"' in overview.text
    assert drill.status_code == 503
    assert (
        'hx-get="/console/flows/released_not_picked/rows?page=&amp;size=3" hx-trigger="every 5s"'
        in drill.text
    )
    assert fragment.status_code == 200  # htmx swaps only 2xx answers
    assert "did not answer (UNAVAILABLE)" in fragment.text


async def test_a_gateway_without_a_tower_says_it_is_not_configured(tmp_path: Path) -> None:
    async with console_rig(f"sqlite:///{tmp_path}/gateway.db") as rig:
        key = await rig.new_operator_key(["ops:read"])
        async with rig.browser() as browser:
            await sign_in(browser, key["operator_key"])
            page = await browser.get("/console/flows")
    assert page.status_code == 503
    assert "CROSSDOCK_GATEWAY_TOWER_TARGET is empty" in refusal_of(page.text)
    assert "hx-trigger" not in page.text  # configuration, not an outage: no point asking again


def test_a_bucket_the_sla_falls_inside_is_split_where_it_falls() -> None:
    # 6 items: 2 under a minute, 3 of 1-5 minutes, 1 older; the 2 oldest are past the SLA.
    row = chart_row([(60.0, 2), (300.0, 3), (float("inf"), 1)], breaches=2)
    unit = BAR_WIDTH / 6
    assert [(s.bucket, s.items, s.past_sla) for s in row.segments] == [
        (0, 2, False),
        (1, 2, False),
        (1, 1, True),
        (2, 1, True),
    ]
    assert [s.x for s in row.segments] == pytest.approx([0, 2 * unit, 4 * unit, 5 * unit])
    assert [s.width for s in row.segments] == pytest.approx([2 * unit, 2 * unit, unit, unit])
    assert row.sla_x == pytest.approx(4 * unit)
    assert chart_row([(60.0, 0), (float("inf"), 0)], breaches=0).sla_x is None
    assert bucket_labels([60.0, 900.0, 14400.0, 604800.0, float("inf")]) == [
        "≤1m",
        "1m-15m",
        "15m-4h",
        "4h-7d",
        ">7d",
    ]


def test_the_last_hour_keeps_one_sample_per_slot_and_forgets_older_ones() -> None:
    history = FlowHistory(window_seconds=3600.0, every_seconds=30.0)
    within = FlowSample(oldest_seconds=60.0, sla_seconds=120.0, breaches=0)
    past = FlowSample(oldest_seconds=600.0, sla_seconds=120.0, breaches=3)
    history.record(1000.0, [("f", past)])
    history.record(1010.0, [("f", within)])  # the same 30 s slot: replaces the reading
    history.record(1030.0, [("f", past)])
    trend = history.trend("f", now=1030.0)
    assert [(bar.height, bar.past_sla) for bar in trend.bars] == [
        (TREND_HEIGHT / 4, False),  # half the SLA: a quarter of the height
        (TREND_HEIGHT, True),  # five times the SLA: capped at the top (twice the SLA)
    ]
    assert trend.sla_y == TREND_HEIGHT / 2
    assert trend.bars[0].x < trend.bars[1].x
    # An hour after the first sample it is gone; the second stays until its own hour is up.
    assert len(history.trend("f", now=4610.0).bars) == 1
    assert history.trend("f", now=4630.0).bars == ()
    assert history.trend("other", now=1030.0).bars == ()
