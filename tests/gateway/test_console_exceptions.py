"""The console's exceptions pages against a real control tower (real nats-server and SQLite,
owner events published as the producers' relays publish them): the list (open and past the SLA
first, filters, live refresh), one exception with its audit trail and the forms its kind allows,
a resolve done through the page, and a precise page for each way an action is refused: bad
input (nothing called), a read-only key, the tower's FAILED_PRECONDITION, an owner that does not
answer (the tower's owners are unreachable here: 127.0.0.1:1)."""

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
from crossdock.tower.v1 import tower_pb2 as pb
from crossdock.tower.v1 import tower_pb2_grpc as pb_grpc
from nats.aio.client import Client as NATS

from gateway.console.exceptions import MAP_STATUSES
from services.kit.ids import resource_id
from tests.control_tower.exception_scenarios import code_unmapped, label_failed, manifested
from tests.control_tower.lifecycle import T0
from tests.control_tower.test_service import publish, running_tower
from tests.fixtures.nats import NatsServer
from tests.fixtures.waiting import wait_for
from tests.gateway.console_helpers import ConsoleRig, console_rig, csrf_token_in, sign_in

ACTOR = "actor@example.com"


@dataclass
class Tower:
    rig: ConsoleRig
    stub: pb_grpc.TowerServiceStub


@dataclass
class Opened:
    """The exceptions the scenario opened, by what they are."""

    old_label: str  # a shipment whose label failed months ago: past the SLA
    fresh_label: str  # failed half a minute ago: within the SLA
    code: str  # "sandbox:<code>", seen on a scan of a manifested shipment's tracking number
    code_order: str
    fixed_label: str  # failed, then manifested: closed by the owner's event


@pytest.fixture
async def tower(
    tmp_path: Path, sqlite_url: str, nats_server: NatsServer, nats_client: NATS
) -> AsyncIterator[Tower]:
    # nats_client first: it wipes every stream, so the tower must declare its own after it.
    gateway_db = f"sqlite:///{tmp_path}/gateway.db"
    async with contextlib.AsyncExitStack() as exits:
        target, stub = await exits.enter_async_context(running_tower(sqlite_url, nats_server.url))
        rig = await exits.enter_async_context(console_rig(gateway_db, tower_target=target))
        yield Tower(rig, stub)


@contextlib.asynccontextmanager
async def signed_in(
    rig: ConsoleRig, scopes: list[str], name: str
) -> AsyncIterator[httpx.AsyncClient]:
    key = await rig.new_operator_key(scopes, operator=name)
    async with rig.browser() as browser:
        assert (await sign_in(browser, key["operator_key"])).status_code == 303
        yield browser


async def open_exceptions(nats_client: NATS) -> Opened:
    js, now = nats_client.jetstream(), time.time()
    old, fresh, fixed = resource_id("shp"), resource_id("shp"), resource_id("shp")
    code, tracking = f"Z{random.randrange(10**6)}", f"1Z{random.randrange(10**12):012d}"
    linked, order = resource_id("shp"), resource_id("ord")
    events = [
        label_failed(old, resource_id("ord"), T0, "carrier down"),
        label_failed(fresh, resource_id("ord"), now - 30, "no rate"),
        manifested(linked, order, now - 60, tracking),
        code_unmapped("sandbox", code, tracking, now - 10),
        label_failed(fixed, resource_id("ord"), T0 + 1, "timeout"),
        manifested(fixed, resource_id("ord"), T0 + 5),
    ]
    for event in events:
        await publish(js, event)
    return Opened(old, fresh, f"sandbox:{code}", order, fixed)


def rows_of(page: str) -> list[tuple[int, str, str, bool]]:
    """(id, kind, state, past the SLA) per row of the list, in page order."""
    found = re.findall(
        r'data-exception="(\d+)" data-kind="([a-z_]+)" data-state="(open|closed)" '
        r'data-breached="(true|false)"',
        page,
    )
    return [(int(i), kind, state, breached == "true") for i, kind, state, breached in found]


