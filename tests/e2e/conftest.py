"""End-to-end tests share the session mesh of tests/fixtures/mesh.py (registered in
tests/conftest.py, so the page tests and these use one mesh)."""
