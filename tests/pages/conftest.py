"""Page tests: real pages of a real mesh in headless Chromium (tests/fixtures/browser.py).

The mesh is the session mesh of tests/fixtures/mesh.py (the same launcher as `make run`), shared
with the end-to-end tests: "try it out" on the docs page calls the real gateway and services.
"""

from __future__ import annotations

from tests.fixtures.browser import browser

__all__ = ["browser"]
