"""The console's flow pages in headless Chromium against the session mesh (`make run`'s launcher).

With the warehouse simulator paused (as tests/control_tower/test_e2e_flows.py pauses it), an
order placed over the partner API waits in "released, not picked": the operator signs in, lands
on the flow overview, watches the order's flow fill in live (htmx, no reload) with its bar in
the chart, opens the flow's drill-down, finds the order there and follows its link to the
order's timeline. Screenshots of the overview and the drill-down are saved beside the one the
browser fixture leaves (test-artifacts/screenshots/), and no page logs a console error.
"""

from __future__ import annotations

import random
import uuid
from typing import Any

import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.expected_conditions import staleness_of

from localmesh import Mesh
from localmesh.demo import DemoOrder, PartnerApi, place, sample_order
from tests.control_tower.test_e2e_flows import paused, status_of
from tests.fixtures.browser import SCREENSHOTS, Browser
from tests.fixtures.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FLOW = "released_not_picked"
# The order is allocated and released without the warehouse; the tower then counts it.
RELEASE_SECONDS = 60.0
# Long enough for the tower to consume the release and the page's live refresh to show it.
LIVE_SECONDS = 60.0


def _screenshot(driver: WebDriver, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SCREENSHOTS / f"console_flows_{name}.png"))


# The overview in one read: htmx replaces the chart and table every few seconds, so element
# handles held across two reads can go stale; one script call sees one version of the page.
SNAPSHOT = """
const bars = [...document.querySelectorAll("svg#flow-chart g.flow-bar")].map((bar) => ({
  flow: bar.dataset.flow,
  items: Number(bar.dataset.items),
  breaches: Number(bar.dataset.breaches),
  segments: [...bar.querySelectorAll("rect.seg")].map((r) => r.getBoundingClientRect().width),
  slaMarks: bar.querySelectorAll("line.sla-mark").length,
}));
const rows = [...document.querySelectorAll("#flow-table tr.flow-row")].map((r) => r.dataset.flow);
const legend = document.getElementById("chart-legend");
return {bars, rows, legend: legend !== null && legend.getBoundingClientRect().height > 0};
"""


def _overview(driver: WebDriver) -> dict[str, Any]:
    return dict(driver.execute_script(SNAPSHOT))


def _bar_of(snapshot: dict[str, Any]) -> dict[str, Any] | None:
    return next((bar for bar in snapshot["bars"] if bar["flow"] == FLOW), None)


def _once_held(driver: WebDriver) -> dict[str, Any] | bool:
    """The overview once the held flow's bar has an item (False until then)."""
    snapshot = _overview(driver)
    bar = _bar_of(snapshot)
    return snapshot if bar is not None and bar["items"] >= 1 else False


def _click(browser: Browser, css: str) -> None:
    """Click the element `css` selects, again if a live refresh replaced it meanwhile."""

    def clicked(driver: WebDriver) -> bool:
        try:
            driver.find_element(By.CSS_SELECTOR, css).click()
        except StaleElementReferenceException:
            return False
        return True

    browser.wait().until(clicked, f"could not click {css}")


def _sign_in(browser: Browser, mesh: Mesh, key: str) -> None:
    browser.driver.get(mesh.console_url)
    browser.wait().until(lambda d: d.find_elements(By.ID, "operator-key"), "no sign-in form")
    browser.driver.find_element(By.ID, "operator-key").send_keys(key)
    browser.driver.find_element(By.ID, "sign-in").click()


