"""Wiring: `python -m services.control_tower.main` (settings: services.control_tower.config).

The kit's run_service owns the process (config, logs, metrics, health, SIGTERM); `setup` is also
what the integration tests run. `start_events` opens its database and NATS, registers the schema
of the one event it publishes (`crossdock.reconciliation.finding.v1`, appended to its outbox by
the reconciliation runs) and starts its relay; its projection consumers start on that runtime. Its
only calls out are the workbench's actions, to the owners' RPCs (shipment, carrier-adapter,
order), and the reconciliation checks' reads and corrections (shipment, billing, carrier-adapter,
inventory and order for reservations, and every service's EventLedgerService for event_flow).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NoReturn

from crossdock.billing.v1 import billing_service_pb2_grpc as billing_grpc
from crossdock.carrier.v1 import carrier_service_pb2_grpc as carrier_grpc
from crossdock.common.v1 import dead_letters_pb2_grpc as dlq_grpc
from crossdock.common.v1 import event_ledger_pb2_grpc as ledger_grpc
from crossdock.inventory.v1 import inventory_service_pb2_grpc as inventory_grpc
from crossdock.order.v1 import order_service_pb2_grpc as order_grpc
from crossdock.shipment.v1 import shipment_service_pb2_grpc as shipment_grpc

from services.control_tower.adapters.clients import DeadLetterClients, OwnerClients
from services.control_tower.app.reconcile import Reconciler
from services.control_tower.app.reconciliation.checks import CHECKS, Check, CheckContext
from services.control_tower.app.reconciliation.schedule import ReconcileScheduler
from services.control_tower.app.workbench import Workbench
from services.control_tower.config import TowerConfig
from services.control_tower.entrypoints.consumers import event_handlers, start_consumers
from services.control_tower.entrypoints.dead_letters import DeadLetterWatcher
from services.control_tower.entrypoints.flow_gauges import FlowGauges, FlowGaugeWorker
from services.control_tower.entrypoints.grpc import TowerApi, add_to_server
from services.kit.client import open_channel
from services.kit.runtime import start_events
from services.kit.server import ServiceServer, run_service


async def setup(
    server: ServiceServer, config: TowerConfig, *, checks: Mapping[str, Check] = CHECKS
) -> None:
    """The owners' channels, the events runtime (migrate, DB, NATS), the projection consumers,
    the flow gauges' worker, the dead letters' watcher, the reconciliation schedule, then the
    api. `checks` are the reconciliation checks (tests pass their own)."""
    workers: list[FlowGaugeWorker] = []
    timeout = config.grpc_client_timeout_seconds
    shipment_channel = open_channel(config.shipment_target, default_timeout_seconds=timeout)
    carrier_channel = open_channel(config.carrier_adapter_target, default_timeout_seconds=timeout)
    # The consuming services' DeadLetterService (shipment's on the channel above).
    letter_channels = {
        service: shipment_channel
        if service == "shipment"
        else open_channel(target, default_timeout_seconds=timeout)
        for service, target in config.dead_letter_targets().items()
    }
    watchers: list[DeadLetterWatcher] = []
    schedulers: list[ReconcileScheduler] = []

    async def stop_gauges() -> None:
        for worker in workers:
            await worker.stop()
        for watcher in watchers:
            await watcher.stop()
        for scheduler in schedulers:
            await scheduler.stop()
        for channel in {*letter_channels.values(), shipment_channel, carrier_channel}:
            await channel.close(None)

    # Added before the runtime's hooks, so the gauges stop before NATS and the database close.
    server.add_shutdown_hook(stop_gauges, name="stop flow gauges")
    runtime = await start_events(config, server)
    await start_consumers(runtime, event_handlers(), config.consumer_settings(), server.metrics)
    flows = config.flow_settings()
    gauges = FlowGauges(server.metrics.registry) if server.metrics is not None else None
    if gauges is not None:
        workers.append(
            FlowGaugeWorker(
                runtime.units,
                runtime.nc.jetstream(),
                gauges,
                flows,
                interval=config.flow_gauges_interval_seconds,
                exception_settings=config.exception_settings(),
                reconcile_checks=list(checks),
            )
        )
        workers[0].start()
    owners = OwnerClients(
        shipment_grpc.ShipmentServiceStub(shipment_channel),
        carrier_grpc.CarrierAdapterServiceStub(carrier_channel),
        # order's channel is its dead letters' (the same gRPC port).
        order_grpc.OrderServiceStub(letter_channels["order"]),
    )
    letters = DeadLetterClients(
        {
            service: dlq_grpc.DeadLetterServiceStub(channel)
            for service, channel in letter_channels.items()
        }
    )
    watchers.append(
        DeadLetterWatcher(
            runtime.units, runtime.nc.jetstream(), interval=config.dead_letter_poll_seconds
        )
    )
    watchers[0].start()
    reconcile_settings = config.reconcile_settings()
    # Every kit service with an outbox or consumers serves EventLedgerService on its gRPC port;
    # the tower's own inbox is not judged (checks/event_flow.py).
    ledger_channels = {**letter_channels, "carrier-adapter": carrier_channel}
    reconciler = Reconciler(
        runtime.units,
        checks,
        CheckContext(
            shipment=shipment_grpc.ShipmentServiceStub(shipment_channel),
            billing=billing_grpc.BillingServiceStub(letter_channels["billing"]),
            carrier=carrier_grpc.CarrierAdapterServiceStub(carrier_channel),
            inventory=inventory_grpc.InventoryServiceStub(letter_channels["inventory"]),
            order=order_grpc.OrderServiceStub(letter_channels["order"]),
            ledgers={
                service: ledger_grpc.EventLedgerServiceStub(channel)
                for service, channel in ledger_channels.items()
            },
            event_flow=config.event_flow_settings(),
            stale_tracking=config.stale_tracking_settings(),
            reservations_grace_seconds=config.reconcile_reservations_grace_seconds,
            labels_grace_seconds=config.reconcile_labels_grace_seconds,
            order_totals_grace_seconds=config.reconcile_order_totals_grace_seconds,
        ),
        reconcile_settings,
        on_run=gauges.count_run if gauges is not None else None,
    )
    if reconcile_settings.enabled:
        schedulers.append(ReconcileScheduler(reconciler, poll=config.reconcile_poll_seconds))
        schedulers[0].start()
    api = TowerApi(
        runtime.units,
        flows,
        bench=Workbench(runtime.units, owners, dead_letters=letters),
        exception_settings=config.exception_settings(),
        reconciler=reconciler,
    )
    add_to_server(server, api)


def main() -> NoReturn:
    run_service(TowerConfig, setup)


if __name__ == "__main__":
    main()
