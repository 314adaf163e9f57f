"""What every handler shares: the settings, the API and Prometheus clients, the recorder.

Set once by ``run`` before Kopf starts; handlers read it through ``current()``.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from dataclasses import dataclass

import kopf

from rollguard.control import health
from rollguard.control.lifecycle import Lifecycle
from rollguard.control.notifications import LAPSE, Notifier
from rollguard.control.receivers import ReceiversSource
from rollguard.control.settings import Settings
from rollguard.control.steps import Memory
from rollguard.control.telemetry import (
    GC_SECONDS,
    LOOP_LAG_SECONDS,
    AuditLog,
    Recorder,
)
from rollguard.kube.client import Cluster, connect
from rollguard.signals.prometheus import MonitoringError, PrometheusSource

log = logging.getLogger("rollguard")


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    cluster: Cluster
    source: PrometheusSource
    recorder: Recorder
    lifecycle: Lifecycle


_runtime: Runtime | None = None


def current() -> Runtime:
    if _runtime is None:
        raise kopf.PermanentError("rollguard is not configured; start it with `rollguard run`")
    return _runtime


def now() -> float:
    """Whole Unix seconds: decisions record them exactly, so replays use the same time."""
    return float(int(time.time()))


def configure(settings: Settings, cluster: Cluster | None = None) -> Runtime:
    global _runtime  # noqa: PLW0603 - one runtime per process, set before Kopf starts
    cluster = cluster or Cluster(connect(kubeconfig=settings.kubeconfig))
    recorder = Recorder(cluster=cluster, audit=AuditLog(settings.audit_log))
    memory = Memory()
    notifier = Notifier(
        cluster=cluster,
        receivers=ReceiversSource(settings.receivers),
        serialised=memory.serialised,
        # The decision daemons hand pending messages over every decision poll.
        lapse=max(LAPSE, 5 * settings.decision_poll),
    )
    _runtime = Runtime(
        settings=settings,
        cluster=cluster,
        source=PrometheusSource(url=settings.prometheus_url, timeout=settings.query_timeout),
        recorder=recorder,
        lifecycle=Lifecycle(
            cluster=cluster,
            recorder=recorder,
            keep_decisions=settings.keep_decisions,
            scrape_interval=settings.scrape_interval,
            memory=memory,
            notifier=notifier,
        ),
    )
    return _runtime


def start_notifications() -> None:
    """Start delivering messages; the receivers file's first reading says whom the operator
    can notify (a line in the log)."""
    runtime = current()
    notifier = runtime.lifecycle.notifier
    if notifier is None:
        return
    if not runtime.settings.receivers:
        log.info("No receivers file (--receivers): nobody is notified")
    notifier.receivers.current()
    notifier.start()


def check_prometheus() -> None:
    """Say at start-up whether Prometheus answers: the operator runs either way (every policy
    reports MetricsUnavailable until it does), but the first thing to check is in the log."""
    runtime = current()
    end = now()
    try:
        runtime.source.query_range(query="vector(1)", start=end - 1, end=end, step=1)
    except MonitoringError as err:
        log.warning(
            "Prometheus at %s does not answer (%s): policies report MetricsUnavailable until "
            "it does; check --prometheus-url",
            runtime.settings.prometheus_url,
            err,
        )
    else:
        log.info("Prometheus at %s answers", runtime.settings.prometheus_url)


SUMMARY_EVERY = 5.0  # seconds between looks at what is watched; a line only when it changed


async def _summarise() -> None:
    """Say what the operator watches: soon after start (each policy's loop registers on its
    first run) and again whenever it changes."""
    said = ""
    while True:
        await asyncio.sleep(SUMMARY_EVERY)
        text = health.summary(dict(health.WATCHED))
        if text != said:
            log.info("%s", text)
            said = text


LAG_TICK = 0.1  # seconds between the loop-lag monitor's timers
_background: set[asyncio.Task[None]] = set()  # strong references: the loop keeps weak ones


async def _watch_loop_lag() -> None:
    """Measure how late the event loop runs a timer, for rollguard_event_loop_lag_seconds:
    blocking work on the loop (instead of in a worker thread) shows up here."""
    while True:
        start = time.monotonic()
        await asyncio.sleep(LAG_TICK)
        LOOP_LAG_SECONDS.observe(max(time.monotonic() - start - LAG_TICK, 0.0))


_gc_started: dict[int, float] = {}
HEAP_SETTLE = 90.0  # seconds from startup to the heap freeze: imports done, caches filled


async def freeze_settled_heap() -> None:
    """Once the operator has settled (modules loaded, clients built, the watch caches filled
    and the first cycles run), collect once and freeze what survives: a full collection then
    scans only objects created later, so its pause stays short at fleet scale instead of
    growing with every cached object. Frozen objects are still freed by reference counting
    when dropped; only a reference cycle among them would outlive its use, which is why the
    freeze happens once, after a collection, and not periodically."""
    await asyncio.sleep(HEAP_SETTLE)
    started = time.perf_counter()
    gc.collect()
    gc.freeze()
    log.info(
        "Froze the settled heap: %d objects out of the collector's scans (%.0f ms)",
        gc.get_freeze_count(),
        (time.perf_counter() - started) * 1000,
    )


def _time_gc(phase: str, info: dict[str, int]) -> None:
    """gc.callbacks: each collection's pause, for rollguard_gc_pause_seconds."""
    generation = info.get("generation", 0)
    if phase == "start":
        _gc_started[generation] = time.perf_counter()
    elif generation in _gc_started:
        pause = time.perf_counter() - _gc_started.pop(generation)
        GC_SECONDS.labels(generation=str(generation)).observe(pause)


@kopf.on.startup()
async def _startup(settings: kopf.OperatorSettings, **_: object) -> None:
    runtime = current()
    # rollguard posts its own Events, each with a distinct reason; Kopf's generic ones would
    # only add noise.
    settings.posting.enabled = False
    settings.peering.name = runtime.settings.peering
    settings.peering.priority = runtime.settings.priority
    settings.peering.standalone = runtime.settings.standalone
    settings.watching.server_timeout = 300
    settings.networking.request_timeout = 30
    settings.execution.max_workers = 8
    start_notifications()
    reader = health.status_reader(runtime.cluster)
    await asyncio.to_thread(health.serve, runtime.settings.metrics_port, reader=reader)
    _background.add(asyncio.create_task(_watch_loop_lag(), name="rollguard-loop-lag"))
    _background.add(asyncio.create_task(_summarise(), name="rollguard-summary"))
    _background.add(asyncio.create_task(freeze_settled_heap(), name="rollguard-heap-freeze"))
    if _time_gc not in gc.callbacks:
        gc.callbacks.append(_time_gc)
    log.info(
        "Started rollguard %s (Prometheus %s, namespaces %s)",
        runtime.settings.operator_version,
        runtime.settings.prometheus_url,
        ", ".join(runtime.settings.namespaces) or "all",
    )


@kopf.on.cleanup()
async def _stop_notifications(**_: object) -> None:
    """Let an attempt in flight finish (bounded); what is left stays Pending on its
    decision, for the replica that acts next."""
    notifier = current().lifecycle.notifier
    if notifier is not None:
        await asyncio.to_thread(notifier.stop, 5.0)


@kopf.on.probe(id="rollguard")
def _probe(**_: object) -> str:
    return current().settings.operator_version