def test_an_operator_sees_a_held_order_on_the_overview_and_drills_down_to_its_timeline(
    browser: Browser, mesh: Mesh
) -> None:
    driver = browser.driver
    api = PartnerApi(mesh.gateway_url, mesh.demo_api_key)
    order = DemoOrder(f"FLOWS-{uuid.uuid4().hex[:10]}")
    with paused(mesh.pids["warehouse-sim"]):
        place(api, order, sample_order(order.external_id, random.Random(11)))
        assert order.order_id, order.error
        released = wait_until(
            lambda: status_of(api, order.order_id),
            lambda status: status == "ORDER_STATUS_RELEASED",
            timeout=RELEASE_SECONDS,
        )
        assert released == "ORDER_STATUS_RELEASED"

        # The console opens on the overview: every flow in the chart and the table.
        _sign_in(browser, mesh, mesh.demo_operator_key)
        browser.wait().until(lambda d: d.find_elements(By.ID, "flows"), "no flow overview")
        assert driver.current_url.endswith("/console/flows")
        driver.execute_script("window.consoleTestMarker = 'same page';")
        # The tower counts the order a moment later; the page's live refresh shows it.
        snapshot = browser.wait(LIVE_SECONDS).until(
            _once_held, f"the chart never showed an item in {FLOW}"
        )
        assert isinstance(snapshot, dict)
        assert driver.execute_script("return window.consoleTestMarker") == "same page"
        bars = snapshot["bars"]
        assert [bar["flow"] for bar in bars] == snapshot["rows"]
        assert len(bars) == 8
        # Flows in breach come first.
        breaches = [bar["breaches"] for bar in bars]
        assert breaches == sorted(breaches, reverse=True), breaches
        # The held flow's bar is drawn: segments with a rendered width, and its SLA tick.
        held = _bar_of(snapshot)
        assert held is not None
        assert held["segments"] and all(width > 0 for width in held["segments"]), held
        assert held["slaMarks"] == 1
        assert snapshot["legend"]
        assert browser.console_errors() == []  # no CSP violation, no failed load
        _screenshot(driver, "overview")

        # The drill-down lists the order (page by page); its link opens the timeline.
        _click(browser, f'#flow-table tr[data-flow="{FLOW}"] a')
        browser.wait().until(lambda d: d.find_elements(By.ID, "flow-items"), "no drill-down")
        assert driver.current_url.endswith(f"/console/flows/{FLOW}")
        link = _find_order_link(browser, order.order_id)
        row = driver.find_element(By.CSS_SELECTOR, f'tr[data-item="{order.order_id}"]')
        assert row.get_attribute("data-breached") == "false"  # released seconds ago
        assert browser.console_errors() == []
        _screenshot(driver, "drill_down")
        link.click()
        browser.wait().until(
            lambda d: d.find_elements(By.ID, "order-id"), "the link did not open a timeline"
        )
        assert driver.find_element(By.ID, "order-id").text == order.order_id
        assert driver.find_element(By.ID, "reference").get_attribute("value") == order.order_id
        assert browser.console_errors() == []


def _find_order_link(browser: Browser, order_id: str) -> WebElement:
    """The order's link on the drill-down, following "Next page" until it shows up."""
    driver = browser.driver
    while True:
        links = driver.find_elements(By.CSS_SELECTOR, f'tr[data-item="{order_id}"] a.order-link')
        if links:
            return links[0]
        following = driver.find_elements(By.ID, "next-page")
        assert following, f"the drill-down does not list {order_id}"
        section = driver.find_element(By.ID, "flow-items")
        following[0].click()
        browser.wait().until(staleness_of(section), "the next page did not load")


def test_a_partner_key_does_not_open_the_overview(browser: Browser, mesh: Mesh) -> None:
    driver = browser.driver
    driver.get(mesh.console_url + "/flows")
    browser.wait().until(lambda d: d.find_elements(By.ID, "operator-key"), "not the sign-in page")
    assert "/console/login?next=%2Fconsole%2Fflows" in driver.current_url
    driver.find_element(By.ID, "operator-key").send_keys(mesh.demo_api_key)
    driver.find_element(By.ID, "sign-in").click()
    error = browser.wait().until(
        lambda d: d.find_elements(By.ID, "login-error"), "no error on the sign-in page"
    )
    assert error[0].text == "a partner API key is not an operator key"
    assert not driver.find_elements(By.ID, "flows")
