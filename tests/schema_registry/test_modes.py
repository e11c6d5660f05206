"""Each compatibility mode on real descriptor sets, every verdict confirmed by buf itself.

Registry verdicts come from `buf breaking` on the stored (pruned, canonical) descriptor sets;
`buf_rules` runs buf directly on protoc's output, so agreement here is not by assumption.
"""

from __future__ import annotations

import itertools

import pytest

from services.schema_registry.app import SchemaRegistry
from services.schema_registry.domain.errors import IncompatibleSchema
from services.schema_registry.domain.modes import CompatibilityMode as Mode
from tests.schema_registry.protos import (
    ADDED,
    BASE,
    DEPRECATED,
    REMOVED,
    RESERVED,
    RETYPED,
    THING,
    buf_rules,
    thing,
)

_subjects = itertools.count(1)


def new_subject() -> str:
    return f"regtest.mode_{next(_subjects)}.v1"


async def outcome(registry: SchemaRegistry, subject: str, schema: bytes) -> set[str]:
    """Register; the set of rules it broke (empty: registered)."""
    try:
        await registry.register(subject, THING, schema)
    except IncompatibleSchema as error:
        return {v.rule for v in error.compat_violations}
    return set()


# Which edit of BASE each mode accepts, under WIRE_JSON:
# - adding a field is BACKWARD-safe, but seen FORWARD (old as an evolution of new) it is an
#   unreserved deletion;
# - deleting a field without reserving it is the mirror image: FORWARD-safe only;
# - deleting with the number and name reserved is BACKWARD-safe; FORWARD it drops a reservation;
# - a type change breaks both ways; deprecating a field breaks neither.
EDITS = {
    "add a field": (ADDED, {Mode.BACKWARD: True, Mode.FORWARD: False, Mode.FULL: False}),
    "remove a field, unreserved": (
        REMOVED,
        {Mode.BACKWARD: False, Mode.FORWARD: True, Mode.FULL: False},
    ),
    "remove a field, reserved": (
        RESERVED,
        {Mode.BACKWARD: True, Mode.FORWARD: False, Mode.FULL: False},
    ),
    "change a field type": (RETYPED, {Mode.BACKWARD: False, Mode.FORWARD: False, Mode.FULL: False}),
    "deprecate a field": (DEPRECATED, {Mode.BACKWARD: True, Mode.FORWARD: True, Mode.FULL: True}),
}
CASES = [
    pytest.param(body, mode, accepted, id=f"{edit}-{mode}")
    for edit, (body, verdicts) in EDITS.items()
    for mode, accepted in verdicts.items()
]


@pytest.mark.parametrize(("body", "mode", "accepted"), CASES)
async def test_mode_verdict_agrees_with_buf(
    shared_registry: SchemaRegistry, body: str, mode: Mode, accepted: bool
) -> None:
    old, new = thing(BASE), thing(body)
    # What buf says on its own: BACKWARD = new against old, FORWARD = old against new.
    expected: set[str] = set()
    if mode in (Mode.BACKWARD, Mode.FULL):
        expected |= buf_rules(new, old)
    if mode in (Mode.FORWARD, Mode.FULL):
        expected |= buf_rules(old, new)
    assert (not expected) == accepted, f"buf itself says {sorted(expected)}"

    subject = new_subject()
    await shared_registry.set_mode(mode, subject)
    await shared_registry.register(subject, THING, old)
    assert await outcome(shared_registry, subject, new) == expected
    assert await shared_registry.versions(subject) == ([1, 2] if accepted else [1])


async def test_removing_an_unreserved_field_fails_backward_with_buf_rules(
    shared_registry: SchemaRegistry,
) -> None:
    subject = new_subject()
    await shared_registry.register(subject, THING, thing(BASE))
    with pytest.raises(IncompatibleSchema) as raised:
        await shared_registry.register(subject, THING, thing(REMOVED))
    violations = raised.value.compat_violations
    assert {v.rule for v in violations} == {
        "FIELD_NO_DELETE_UNLESS_NUMBER_RESERVED",
        "FIELD_NO_DELETE_UNLESS_NAME_RESERVED",
    }
    assert all(v.against_version == 1 for v in violations)
    assert all(v.message.startswith("backward: regtest/v1/thing.proto:") for v in violations)
    assert all('"count"' in v.message for v in violations)