def id_of(page: str, subject: str) -> int:
    found = re.search(
        r'data-exception="(\d+)"[^>]*>(?:(?!</tr>).)*?' + re.escape(subject), page, re.S
    )
    assert found, f"no row for {subject}"
    return int(found.group(1))


def notice(page: str, element_id: str) -> str:
    found = re.search(rf'id="{element_id}">(.*?)</div>', page, re.S)
    assert found, f"the page shows no #{element_id}"
    return html.unescape(found.group(1))


async def listed(operator: httpx.AsyncClient, count: int) -> httpx.Response:
    page = await wait_for(
        lambda: operator.get("/console/exceptions"), lambda r: len(rows_of(r.text)) == count
    )
    assert len(rows_of(page.text)) == count, page.text
    return page


async def audit_of(
    stub: pb_grpc.TowerServiceStub, exception_id: int
) -> list[pb.ExceptionAuditEntry]:
    answer = await stub.GetException(pb.GetExceptionRequest(exception_id=exception_id))
    return list(answer.audit)


async def test_the_list_puts_open_ones_and_breaches_first_and_filters_by_kind_and_state(
    tower: Tower, nats_client: NATS
) -> None:
    opened = await open_exceptions(nats_client)
    async with signed_in(tower.rig, ["ops:read"], "viewer@example.com") as viewer:
        page = await listed(viewer, 4)
        assert page.status_code == 200
        text = page.text
        ids = {
            name: id_of(text, subject)
            for name, subject in (
                ("old", opened.old_label),
                ("fresh", opened.fresh_label),
                ("code", opened.code),
                ("fixed", opened.fixed_label),
            )
        }
        # Open first, past the SLA first among them, then the oldest; closed ones last.
        assert rows_of(text) == [
            (ids["old"], "label_failed", "open", True),
            (ids["fresh"], "label_failed", "open", False),
            (ids["code"], "carrier_code_unmapped", "open", False),
            (ids["fixed"], "label_failed", "closed", False),  # open 4 s: within
        ]
        assert "<strong>3 open</strong>" in text
        assert '<strong class="bad">1 past the SLA</strong>' in text
        # Each row links to its page, and its order to the order's timeline.
        assert f'href="/console/exceptions/{ids["code"]}"' in text
        assert f'href="/console/timeline?ref={opened.code_order}"' in text
        assert "label booking failed: no rate" in text  # what was tried
        assert 'href="/console/exceptions" class="current" aria-current="page"' in text
        # Live: the table is re-read every few seconds, alone.
        assert 'hx-get="/console/exceptions/rows" hx-trigger="every 5s"' in text

        by_kind = await viewer.get("/console/exceptions", params={"kind": "carrier_code_unmapped"})
        assert [row[0] for row in rows_of(by_kind.text)] == [ids["code"]]
        closed = await viewer.get("/console/exceptions", params={"state": "closed"})
        assert [row[0] for row in rows_of(closed.text)] == [ids["fixed"]]
        fragment = await viewer.get(
            "/console/exceptions/rows", params={"state": "open"}, headers={"HX-Request": "true"}
        )
        assert fragment.status_code == 200 and "<html" not in fragment.text
        assert '<section id="exceptions" hx-get="/console/exceptions/rows?state=open"' in (
            fragment.text
        )
        assert len(rows_of(fragment.text)) == 3
        none = await viewer.get(
            "/console/exceptions", params={"kind": "dead_letter", "state": "open"}
        )
        assert notice(none.text, "empty") == "No exception matches these filters."

        bad_kind = await viewer.get("/console/exceptions", params={"kind": "lost_parcel"})
        assert bad_kind.status_code == 400
        kinds = [
            name.removeprefix("EXCEPTION_KIND_").lower()
            for name, number in pb.ExceptionKind.items()
            if number
        ]
        assert kinds[:4] == [
            "label_failed",
            "label_void_failed",
            "carrier_code_unmapped",
            "dead_letter",
        ]
        assert notice(bad_kind.text, "refusal") == (
            f"kind: must be one of {', '.join(kinds)} (or empty), not 'lost_parcel'."
        )
        bad_state = await viewer.get("/console/exceptions", params={"state": "pending"})
        assert bad_state.status_code == 400
        assert "state: must be open or closed" in notice(bad_state.text, "refusal")
        assert "hx-trigger" not in bad_state.text


