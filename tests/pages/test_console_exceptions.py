"""The console's exceptions pages in headless Chromium against the session mesh (`make run`'s
launcher).

An order placed over the partner API gets its label; then the carrier pushes a scan of its
tracking number with a status code the sandbox does not know (signed with the mesh's webhook
secret, to the gateway's public carrier route, as the sandbox carrier does). The operator, on
the exceptions page, sees the carrier_code_unmapped exception appear live (and the flow
overview count it, linking to that kind's open ones), opens it and maps the code with the
page's form: carrier-adapter maps it, its code_mapped event closes the exception, and the page
shows it closed with the operator's audit row. A read-only operator sees no action and is
refused a POST; a partner key does not open the page. Screenshots of the list and the detail
are saved beside the one the browser fixture leaves.
"""

from __future__ import annotations

import random
import secrets
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select

from localmesh import Mesh
from localmesh.demo import DemoOrder, PartnerApi, place, sample_order
from tests.fixtures.browser import SCREENSHOTS, Browser
from tests.fixtures.carrier_push import push_scan
from tests.fixtures.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# Placed, allocated, picked and labelled by the fast warehouse simulator and sandbox.
LABEL_SECONDS = 120.0
# The push reaches the tower through carrier-adapter's events; the page's refresh shows it.
LIVE_SECONDS = 60.0
DEMO_OPERATOR = "demo-operator@localhost"


def _screenshot(driver: WebDriver, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SCREENSHOTS / f"console_exceptions_{name}.png"))


def _push_scan(mesh: Mesh, tracking_number: str, code: str) -> None:
    """One scan with the carrier status `code`, as the sandbox carrier pushes it."""
    answer = push_scan(mesh, tracking_number, code, "parcel at a new hub")
    assert answer.status_code == 200, answer.text
    assert answer.json()["acceptedEvents"] == 1


def _new_code() -> str:
    """A status code no carrier mapping has: fresh for each run."""
    return f"ZX{secrets.token_hex(4).upper()}"


def _tracking_number(api: PartnerApi, order_id: str) -> str:
    def tracking() -> str:
        shipments = api.list_for_order("/v1/shipments", "shipments", order_id)
        return next((s["trackingNumber"] for s in shipments if s.get("trackingNumber")), "")

    found = wait_until(tracking, bool, timeout=LABEL_SECONDS)
    assert found, f"order {order_id} got no tracking number"
    return str(found)


def _sign_in(browser: Browser, mesh: Mesh, key: str, page: str = "") -> None:
    browser.driver.get(mesh.console_url + page)
    browser.wait().until(lambda d: d.find_elements(By.ID, "operator-key"), "no sign-in form")
    browser.driver.find_element(By.ID, "operator-key").send_keys(key)
    browser.driver.find_element(By.ID, "sign-in").click()


def _text(driver: WebDriver, css: str) -> str:
    """The text of `css`, read again if a live refresh replaced it meanwhile ("" if absent)."""
    try:
        found = driver.find_elements(By.CSS_SELECTOR, css)
        return found[0].text if found else ""
    except StaleElementReferenceException:
        return ""


def _row_of(code: str) -> Callable[[WebDriver], Any]:
    """The exception id of the row whose subject is the code (False until it shows)."""
    script = """
    const row = [...document.querySelectorAll("#exception-table tr.exception-row")]
      .find((r) => r.querySelector("td.subject").textContent.includes(arguments[0]));
    return row ? {id: row.dataset.exception, kind: row.dataset.kind, state: row.dataset.state,
                  order: (row.querySelector("a.order-link") || {}).textContent || ""} : false;
    """
    return lambda driver: driver.execute_script(script, f"sandbox:{code}")


# Clicks the overview's link of one kind's open exceptions (with at least one open); its href,
# or "" when the overview shows no such row.
OPEN_KIND = """
const row = document.querySelector(`#open-exceptions tr.open-kind[data-kind="${arguments[0]}"]`);
if (!row || Number(row.dataset.open) < 1) { return ""; }
const link = row.querySelector("a.open-kind-link");
link.click();
return link.getAttribute("href");
"""