async def test_changing_a_field_type_fails_with_wire_json_rule(
    shared_registry: SchemaRegistry,
) -> None:
    subject = new_subject()
    await shared_registry.register(subject, THING, thing(BASE))
    with pytest.raises(IncompatibleSchema) as raised:
        await shared_registry.register(subject, THING, thing(RETYPED))
    assert {v.rule for v in raised.value.compat_violations} == {"FIELD_WIRE_JSON_COMPATIBLE_TYPE"}


async def test_none_accepts_anything(shared_registry: SchemaRegistry) -> None:
    subject = new_subject()
    await shared_registry.set_mode(Mode.NONE, subject)
    for version, body in enumerate((BASE, RETYPED, REMOVED, BASE.replace("Thing", "Other")), 1):
        name = "regtest.v1.Other" if "Other" in body else THING
        schema = await shared_registry.register(subject, name, thing(body))
        assert schema.version == version
    assert buf_rules(thing(RETYPED), thing(BASE))  # buf would have refused the retype


# Three versions whose neighbours are compatible but whose ends are not. Part loses `qty`
# between v1 and v3; in v2 nothing references Part, so the registry's pruned v2 has no Part.
CHAIN = (
    "message Thing { string id = 1; Part part = 2; }\n"
    "message Part { string sku = 1; int32 qty = 2; }",
    'message Thing { reserved 2; reserved "part"; string id = 1; }',
    'message Thing { reserved 2; reserved "part"; string id = 1; Part spare = 3; }\n'
    "message Part { string sku = 1; }",
)


@pytest.mark.parametrize(
    ("mode", "order", "accepted"),
    [
        pytest.param(Mode.BACKWARD, (0, 1, 2), True, id="BACKWARD"),
        pytest.param(Mode.BACKWARD_TRANSITIVE, (0, 1, 2), False, id="BACKWARD_TRANSITIVE"),
        # FORWARD runs the comparisons the other way round, so the chain is registered reversed.
        pytest.param(Mode.FORWARD, (2, 1, 0), True, id="FORWARD"),
        pytest.param(Mode.FORWARD_TRANSITIVE, (2, 1, 0), False, id="FORWARD_TRANSITIVE"),
    ],
)
async def test_transitive_modes_across_three_versions(
    shared_registry: SchemaRegistry, mode: Mode, order: tuple[int, int, int], accepted: bool
) -> None:
    v1, v2, v3 = (thing(CHAIN[i]) for i in order)
    forward = mode in (Mode.FORWARD, Mode.FORWARD_TRANSITIVE)

    def buf_says(new: bytes, old: bytes) -> set[str]:
        return buf_rules(old, new) if forward else buf_rules(new, old)

    assert buf_says(v2, v1) == set() and buf_says(v3, v2) == set()
    v3_against_v1 = buf_says(v3, v1)
    assert v3_against_v1 >= {"FIELD_NO_DELETE_UNLESS_NUMBER_RESERVED"}

    subject = new_subject()
    await shared_registry.set_mode(mode, subject)
    await shared_registry.register(subject, THING, v1)
    await shared_registry.register(subject, THING, v2)
    if accepted:
        assert (await shared_registry.register(subject, THING, v3)).version == 3
        return
    with pytest.raises(IncompatibleSchema) as raised:
        await shared_registry.register(subject, THING, v3)
    violations = raised.value.compat_violations
    assert {v.against_version for v in violations} == {1}
    assert {v.rule for v in violations} == v3_against_v1
    assert await shared_registry.versions(subject) == [1, 2]


