"""Raw payload log: redaction before storage, truncation, and bounded retention."""

from __future__ import annotations

from datetime import timedelta

import pytest

from services.carrier_adapter.domain.payload_log import (
    PayloadDirection,
    PayloadRecorder,
    RetentionPolicy,
    StoredPayloadRef,
    redact,
)
from tests.carrier_adapter.fakes import START, Recorder


def test_redacts_known_secret_values_and_token_fields() -> None:
    text = (
        '{"access_token": "abc.def", "client_secret":"zzz", "keep": "1"} '
        "grant_type=client_credentials&client_id=id-123&client_secret=s3cr3t&scope=x "
        "<Password>pa55word</Password>"
    )
    cleaned = redact(text, secrets=["pa55word", "id-123"])
    assert "abc.def" not in cleaned and '"access_token": "***"' in cleaned
    assert '"client_secret":"***"' in cleaned
    assert "client_secret=***&scope=x" in cleaned
    assert "client_id=***" in cleaned
    assert "<Password>***</Password>" in cleaned
    assert '"keep": "1"' in cleaned


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"ACCESS_TOKEN":"abc"}', '{"ACCESS_TOKEN":"***"}'),
        ('{"PaymentAuthorizationTOKEN" : "abc"}', '{"PaymentAuthorizationTOKEN" : "***"}'),
        ("user=a&PASSWORD=abc&x=1", "user=a&PASSWORD=***&x=1"),
        # Characters re.IGNORECASE equates with ASCII letters: the Kelvin sign is a "k", the
        # long s an "s". The cheap check that skips the pattern must not skip these.
        ('{"secret_\u212aey":"abc"}', '{"secret_\u212aey":"***"}'),
        ("pa\u017fsword=abc", "pa\u017fsword=***"),
        # Nothing that looks like a credential field: returned as it is.
        ('{"tracking_number":"SBX1","scans":[]}', '{"tracking_number":"SBX1","scans":[]}'),
        ("", ""),
    ],
)
def test_token_fields_are_blanked_whatever_their_case(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_the_longest_secret_is_blanked_first() -> None:
    # "abcd" inside "abcd-efgh": blanking the short one first would leave "-efgh" behind.
    assert redact("key abcd-efgh", secrets=["abcd", "abcd-efgh"]) == "key ***"


def test_short_values_are_not_treated_as_secrets() -> None:
    # Blanking "1" everywhere would wreck the record and hide nothing worth hiding.
    assert redact("weight 1 of 1", secrets=["1"]) == "weight 1 of 1"


def test_recorder_stamps_redacts_and_truncates() -> None:
    sink = Recorder()
    recorder = PayloadRecorder(
        "fedex", "fedex_main", sink, lambda: START, ["top-secret"],
        RetentionPolicy(max_body_chars=300),
    )  # fmt: skip

    recorder.record(
        operation="rate",
        direction=PayloadDirection.REQUEST,
        body="top-secret " + "x" * 500,
        url="https://apis.fedex.com/rate?key=top-secret",
        reference="ref-1",
    )

    [record] = sink.payloads()
    assert record.recorded_at == START
    assert record.body.startswith("*** ") and len(record.body) == 300 and record.truncated
    assert record.url.endswith("key=***")
    assert (record.carrier, record.carrier_account_id, record.reference) == (
        "fedex",
        "fedex_main",
        "ref-1",
    )


def ref(
    record_id: int, age: timedelta, account: str = "ups_east", error: bool = False
) -> StoredPayloadRef:
    return StoredPayloadRef(record_id, account, START - age, error)


def test_retention_deletes_by_age_keeping_errors_longer() -> None:
    policy = RetentionPolicy(max_age=timedelta(days=14), error_max_age=timedelta(days=90))
    records = [
        ref(1, timedelta(days=13)),
        ref(2, timedelta(days=15)),
        ref(3, timedelta(days=15), error=True),
        ref(4, timedelta(days=91), error=True),
    ]

    assert policy.select_for_deletion(records, START) == [2, 4]
    cut = policy.cutoffs(START)
    assert cut.ordinary_before == START - timedelta(days=14)
    assert cut.error_before == START - timedelta(days=90)


def test_retention_caps_each_account_keeping_the_newest() -> None:
    policy = RetentionPolicy(max_records_per_account=2)
    records = [ref(i, timedelta(hours=i)) for i in range(1, 5)] + [
        ref(10, timedelta(hours=9), account="fedex_main")
    ]
    assert policy.select_for_deletion(records, START) == [3, 4]


def test_retention_policy_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        RetentionPolicy(max_age=timedelta(days=30), error_max_age=timedelta(days=7))
    with pytest.raises(ValueError):
        RetentionPolicy(max_records_per_account=0)