def test_an_operator_maps_an_unmapped_carrier_code_from_the_exceptions_page(
    browser: Browser, mesh: Mesh
) -> None:
    driver = browser.driver
    api = PartnerApi(mesh.gateway_url, mesh.demo_api_key)
    order = DemoOrder(f"EXC-{uuid.uuid4().hex[:10]}")
    place(api, order, sample_order(order.external_id, random.Random(5)))
    assert order.order_id, order.error
    tracking_number = _tracking_number(api, order.order_id)

    _sign_in(browser, mesh, mesh.demo_operator_key, "/exceptions")
    browser.wait().until(lambda d: d.find_elements(By.ID, "exceptions"), "no exceptions page")
    assert driver.current_url.endswith("/console/exceptions")
    nav = driver.find_element(By.CSS_SELECTOR, "header nav a.current")
    assert nav.text == "Exceptions"
    driver.execute_script("window.consoleTestMarker = 'same page';")

    # The carrier pushes a code it never told us about; the page shows it without a reload,
    # linked to the order once the tower has linked the tracking number.
    code = _new_code()
    _push_scan(mesh, tracking_number, code)
    row = browser.wait(LIVE_SECONDS).until(
        lambda d: (found := _row_of(code)(d)) and found["order"] and found,
        "the unmapped code never showed on the exceptions page with its order",
    )
    assert driver.execute_script("return window.consoleTestMarker") == "same page"
    assert (row["kind"], row["state"], row["order"]) == (
        "carrier_code_unmapped",
        "open",
        order.order_id,
    )
    # Open ones come first: no closed row above an open one.
    states = driver.execute_script(
        'return [...document.querySelectorAll("tr.exception-row")].map((r) => r.dataset.state);'
    )
    assert states == sorted(states, key=lambda state: state != "open"), states
    assert browser.console_errors() == []
    _screenshot(driver, "list")

    # The overview counts it among the open exceptions; its kind's row leads to the filtered list
    # (clicked in one script: a live refresh can not swap the row between finding and clicking).
    driver.get(f"{mesh.console_url}/flows")
    followed = driver.execute_script(OPEN_KIND, "carrier_code_unmapped")
    assert followed == "/console/exceptions?kind=carrier_code_unmapped&state=open", followed
    browser.wait().until(
        lambda d: d.current_url.endswith(followed) and _row_of(code)(d),
        "the overview's carrier_code_unmapped row did not lead to the code's open exceptions",
    )

    # Its page: the facts, no audit yet, and the forms its kind allows.
    driver.find_element(
        By.CSS_SELECTOR, f'tr[data-exception="{row["id"]}"] a.exception-link'
    ).click()
    browser.wait().until(lambda d: d.find_elements(By.ID, "form-map-code"), "no map-code form")
    assert _text(driver, "#exception-state") == "open"
    assert f"sandbox:{code}" in _text(driver, "#exception-subject")
    assert code in _text(driver, "#exception-detail")
    assert driver.find_elements(By.ID, "no-audit")
    forms = [f.get_attribute("id") for f in driver.find_elements(By.CSS_SELECTOR, "form.action")]
    assert forms == ["form-map-code", "form-resolve"]

    Select(driver.find_element(By.ID, "map-code-status")).select_by_value("IN_TRANSIT")
    driver.find_element(By.ID, "map-code-note").send_keys("per the carrier's code list")
    driver.find_element(By.ID, "map-code-button").click()
    outcome = browser.wait().until(lambda d: d.find_elements(By.ID, "outcome"), "no outcome")
    assert outcome[0].text.startswith(
        f"Map code recorded for {DEMO_OPERATOR}; carrier-adapter.MapCarrierCode answered"
    ), outcome[0].text
    # carrier-adapter's code_mapped event closes it; the page's refresh shows that, and the
    # forms go with it.
    browser.wait(LIVE_SECONDS).until(
        lambda d: _text(d, "#exception-state") == "closed", "the exception never showed closed"
    )
    browser.wait().until(lambda d: d.find_elements(By.ID, "nothing-to-do"), "forms still shown")
    assert not driver.find_elements(By.CSS_SELECTOR, "form.action")
    closed_by = _text(driver, "#exception-closed-by")
    assert closed_by.startswith("event crossdock.carrier.code_mapped.v1 "), closed_by
    audit = driver.find_elements(By.CSS_SELECTOR, "#audit-table tr.audit-row")
    assert len(audit) == 1
    assert audit[0].get_attribute("data-action") == "map-code"
    assert audit[0].get_attribute("data-succeeded") == "true"
    assert audit[0].find_element(By.CSS_SELECTOR, "td.operator").text == DEMO_OPERATOR
    assert audit[0].find_element(By.CSS_SELECTOR, "td.reason").text == (
        "per the carrier's code list"
    )
    assert browser.console_errors() == []
    _screenshot(driver, "detail")