async def test_an_operator_resolves_an_exception_and_sees_it_closed_with_the_audit_row(
    tower: Tower, nats_client: NATS
) -> None:
    opened = await open_exceptions(nats_client)
    async with signed_in(tower.rig, ["ops:read", "ops:act"], ACTOR) as actor:
        text = (await listed(actor, 4)).text
        code_id, label_id = id_of(text, opened.code), id_of(text, opened.fresh_label)

        # The forms follow the kind: a carrier code is mapped (to a real status), a label retried.
        code_page = await actor.get(f"/console/exceptions/{code_id}")
        assert code_page.status_code == 200
        forms = re.findall(r'<form class="action card"[^>]*id="form-([a-z-]+)"', code_page.text)
        assert forms == ["map-code", "resolve"]
        options = re.findall(r'<option value="([A-Z_]+)"', code_page.text)
        assert options == list(MAP_STATUSES) and "IN_TRANSIT" in options
        assert "UNKNOWN" not in options and "UNSPECIFIED" not in options
        assert 'id="no-audit"' in code_page.text
        assert f'href="/console/timeline?ref={opened.code_order}"' in code_page.text
        label_page = await actor.get(f"/console/exceptions/{label_id}")
        forms = re.findall(r'<form class="action card"[^>]*id="form-([a-z-]+)"', label_page.text)
        assert forms == ["retry", "resolve"]
        # While it is open, its state and trail are re-read (the owner's events close it).
        assert f'hx-get="/console/exceptions/{label_id}/body"' in label_page.text

        token = csrf_token_in(label_page.text)
        done = await actor.post(
            f"/console/exceptions/{label_id}/resolve",
            data={"csrf_token": token, "note": "  booked by hand in the carrier's portal  "},
        )
        assert done.status_code == 303
        location = done.headers["location"]
        assert re.fullmatch(rf"/console/exceptions/{label_id}\?done=resolve&at=\d+", location)
        page = await actor.get(location)
        assert page.status_code == 200
        assert notice(page.text, "outcome").startswith(f"Resolve recorded for {ACTOR}")
        assert '<span class="state-badge closed" id="exception-state">closed</span>' in page.text
        assert f'<dd id="exception-closed-by">operator {ACTOR}</dd>' in page.text
        (row,) = re.findall(r'<tr class="audit-row[^"]*".*?</tr>', page.text, re.S)
        assert f'<td class="operator">{ACTOR}</td>' in row
        assert "booked by hand in the carrier&#39;s portal</td>" in row  # trimmed, kept
        assert 'id="nothing-to-do"' in page.text and '<form class="action' not in page.text
        assert "hx-trigger" not in page.text  # closed: nothing more to wait for
        (entry,) = await audit_of(tower.stub, label_id)
        assert (entry.operator, entry.action) == (ACTOR, pb.EXCEPTION_ACTION_RESOLVE)

        # The live part says it is closed, and takes the forms away (out of band).
        body = await actor.get(
            f"/console/exceptions/{label_id}/body", headers={"HX-Request": "true"}
        )
        assert body.status_code == 200 and "<html" not in body.text
        assert '<section id="exception" data-state="closed">' in body.text  # stops polling
        assert '<section id="actions" hx-swap-oob="true">' in body.text
        assert 'id="nothing-to-do"' in body.text
        open_body = await actor.get(f"/console/exceptions/{code_id}/body")
        assert f'hx-get="/console/exceptions/{code_id}/body" hx-trigger="every 5s"' in (
            open_body.text
        )
        assert 'id="actions"' not in open_body.text  # the forms being typed in stay as they are

        # A link naming no entry of the trail shows no outcome: the page reads the tower's.
        forged = await actor.get(f"/console/exceptions/{label_id}?done=resolve&at=1")
        assert 'id="outcome"' not in forged.text

        # The tower's refusal: a closed exception cannot be acted on (409, on the page).
        again = await actor.post(
            f"/console/exceptions/{label_id}/resolve", data={"csrf_token": token, "note": "again"}
        )
        assert again.status_code == 409
        assert notice(again.text, "action-error") == (
            f"Not done: exception_id: exception {label_id} is closed (operator {ACTOR}); "
            "only an open exception can be acted on."
        )
        assert len(await audit_of(tower.stub, label_id)) == 1

        # A retry of a kind that has none: the tower's FAILED_PRECONDITION, precisely.
        no_retry = await actor.post(
            f"/console/exceptions/{code_id}/retry", data={"csrf_token": token}
        )
        assert no_retry.status_code == 409
        assert "is carrier_code_unmapped: it cannot be retried" in notice(
            no_retry.text, "action-error"
        )
        assert 'id="form-map-code"' in no_retry.text  # the page, with its forms


