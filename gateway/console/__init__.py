"""The operator console: Jinja2 pages with htmx on the gateway's admin port (see app.py)."""
