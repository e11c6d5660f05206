"""JSON log lines: one object per line with the fields an operator searches by."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider

from services.kit.logging import JsonFormatter, configure_logging
from services.kit.request_context import correlation_scope


@pytest.fixture
def emitted() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("order"))
    logger = logging.getLogger("tests.kit.logging_probe")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger, stream
    logger.removeHandler(handler)


def _lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_record_is_one_json_line_with_the_core_fields(
    emitted: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = emitted
    logger.warning("reserved %d units\nof SKU-1", 3, extra={"order_id": "ord_1"})

    (line,) = _lines(stream)
    assert line["level"] == "WARNING"
    assert line["logger"] == "tests.kit.logging_probe"
    assert line["message"] == "reserved 3 units\nof SKU-1"
    assert line["service"] == "order"
    assert line["order_id"] == "ord_1"
    assert line["time"].endswith("Z") and "T" in line["time"]
    assert "correlation_id" not in line and "trace_id" not in line


def test_correlation_id_is_added_inside_a_call(
    emitted: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = emitted
    with correlation_scope("cid-99"):
        logger.info("inside")
    logger.info("outside")

    inside, outside = _lines(stream)
    assert inside["correlation_id"] == "cid-99"
    assert "correlation_id" not in outside


def test_trace_and_span_ids_are_added_when_a_span_is_active(
    emitted: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = emitted
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("work") as span:
        logger.info("traced")
        context = span.get_span_context()

    (line,) = _lines(stream)
    assert line["trace_id"] == format(context.trace_id, "032x")
    assert line["span_id"] == format(context.span_id, "016x")


def test_exceptions_carry_type_and_traceback(
    emitted: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = emitted
    try:
        raise KeyError("sku")
    except KeyError:
        logger.exception("lookup failed")

    (line,) = _lines(stream)
    assert line["level"] == "ERROR"
    assert line["exception_type"] == "KeyError"
    assert line["exception"].startswith("Traceback (most recent call last)")


def test_extra_fields_never_replace_core_fields(
    emitted: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = emitted
    logger.info("hello", extra={"service": "spoofed", "level": "spoofed"})

    (line,) = _lines(stream)
    assert line["service"] == "order" and line["level"] == "INFO"


def test_configure_logging_routes_every_logger_through_json() -> None:
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    stream = io.StringIO()
    try:
        configure_logging("billing", "warning", stream=stream)
        logging.getLogger("some.library").info("dropped: below WARNING")
        logging.getLogger("some.library").error("kept")
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved_handlers:
            root.addHandler(handler)
        root.setLevel(saved_level)
        logging.captureWarnings(False)

    (line,) = _lines(stream)
    assert (line["message"], line["service"], line["logger"]) == ("kept", "billing", "some.library")


def test_any_extra_value_is_logged_and_each_line_has_its_own_time(
    emitted: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = emitted
    logger.info("first", extra={"huge": 2**70, "thing": object(), "text": "caf\u00e9"})
    logger.info("second")

    first, second = _lines(stream)
    assert first["huge"] == 2**70  # beyond 64 bits: still a JSON number
    assert first["thing"].startswith("<object object")
    assert first["text"] == "caf\u00e9"
    assert second["message"] == "second"


def test_times_are_utc_with_milliseconds_across_seconds() -> None:
    formatter = JsonFormatter("order")
    stamps = []
    for created in (1700000000.999, 1700000001.0, 1700000001.25, 1700000000.5):
        record = logging.LogRecord("probe", logging.INFO, "x", 1, "m", None, None)
        record.created = created
        stamps.append(json.loads(formatter.format(record))["time"])
    assert stamps == [
        "2023-11-14T22:13:20.999Z",
        "2023-11-14T22:13:21.000Z",
        "2023-11-14T22:13:21.250Z",
        "2023-11-14T22:13:20.500Z",
    ]