async def test_an_owner_that_does_not_answer_is_a_503_and_the_refusal_is_audited(
    tower: Tower, nats_client: NATS
) -> None:
    opened = await open_exceptions(nats_client)
    async with signed_in(tower.rig, ["ops:read", "ops:act"], ACTOR) as actor:
        label_id = id_of((await listed(actor, 4)).text, opened.fresh_label)
        page = await actor.get(f"/console/exceptions/{label_id}")
        refused = await actor.post(
            f"/console/exceptions/{label_id}/retry",
            data={"csrf_token": csrf_token_in(page.text), "reason": "carrier is back"},
        )
        assert refused.status_code == 503
        message = notice(refused.text, "action-error")
        assert message.startswith("Not done: the control tower or the exception's owner did not")
        assert "shipment.RetryLabel answered UNAVAILABLE" in message
        (row,) = re.findall(r'<tr class="audit-row refused".*?</tr>', refused.text, re.S)
        assert "carrier is back" in row and "shipment.RetryLabel" in row
        assert 'id="retry-note" maxlength="500" value="carrier is back"' in refused.text


# (action, form fields, the page's message): each a 400 before the tower is asked.
BAD_INPUT = [
    ("resolve", {}, "note: required; say why this exception needs nothing more."),
    ("resolve", {"note": "   "}, "note: required; say why this exception needs nothing more."),
    (
        "resolve",
        {"note": "fixed\nby hand"},
        "note: one line of text without control characters (found U+000A).",
    ),
    (
        "retry",
        {"reason": "x\u0085"},
        "reason: one line of text without control characters (found U+0085).",
    ),
    ("resolve", {"note": "n" * 501}, "note: at most 500 characters, not 501."),
    (
        "map-code",
        {"note": "per the docs"},
        "status: required; choose the status the carrier's code means.",
    ),
    (
        "map-code",
        {"note": "per the docs", "status": "LOST"},
        f"status: must be one of {', '.join(MAP_STATUSES)}, not 'LOST'.",
    ),
    (
        "map-code",
        {"note": "per the docs", "status": "UNKNOWN"},
        f"status: must be one of {', '.join(MAP_STATUSES)}, not 'UNKNOWN'.",
    ),
    (
        "map-code",
        {"status": "IN_TRANSIT"},
        "note: required; say why the carrier's code means this status (e.g. the carrier's docs).",
    ),
]


async def test_bad_input_is_a_precise_400_and_nothing_is_called(
    tower: Tower, nats_client: NATS
) -> None:
    opened = await open_exceptions(nats_client)
    async with signed_in(tower.rig, ["ops:read", "ops:act"], ACTOR) as actor:
        code_id = id_of((await listed(actor, 4)).text, opened.code)
        token = csrf_token_in((await actor.get(f"/console/exceptions/{code_id}")).text)
        for action, fields, message in BAD_INPUT:
            answer = await actor.post(
                f"/console/exceptions/{code_id}/{action}", data={"csrf_token": token, **fields}
            )
            assert answer.status_code == 400, (action, fields)
            assert notice(answer.text, "action-error") == message
        # What was typed is offered again, to correct.
        assert (
            'value="per the docs"'
            in (
                await actor.post(
                    f"/console/exceptions/{code_id}/map-code",
                    data={"csrf_token": token, "note": "per the docs", "status": "LOST"},
                )
            ).text
        )
        assert await audit_of(tower.stub, code_id) == []