@pytest.mark.parametrize(("mode", "accepted"), [(Mode.FULL, True), (Mode.FULL_TRANSITIVE, False)])
async def test_full_transitive_remembers_older_versions(
    shared_registry: SchemaRegistry, mode: Mode, accepted: bool
) -> None:
    # v2 was registered while the subject was BACKWARD; then the subject moved to FULL(_T).
    v1, v2 = thing(BASE), thing(ADDED)
    v3 = thing(ADDED.replace("int32 count = 2;", "int32 count = 2 [deprecated = true];"))
    assert buf_rules(v3, v2) == set() and buf_rules(v2, v3) == set()  # FULL with v2
    assert buf_rules(v3, v1) == set() and buf_rules(v1, v3)  # FORWARD-incompatible with v1

    subject = new_subject()
    await shared_registry.register(subject, THING, v1)
    await shared_registry.register(subject, THING, v2)
    await shared_registry.set_mode(mode, subject)
    if accepted:
        assert (await shared_registry.register(subject, THING, v3)).version == 3
        return
    with pytest.raises(IncompatibleSchema) as raised:
        await shared_registry.register(subject, THING, v3)
    violations = raised.value.compat_violations
    assert {v.against_version for v in violations} == {1}
    assert all(v.message.startswith("forward:") for v in violations)
    assert {v.rule for v in violations} == buf_rules(v1, v3)


async def test_check_names_a_version_and_uses_the_mode_directions(
    shared_registry: SchemaRegistry,
) -> None:
    subject = new_subject()
    await shared_registry.register(subject, THING, thing(BASE))
    await shared_registry.register(subject, THING, thing(ADDED))
    # REMOVED against v2 breaks (note and count go); against v1 only count goes.
    against_latest = await shared_registry.check(subject, THING, thing(REMOVED))
    against_v1 = await shared_registry.check(subject, THING, thing(REMOVED), version=1)
    assert {v.against_version for v in against_latest} == {2}
    assert {v.against_version for v in against_v1} == {1}
    assert len(against_latest) == 2 * len(against_v1)
    assert await shared_registry.check(subject, THING, thing(ADDED), version=1) == []


async def test_a_different_message_under_a_subject_is_refused(
    shared_registry: SchemaRegistry,
) -> None:
    # buf matches messages by name, so a renamed root would be compared with nothing.
    renamed = thing(BASE.replace("Thing", "Other"))
    assert buf_rules(renamed, thing(BASE)) == set()
    subject = new_subject()
    await shared_registry.register(subject, THING, thing(BASE))
    with pytest.raises(IncompatibleSchema) as raised:
        await shared_registry.register(subject, "regtest.v1.Other", renamed)
    assert [v.rule for v in raised.value.compat_violations] == ["MESSAGE_SAME_NAME"]


OPTIONS_FILE = "regtest/v1/opts.proto"
PART_FILE = "regtest/v1/part.proto"


def _opts(fields: str) -> str:
    return (
        'syntax = "proto3";\npackage regtest.v1;\nimport "google/protobuf/descriptor.proto";\n'
        f"message Tag {{ {fields} }}\n"
        "extend google.protobuf.MessageOptions { Tag tag = 50001; }\n"
    )


def _part(fields: str) -> str:
    return f'syntax = "proto3";\npackage regtest.v1;\nmessage Part {{ {fields} }}\n'


def _tagged_thing(opts_fields: str, part_fields: str) -> bytes:
    body = 'message Thing {\n  option (regtest.v1.tag) = {owner: "ops"};\n  Part part = 1;\n}'
    return thing(
        body,
        imports=(OPTIONS_FILE, PART_FILE),
        extra={OPTIONS_FILE: _opts(opts_fields), PART_FILE: _part(part_fields)},
    )


async def test_only_payload_files_are_compared(shared_registry: SchemaRegistry) -> None:
    v1 = _tagged_thing("string owner = 1; string team = 2;", "string sku = 1; int32 qty = 2;")
    # An options-only file changing (Tag loses `team`) does not touch the event's encoding...
    options_changed = _tagged_thing("string owner = 1;", "string sku = 1; int32 qty = 2;")
    # ...a type the event carries losing a field does.
    payload_changed = _tagged_thing("string owner = 1; string team = 2;", "string sku = 1;")
    assert buf_rules(options_changed, v1)  # buf over the whole image flags the options file
    assert buf_rules(payload_changed, v1)

    subject = new_subject()
    await shared_registry.register(subject, THING, v1)
    with pytest.raises(IncompatibleSchema) as raised:
        await shared_registry.register(subject, THING, payload_changed)
    assert all(PART_FILE in v.message for v in raised.value.compat_violations)
    assert (await shared_registry.register(subject, THING, options_changed)).version == 2
