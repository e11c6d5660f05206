"""The operator console in headless Chromium against the session mesh (`make run`'s launcher):
sign in with the demo operator key, follow an order placed over the partner API until its
timeline shows it completed (live, without reloading), open it by a tracking number; a partner
key is refused; signing out works. Each test leaves a screenshot in test-artifacts/screenshots/.
"""

from __future__ import annotations

import random
import uuid

import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from localmesh import Mesh
from localmesh.demo import DemoOrder, PartnerApi, place, sample_order
from tests.fixtures.browser import Browser

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# Placed, picked, labelled, scanned, delivered, invoiced: well within this on the sandbox.
ORDER_SECONDS = 180.0


def _sign_in(browser: Browser, mesh: Mesh, key: str) -> None:
    driver = browser.driver
    driver.get(mesh.console_url)
    browser.wait().until(lambda d: d.find_elements(By.ID, "operator-key"), "no sign-in form")
    driver.find_element(By.ID, "operator-key").send_keys(key)
    driver.find_element(By.ID, "sign-in").click()


def _text(driver: WebDriver, element_id: str) -> str:
    """The element's text now; "" while it is absent or being swapped by htmx."""
    try:
        found = driver.find_elements(By.ID, element_id)
        return found[0].text if found else ""
    except StaleElementReferenceException:  # replaced between the lookup and the read
        return ""


def _search(browser: Browser, reference: str) -> None:
    box = browser.driver.find_element(By.ID, "reference")
    box.clear()
    box.send_keys(reference)
    browser.driver.find_element(By.ID, "search").click()


def test_an_operator_follows_an_order_live_and_opens_it_by_tracking_number(
    browser: Browser, mesh: Mesh
) -> None:
    driver = browser.driver
    api = PartnerApi(mesh.gateway_url, mesh.demo_api_key)
    order = DemoOrder(f"CONSOLE-{uuid.uuid4().hex[:10]}")
    place(api, order, sample_order(order.external_id, random.Random(7)))
    assert order.order_id, order.error

    _sign_in(browser, mesh, mesh.demo_operator_key)
    browser.wait().until(lambda d: d.find_elements(By.ID, "reference"), "no search box")
    assert _text(driver, "operator-name") == "demo-operator@localhost"
    _search(browser, order.external_id)
    browser.wait().until(lambda d: d.find_elements(By.ID, "timeline"), "no timeline section")
    # Everything after this happens on this page: htmx re-reads the table until it is final.
    driver.execute_script("window.consoleTestMarker = 'same page';")
    browser.wait(ORDER_SECONDS).until(
        lambda d: _text(d, "order-state") == "COMPLETED", "the timeline never showed COMPLETED"
    )
    assert driver.execute_script("return window.consoleTestMarker") == "same page"
    browser.wait().until(lambda d: _text(d, "live").startswith("final"), "still refreshing")
    assert _text(driver, "order-id") == order.order_id

    # Every reference an event carries links to a search for it: open the tracking number.
    tracking = driver.find_element(By.CSS_SELECTOR, 'td.refs a[data-kind="tracking"]')
    tracking_number = tracking.find_element(By.TAG_NAME, "code").text
    tracking.click()
    browser.wait().until(
        lambda d: "found by tracking number" in d.find_element(By.CLASS_NAME, "summary").text,
        "the tracking number's search did not find the order",
    )
    assert driver.find_element(By.ID, "reference").get_attribute("value") == tracking_number
    assert _text(driver, "order-id") == order.order_id
    rows = driver.find_elements(By.CSS_SELECTOR, "table.timeline tbody tr")
    producers = {row.get_attribute("data-producer") for row in rows}
    assert {"order", "inventory", "shipment", "carrier-adapter", "billing"} <= producers, producers
    states = [row.find_element(By.CSS_SELECTOR, "td.state").text for row in rows]
    assert states[0] == "order → PLACED" and "order → COMPLETED" in states, states
    # Producers are told apart by colour.
    colours = {
        row.find_element(By.CSS_SELECTOR, ".producer").value_of_css_property("background-color")
        for row in rows
    }
    assert len(colours) >= 5, colours
    assert browser.console_errors() == []  # no CSP violation, no failed load


def test_a_partner_key_is_refused_at_sign_in(browser: Browser, mesh: Mesh) -> None:
    driver = browser.driver
    driver.get(mesh.console_url + "/timeline")
    browser.wait().until(lambda d: d.find_elements(By.ID, "operator-key"), "not the sign-in page")
    assert "/console/login" in driver.current_url
    driver.find_element(By.ID, "operator-key").send_keys(mesh.demo_api_key)
    driver.find_element(By.ID, "sign-in").click()
    error = browser.wait().until(
        lambda d: d.find_elements(By.ID, "login-error"), "no error on the sign-in page"
    )
    assert error[0].text == "a partner API key is not an operator key"
    assert "crossdock_console" not in {c["name"] for c in driver.get_cookies()}
    assert not driver.find_elements(By.ID, "reference")  # no console page behind it
    assert mesh.demo_api_key not in driver.page_source  # the key is not echoed


def test_signing_out_ends_the_session(browser: Browser, mesh: Mesh) -> None:
    _sign_in(browser, mesh, mesh.demo_operator_key)
    browser.wait().until(lambda d: d.find_elements(By.ID, "sign-out"), "not signed in")
    browser.driver.find_element(By.ID, "sign-out").click()
    notice = browser.wait().until(
        lambda d: d.find_elements(By.ID, "login-notice"), "no signed-out notice"
    )
    assert notice[0].text == "You are signed out."
    assert "crossdock_console" not in {c["name"] for c in browser.driver.get_cookies()}
    browser.driver.get(mesh.console_url + "/timeline")
    browser.wait().until(lambda d: d.find_elements(By.ID, "operator-key"), "not the sign-in page")
