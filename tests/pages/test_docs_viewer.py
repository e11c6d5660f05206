"""The partner docs page in headless Chromium: the whole document, "Authorize", "try it out"."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement

from localmesh import Mesh
from tests.fixtures.browser import Browser

pytestmark = pytest.mark.integration

_LIST_ORDERS = "operations-OrderService-OrderService_ListOrders"
_CREATE_ORDER = "operations-OrderService-OrderService_CreateOrder"


def _open_docs(browser: Browser, mesh: Mesh) -> list[WebElement]:
    browser.driver.get(mesh.docs_url)
    return browser.wait().until(
        lambda driver: driver.find_elements(By.CSS_SELECTOR, ".opblock"),
        "Swagger UI rendered no operation",
    )


def _authorize(browser: Browser, api_key: str) -> None:
    driver = browser.driver
    driver.find_element(By.CSS_SELECTOR, ".auth-wrapper .btn.authorize").click()
    browser.wait().until(lambda d: d.find_elements(By.ID, "auth-bearer-value"))
    driver.find_element(By.ID, "auth-bearer-value").send_keys(api_key)
    driver.find_element(By.CSS_SELECTOR, ".auth-btn-wrapper .authorize").click()
    driver.find_element(By.CSS_SELECTOR, ".auth-btn-wrapper .btn-done").click()


def _try_it_out(browser: Browser, operation_id: str) -> WebElement:
    """Expand the operation and press "Try it out"; the operation's block."""
    block = browser.driver.find_element(By.ID, operation_id)
    block.find_element(By.CSS_SELECTOR, ".opblock-summary-control").click()
    button = browser.wait().until(
        lambda d: block.find_element(By.CSS_SELECTOR, ".try-out__btn"), "no Try it out button"
    )
    button.click()
    return block


def _execute(browser: Browser, block: WebElement) -> tuple[str, str]:
    """Press Execute; (the status the page shows, the response body it shows)."""
    block.find_element(By.CSS_SELECTOR, ".execute").click()
    status = browser.wait().until(
        lambda d: block.find_element(
            By.CSS_SELECTOR, ".live-responses-table .response .response-col_status"
        ),
        "the page showed no response",
    )
    # In view, so the test's screenshot shows the response.
    browser.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", status)
    body = block.find_element(
        By.CSS_SELECTOR, ".live-responses-table .response .highlight-code code"
    )
    return status.text.strip(), body.text


def test_the_viewer_shows_every_operation_of_the_document(browser: Browser, mesh: Mesh) -> None:
    spec = httpx.get(mesh.openapi_url, timeout=10).json()
    documented = {
        (method, path, operation["operationId"])
        for path, item in spec["paths"].items()
        for method, operation in item.items()
    }
    blocks = _open_docs(browser, mesh)
    shown = set()
    for block in blocks:
        method = next(
            c.removeprefix("opblock-")
            for c in (block.get_attribute("class") or "").split()
            if c.startswith("opblock-") and c != "opblock-deprecated"
        )
        path = block.find_element(By.CSS_SELECTOR, ".opblock-summary-path").get_attribute(
            "data-path"
        )
        shown.add((method, path, (block.get_attribute("id") or "").rsplit("-", 1)[-1]))
    assert shown == documented
    # The problem anchors every problem+json `type` points at are on the same page.
    assert browser.driver.find_element(By.ID, "problem-404").is_displayed()
    # Nothing was blocked or failed to load (CSP violations are console errors).
    assert browser.console_errors() == []


def test_try_it_out_lists_and_creates_orders_with_a_partner_key(
    browser: Browser, mesh: Mesh
) -> None:
    _open_docs(browser, mesh)
    _authorize(browser, mesh.demo_api_key)

    listing = _try_it_out(browser, _LIST_ORDERS)
    status, body = _execute(browser, listing)
    assert status == "200", body
    assert "orders" in json.loads(body)

    creating = _try_it_out(browser, _CREATE_ORDER)
    example = creating.find_element(By.CSS_SELECTOR, "textarea.body-param__text")
    assert json.loads(example.get_attribute("value") or "{}")[
        "lines"
    ]  # the document's example body
    key = creating.find_element(By.CSS_SELECTOR, 'tr[data-param-name="Idempotency-Key"] input')
    key.send_keys(str(uuid.uuid4()))
    status, body = _execute(browser, creating)
    assert status == "201", body
    order_id = json.loads(body)["order"]["orderId"]
    # The order really exists: the API answers for it with the same key.
    found = httpx.get(
        f"{mesh.gateway_url}/v1/orders/{order_id}",
        headers={"Authorization": f"Bearer {mesh.demo_api_key}"},
        timeout=10,
    )
    assert found.status_code == 200, found.text
    assert browser.console_errors() == []


def test_a_wrong_key_shows_401_in_the_page(browser: Browser, mesh: Mesh) -> None:
    _open_docs(browser, mesh)
    _authorize(browser, "cdk_nosuchkey_" + uuid.uuid4().hex)
    listing = _try_it_out(browser, _LIST_ORDERS)
    status, body = _execute(browser, listing)
    assert status == "401", body
    problem = json.loads(body)
    assert (problem["status"], problem["grpc_code"]) == (401, "UNAUTHENTICATED")