# POSTs the resolve form's fields with the page's own CSRF token, from the page: the browser's
# session, as a hand-made form would.
POST_RESOLVE = """
const done = arguments[arguments.length - 1];
const token = document.querySelector('input[name="csrf_token"]').value;
fetch(arguments[0], {method: "POST", body: new URLSearchParams({csrf_token: token, note: "ok"}),
                     redirect: "manual"})
  .then((answer) => done(answer.status), (error) => done(String(error)));
"""


def test_a_read_only_operator_cannot_act_and_a_partner_key_is_refused(
    browser: Browser, mesh: Mesh
) -> None:
    driver = browser.driver
    created = httpx.post(
        mesh.admin_url + "/admin/operator-keys",
        headers={"Authorization": f"Bearer {mesh.admin_token}"},
        json={"operator": f"viewer-{uuid.uuid4().hex[:8]}@localhost", "scopes": ["ops:read"]},
        timeout=15,
    )
    assert created.status_code == 201, created.text
    # An exception of its own: a code on a tracking number no order has (no label needed).
    code = _new_code()
    _push_scan(mesh, f"SBXNONE{secrets.token_hex(5).upper()}", code)

    _sign_in(browser, mesh, created.json()["operator_key"], "/exceptions?state=open")
    row = browser.wait(LIVE_SECONDS).until(_row_of(code), "the exception never showed")
    driver.get(f"{mesh.console_url}/exceptions/{row['id']}")
    browser.wait().until(lambda d: d.find_elements(By.ID, "read-only"), "no read-only note")
    assert not driver.find_elements(By.CSS_SELECTOR, "form.action")
    status = driver.execute_async_script(POST_RESOLVE, f"/console/exceptions/{row['id']}/resolve")
    assert status == 403
    browser.console_errors()  # the refused POST's own log line: drained, expected
    driver.refresh()
    browser.wait().until(lambda d: d.find_elements(By.ID, "no-audit"), "something was done")

    # The demo operator (ops:act) resolves it with the page's form: nothing is left open.
    driver.find_element(By.ID, "sign-out").click()
    browser.wait().until(lambda d: d.find_elements(By.ID, "login-notice"), "not signed out")
    _sign_in(browser, mesh, mesh.demo_operator_key, f"/exceptions/{row['id']}")
    browser.wait().until(lambda d: d.find_elements(By.ID, "form-resolve"), "no resolve form")
    driver.find_element(By.ID, "resolve-note").send_keys("a test code, nothing to map")
    driver.find_element(By.ID, "resolve-button").click()
    browser.wait().until(lambda d: _text(d, "#exception-state") == "closed", "not resolved")
    assert _text(driver, "#exception-closed-by") == f"operator {DEMO_OPERATOR}"
    assert browser.console_errors() == []
    driver.find_element(By.ID, "sign-out").click()
    browser.wait().until(lambda d: d.find_elements(By.ID, "login-notice"), "not signed out")

    # A partner key does not open the page.
    _sign_in(browser, mesh, mesh.demo_api_key, "/exceptions")
    error = browser.wait().until(lambda d: d.find_elements(By.ID, "login-error"), "no error")
    assert error[0].text == "a partner API key is not an operator key"
    assert not driver.find_elements(By.ID, "exceptions")
