"""Generate the NATS users and subject permissions from the event catalog.

    python deploy/gen_nats_auth.py           # rewrite deploy/k8s/base/nats/auth.conf
    python deploy/gen_nats_auth.py --check   # exit 1 when the committed file is stale

Each service gets one user (its service name) that may publish exactly the events it produces,
the dead-letter subjects of its own consumers and the JetStream API calls the kit makes for it
(reading and deleting DLQ messages included, for its DeadLetterService), and subscribe to the
events it consumes plus reply inboxes. `permissions()` is importable so the local run can hand
nats-server the same rules.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from dataclasses import dataclass
from pathlib import Path

from services.kit.catalog import SERVICES, load_catalog
from services.kit.streams import DLQ_STREAM, DOMAIN_STREAMS, dlq_subject, stream_for_subject

AUTH_FILE = Path(__file__).resolve().parent / "k8s" / "base" / "nats" / "auth.conf"
DEFAULT_PURPOSE = "events"  # services.kit.runtime.start_events' default
# Services that report the mesh's JetStream state (every durable's pending count, the DLQ's
# depth per consumer): they may list each domain stream's consumers, a read-only call.
MESH_WATCHERS = frozenset({"control-tower"})


@dataclass(frozen=True)
class Permissions:
    publish: tuple[str, ...]
    subscribe: tuple[str, ...]


def password_env(service: str) -> str:
    """The nats-server env var holding a user's password (from the nats-users Secret)."""
    return "NATS_PASSWORD_" + service.upper().replace("-", "_")


def consumer_name(service: str) -> str:
    """The durable name `<service>-<purpose>`, with the purpose the service's code declares."""
    package = "gateway" if service == "gateway" else f"services.{service.replace('-', '_')}"
    module_name = f"{package}.entrypoints.consumers"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError:
        return f"{service}-{DEFAULT_PURPOSE}"
    return f"{service}-{getattr(module, 'PURPOSE', DEFAULT_PURPOSE)}"


def permissions(service: str) -> Permissions:
    catalog = load_catalog()
    produced = sorted({event.subject for event in catalog if event.producer == service})
    consumed = sorted({event.subject for event in catalog if service in event.consumers})
    publish = list(produced)
    subscribe = ["_INBOX.>", *consumed]  # replies (JetStream acks, pulls) and consumed events
    if produced or consumed:
        # Every service declares the streams at start (services.kit.streams.ensure_streams).
        streams = [*DOMAIN_STREAMS.values(), DLQ_STREAM]
        publish.append("$JS.API.INFO")
        for verb in ("INFO", "CREATE", "UPDATE"):
            publish.extend(f"$JS.API.STREAM.{verb}.{stream}" for stream in streams)
    if consumed:
        durable = consumer_name(service)
        publish += [
            dlq_subject(durable),
            # DeadLetterService (services.kit.dlq_service) reads a letter by sequence and
            # deletes it once redriven or discarded. JetStream cannot narrow these calls to
            # one consumer's DLQ subject; the service checks the letter is its own.
            f"$JS.API.STREAM.MSG.GET.{DLQ_STREAM}",
            f"$JS.API.STREAM.MSG.DELETE.{DLQ_STREAM}",
        ]
        for stream in sorted({stream_for_subject(subject) for subject in consumed}):
            publish += [
                f"$JS.API.CONSUMER.CREATE.{stream}.{durable}",
                f"$JS.API.CONSUMER.CREATE.{stream}.{durable}.>",
                f"$JS.API.CONSUMER.DURABLE.CREATE.{stream}.{durable}",
                f"$JS.API.CONSUMER.INFO.{stream}.{durable}",
                f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}",
                f"$JS.ACK.{stream}.{durable}.>",
                # Dead-lettering reads the original message by sequence.
                f"$JS.API.STREAM.MSG.GET.{stream}",
            ]
            # services.kit.dlq listens for max-deliveries advisories of its own durable.
            subscribe.append(f"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{stream}.{durable}")
    if service in MESH_WATCHERS:
        # STREAM.INFO of every stream (the DLQ's per-subject counts) is granted above.
        publish += [f"$JS.API.CONSUMER.LIST.{name}" for name in sorted(DOMAIN_STREAMS.values())]
    return Permissions(tuple(publish), tuple(subscribe))


def _quoted(subjects: tuple[str, ...], indent: str) -> str:
    return "\n".join(f'{indent}"{subject}"' for subject in subjects)


def render() -> str:
    users = []
    for service in sorted(SERVICES):
        perms = permissions(service)
        publish = (
            f"publish: {{ allow: [\n{_quoted(perms.publish, '          ')}\n        ] }}"
            if perms.publish
            else 'publish: { deny: [">"] }'
        )
        users.append(
            f"""    {{
      user: "{service}"
      password: ${password_env(service)}
      permissions: {{
        {publish}
        subscribe: {{ allow: [
{_quoted(perms.subscribe, "          ")}
        ] }}
      }}
    }}"""
        )
    return (
        "# Generated by deploy/gen_nats_auth.py from the event catalog: do not edit.\n"
        "# Passwords come from the nats-users Secret through the server's environment.\n"
        "authorization {\n  users: [\n" + "\n".join(users) + "\n  ]\n}\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the file is stale")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if not AUTH_FILE.exists() or AUTH_FILE.read_text() != text:
            print(f"{AUTH_FILE} is stale: run python deploy/gen_nats_auth.py", file=sys.stderr)
            return 1
        return 0
    AUTH_FILE.write_text(text)
    print(f"wrote {AUTH_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