async def test_refusals_before_the_tower_is_asked(tower: Tower, nats_client: NATS) -> None:
    opened = await open_exceptions(nats_client)
    rig = tower.rig
    async with signed_in(rig, ["ops:read"], "viewer@example.com") as viewer:
        code_id = id_of((await listed(viewer, 4)).text, opened.code)
        page = await viewer.get(f"/console/exceptions/{code_id}")
        # A read-only key sees the exception, not the forms, and its POST is refused.
        assert 'id="read-only"' in page.text and '<form class="action' not in page.text
        refused = await viewer.post(
            f"/console/exceptions/{code_id}/resolve",
            data={"csrf_token": csrf_token_in(page.text), "note": "looks fine"},
        )
        assert refused.status_code == 403
        assert notice(refused.text, "problem") == "this operator key lacks the scope ops:act"
    async with signed_in(rig, ["ops:read", "ops:act"], ACTOR) as actor:
        token = csrf_token_in((await actor.get(f"/console/exceptions/{code_id}")).text)
        no_token = await actor.post(f"/console/exceptions/{code_id}/resolve", data={"note": "x"})
        assert no_token.status_code == 403
        assert "CSRF token is missing or wrong" in notice(no_token.text, "problem")
        unknown_action = await actor.post(
            f"/console/exceptions/{code_id}/delete", data={"csrf_token": token}
        )
        assert unknown_action.status_code == 404
        assert notice(unknown_action.text, "problem") == (
            "No action is called 'delete'; an exception's actions are retry, resolve, "
            "map-code, redrive."
        )
        not_an_id = await actor.post(
            "/console/exceptions/abc/resolve", data={"csrf_token": token, "note": "x"}
        )
        assert not_an_id.status_code == 404
        assert "an exception id is a whole number" in notice(not_an_id.text, "problem")
        unknown = await actor.post(
            "/console/exceptions/999999/resolve", data={"csrf_token": token, "note": "x"}
        )
        assert unknown.status_code == 404
        assert "The control tower knows no exception 999999." in unknown.text
        missing = await actor.get("/console/exceptions/999999")
        assert missing.status_code == 404
        assert notice(missing.text, "refusal") == "The control tower knows no exception 999999."
    # An operator key whose name the tower cannot record may not act: said before any call.
    async with signed_in(rig, ["ops:read", "ops:act"], "Ada Lovelace") as spaced:
        token = csrf_token_in((await spaced.get(f"/console/exceptions/{code_id}")).text)
        answer = await spaced.post(
            f"/console/exceptions/{code_id}/resolve", data={"csrf_token": token, "note": "ok"}
        )
        assert answer.status_code == 403
        assert "'Ada Lovelace'" in notice(answer.text, "action-error")
    assert await audit_of(tower.stub, code_id) == []
    async with rig.browser() as stranger:
        away = await stranger.get("/console/exceptions")
        assert away.status_code == 303
        assert away.headers["location"].startswith("/console/login?next=")


async def test_the_tower_not_configured_is_a_503_that_says_so(tmp_path: Path) -> None:
    async with (
        console_rig(f"sqlite:///{tmp_path}/gateway.db") as rig,
        signed_in(rig, ["ops:read"], "viewer@example.com") as viewer,
    ):
        page = await viewer.get("/console/exceptions")
        assert page.status_code == 503
        assert "CROSSDOCK_GATEWAY_TOWER_TARGET is empty" in notice(page.text, "refusal")
        assert "hx-trigger" not in page.text
