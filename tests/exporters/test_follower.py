"""StoreFollower, BusFeed and ExporterSet with real stores and a real receiver on loopback."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from _exporter_helpers import Receiver, event, free_port, wait_for

from vibekit_telemetry.config import load_config
from vibekit_telemetry.errors import ValidationError
from vibekit_telemetry.events import TelemetryEvent, now_ms
from vibekit_telemetry.exporters import Backoff, BusFeed, CircuitBreaker, ExporterSet, StoreFollower, WebhookExporter
from vibekit_telemetry.exporters.manager import DeliveryOptions
from vibekit_telemetry.store.base import BaseStorageProvider, BatchResult


def fast(exporter: Any, store: Any, **options: Any) -> StoreFollower:
    """A follower that retries quickly, so tests spend no time in backoff."""
    options.setdefault("backoff", Backoff(0.01, 0.05))
    options.setdefault("poll_interval_s", 0.05)
    return StoreFollower(exporter, store, **options)


def test_the_follower_delivers_what_was_committed_and_saves_its_cursor(
        make_store: Callable[[], Any], receiver: Receiver) -> None:
    store = make_store()
    follower = fast(WebhookExporter(receiver.url, batch_size=7, name="hook"), store, start_at="beginning")
    before = [event() for _ in range(10)]
    store.store_batch(before)
    follower.start()
    after = [event() for _ in range(15)]
    store.store_batch(after)
    follower.notify()
    assert wait_for(lambda: len(receiver.received()) == 25)
    assert receiver.received() == [e.event_id for e in before + after]  # commit order, each once
    assert max(len(b["events"]) for b in receiver.bodies) == 7
    assert follower.shutdown(timeout=5)
    status = follower.status()
    assert status["cursor"] == status["committed"] == store.committed_position() == store.load_cursor("hook")
    assert (status["lag"], status["delivered"], status["failures"], status["breaker"]) == (0, 25, 0, "closed")
    assert status["mode"] == "follow" and status["name"] == "hook" and not status["running"]


def test_a_new_exporter_starts_at_the_end_unless_told_otherwise(
        make_store: Callable[[], Any], receiver: Receiver) -> None:
    store = make_store()
    store.store_batch([event() for _ in range(3)])
    follower = fast(WebhookExporter(receiver.url, name="late"), store)
    follower.start()  # pins the position now: only events committed from here on go out
    new = [event() for _ in range(2)]
    store.store_batch(new)
    follower.notify()
    assert wait_for(lambda: len(receiver.received()) == 2)
    assert follower.shutdown(timeout=5)
    assert receiver.received() == [e.event_id for e in new]


def test_a_failing_batch_is_kept_and_retried_until_the_destination_takes_it(
        make_store: Callable[[], Any], receiver: Receiver) -> None:
    store = make_store()
    receiver.status = 503
    follower = fast(WebhookExporter(receiver.url, name="retry"), store, start_at="beginning",
                    breaker=CircuitBreaker(failure_threshold=1000))
    batch = [event() for _ in range(4)]
    store.store_batch(batch)
    follower.start()
    assert wait_for(lambda: follower.failures >= 5)
    assert receiver.received() == [] and store.load_cursor("retry") == 0
    assert "503" in str(follower.status()["last_error"])
    receiver.status = 200
    assert wait_for(lambda: len(receiver.received()) == 4)
    assert follower.shutdown(timeout=5)
    assert receiver.received() == [e.event_id for e in batch] and follower.delivered == 4


def test_a_refused_batch_is_skipped_counted_and_the_rest_goes_out(
        make_store: Callable[[], Any], receiver: Receiver) -> None:
    store = make_store()
    receiver.status = 422
    follower = fast(WebhookExporter(receiver.url, name="poison"), store, start_at="beginning")
    store.store_batch([event(), event()])
    follower.start()
    assert wait_for(lambda: follower.poisoned == 2)
    receiver.status = 200
    good = [event()]
    store.store_batch(good)
    follower.notify()
    assert wait_for(lambda: len(receiver.received()) == 1)
    assert follower.shutdown(timeout=5)
    assert receiver.received() == [good[0].event_id]
    status = follower.status()
    assert status["poisoned"] == 2 and status["lag"] == 0 and "422" in str(status["last_error"])


def test_shutdown_with_a_dead_destination_returns_and_the_rest_goes_out_on_the_next_start(
        make_store: Callable[[], Any]) -> None:
    store = make_store()
    port = free_port()
    follower = fast(WebhookExporter(f"http://127.0.0.1:{port}/hook", name="dead", timeout_s=1), store,
                    start_at="beginning")
    batch = [event() for _ in range(5)]
    store.store_batch(batch)
    follower.start()
    assert wait_for(lambda: follower.failures >= 1)
    started = time.monotonic()
    assert follower.shutdown(timeout=0.5) is False
    assert time.monotonic() - started < 5  # bounded: a generous margin over 0.5 s on a busy machine
    assert follower.status()["lag"] == 5 and store.load_cursor("dead") == 0
    receiver = Receiver(port)
    receiver.start()
    try:
        again = fast(WebhookExporter(receiver.url, name="dead"), make_store())
        again.start()
        assert wait_for(lambda: len(receiver.received()) == 5)
        assert again.shutdown(timeout=5)
        assert receiver.received() == [e.event_id for e in batch]
    finally:
        receiver.stop()


class PausedRead:
    """Holds a worker inside an empty read, so the test can commit and begin shutdown meanwhile."""

    def __init__(self) -> None:
        self.reading = threading.Event()
        self.proceed = threading.Event()
        self.paused = False

    def hold(self) -> None:
        """Called right after the worker's first read found nothing: pause there once."""
        if not self.paused:
            self.paused = True
            self.reading.set()
            assert self.proceed.wait(10)


class StaleFirstRead:
    """A change log whose first committed_position() answers what it saw, then waits (see PausedRead)."""

    def __init__(self, store: Any, pause: PausedRead) -> None:
        self.store, self.pause = store, pause

    def committed_position(self) -> int:
        """The store's position, read now; the first call then pauses before answering."""
        position = int(self.store.committed_position())
        self.pause.hold()
        return position

    def read_committed(self, after: int, limit: int) -> list[tuple[int, TelemetryEvent]]:
        """The store's committed events."""
        return list(self.store.read_committed(after, limit))

    def position_before(self, timestamp_ms: int) -> int:
        """The store's."""
        return int(self.store.position_before(timestamp_ms))

    def load_cursor(self, name: str) -> int | None:
        """The store's cursor."""
        return self.store.load_cursor(name)  # type: ignore[no-any-return]

    def save_cursor(self, name: str, position: int) -> None:
        """Save in the store."""
        self.store.save_cursor(name, position)

    def cursors(self) -> dict[str, int]:
        """The store's cursors."""
        return dict(self.store.cursors())


def test_a_commit_and_shutdown_during_an_empty_read_are_still_delivered(
        make_store: Callable[[], Any], receiver: Receiver) -> None:
    # The race behind a flaky docs example: the worker read "nothing", the host then committed and
    # called shutdown(), and the worker took the stop it saw after its read as "caught up".
    store = make_store()
    pause = PausedRead()
    follower = fast(WebhookExporter(receiver.url, name="race"), StaleFirstRead(store, pause),
                    start_at="beginning", poll_interval_s=30)
    store.save_cursor("race", 0)  # so start() reads only the cursor: the worker's read is the first
    follower.start()
    assert pause.reading.wait(10)
    batch = [event() for _ in range(3)]
    store.store_batch(batch)
    follower.notify()
    follower.begin_shutdown(5)
    pause.proceed.set()
    assert follower.wait_shutdown(time.monotonic() + 10)
    assert receiver.received() == [e.event_id for e in batch]
    store.shutdown()  # the host closes its store after the exporters: not an error of this destination
    assert follower.status()["last_error"] is None


def test_an_offer_and_shutdown_during_an_empty_read_are_still_delivered(receiver: Receiver) -> None:
    # The same race in bus mode would lose the events: nothing else holds them.
    pause = PausedRead()

    class Feed(BusFeed):
        def _next_batch(self) -> list[Any]:
            batch = super()._next_batch()
            if not batch:
                pause.hold()
            return batch

    feed = Feed(WebhookExporter(receiver.url, name="bus-race"), backoff=Backoff(0.01, 0.05), poll_interval_s=30)
    feed.start()
    assert pause.reading.wait(10)
    batch = [event() for _ in range(3)]
    assert feed.offer(batch) == 3
    feed.begin_shutdown(5)
    pause.proceed.set()
    assert feed.wait_shutdown(time.monotonic() + 10)
    assert receiver.received() == [e.event_id for e in batch]
    assert feed.status()["lag"] == 0


class BusyAtFirst(StaleFirstRead):
    """A change log that cannot be read (busy, down) until the test says so."""

    def __init__(self, store: Any) -> None:
        super().__init__(store, PausedRead())
        self.pause.paused = True  # no pausing: only the outage
        self.up = threading.Event()

    def load_cursor(self, name: str) -> int | None:
        """Fails while the store is "down"."""
        if not self.up.is_set():
            raise ConnectionError("the store is busy")
        return super().load_cursor(name)


def test_a_new_exporter_that_could_not_read_its_position_at_start_skips_nothing_tracked_since(
        make_store: Callable[[], Any], receiver: Receiver) -> None:
    # start_at "end", but the store was busy when it started: by the time the position can be read, the
    # host may have committed events of its own. They must go out; what was there before must not.
    store = make_store()
    store.store_batch([event(at=now_ms() - 60_000) for _ in range(4)])  # before the exporter started
    log = BusyAtFirst(store)
    follower = fast(WebhookExporter(receiver.url, name="late-pin"), log)
    follower.start()
    assert follower.cursor is None and "busy" in str(follower.last_error)
    ours = [event() for _ in range(3)]
    store.store_batch(ours)
    log.up.set()
    follower.notify()
    assert wait_for(lambda: len(receiver.received()) == 3)
    assert follower.shutdown(timeout=5)
    assert receiver.received() == [e.event_id for e in ours]


def test_deleting_the_newest_rows_while_following_misses_nothing(
        make_store: Callable[[], Any], receiver: Receiver) -> None:
    store = make_store()
    follower = fast(WebhookExporter(receiver.url, name="clean"), store, start_at="beginning")
    follower.start()
    store.store_batch([event("start", sid="newest"), event("stream", sid="newest")])
    follower.notify()
    assert wait_for(lambda: len(receiver.received()) == 2)
    assert wait_for(lambda: follower.status()["lag"] == 0)
    store.clean(session_ids=["newest"])  # SQLite: the next rows take these rowids again
    fresh = [event() for _ in range(3)]
    store.store_batch(fresh)
    follower.notify()
    assert wait_for(lambda: len(receiver.received()) == 5)
    assert follower.shutdown(timeout=5)
    assert receiver.received()[2:] == [e.event_id for e in fresh]


class WriteOnly(BaseStorageProvider):
    """A custom write-only provider: no change log, so exporters are fed from the bus."""

    name = "write-only"

    def store_batch(self, events: Sequence[TelemetryEvent]) -> BatchResult:
        """Accept everything."""
        return BatchResult(stored=len(events))


def test_without_a_change_log_exporters_are_fed_through_a_bounded_queue(receiver: Receiver) -> None:
    exporters = ExporterSet(WriteOnly(), [WebhookExporter(receiver.url, name="bus")])
    feed = exporters.workers[0]
    assert isinstance(feed, BusFeed)
    exporters.start()
    batch = [event() for _ in range(5)]
    exporters.on_committed(batch)
    assert wait_for(lambda: len(receiver.received()) == 5)
    assert exporters.shutdown(timeout=5)
    assert receiver.received() == [e.event_id for e in batch]
    status = exporters.status()[0]
    assert (status["mode"], status["delivered"], status["dropped"], status["lag"]) == ("bus", 5, 0, 0)


def test_a_full_queue_drops_new_events_and_counts_them() -> None:
    dead = WebhookExporter(f"http://127.0.0.1:{free_port()}/hook", name="full")
    feed = BusFeed(dead, capacity=10, backoff=Backoff(0.01, 0.05))
    assert feed.offer([event() for _ in range(8)]) == 8
    assert feed.offer([event() for _ in range(5)]) == 2
    status = feed.status()
    assert (status["dropped"], status["lag"], status["capacity"]) == (3, 10, 10)
    assert feed.shutdown(timeout=0) is False  # never started: nothing was delivered
    assert feed.offer([event()]) == 0 and feed.dropped == 4


def test_exporter_set_from_config_follows_the_primary_store(tmp_path: Path, receiver: Receiver) -> None:
    from vibekit_telemetry.store.factory import build_providers

    config = load_config(storage=[
        {"type": "sqlite", "options": {"path": str(tmp_path / "t.db")}},
        {"type": "webhook", "options": {"url": receiver.url, "batch_size": 2, "retry_base_s": 0.01,
                                        "retry_max_s": 0.1, "start_at": "beginning", "poll_interval_s": 0.05}}])
    store = build_providers(config)[0]
    store.initialize()
    try:
        exporters = ExporterSet.from_config(config, store)
        assert len(exporters) == 1 and isinstance(exporters.workers[0], StoreFollower)
        assert exporters.workers[0].batch_size == 2
        exporters.start()
        batch = [event() for _ in range(5)]
        store.store_batch(batch)
        exporters.notify()
        assert wait_for(lambda: len(receiver.received()) == 5)
        assert exporters.shutdown(timeout=5)
        assert receiver.received() == [e.event_id for e in batch]
        assert store.cursors() == {f"webhook:http://127.0.0.1:{receiver.port}/hook": store.committed_position()}
    finally:
        store.shutdown()


@pytest.mark.parametrize(("options", "field"), [
    ({"url": "http://127.0.0.1:9/x", "retry_base_s": -1}, "storage[1].options.retry_base_s"),
    ({"url": "http://127.0.0.1:9/x", "failure_threshold": 0}, "storage[1].options.failure_threshold"),
    ({"url": "http://127.0.0.1:9/x", "start_at": "middle"}, "storage[1].options.start_at"),
    ({"url": "http://127.0.0.1:9/x", "retry_base_s": 5, "retry_max_s": 1}, "storage[1].options.retry_max_s"),
])
def test_bad_delivery_options_name_the_field(options: dict[str, Any], field: str) -> None:
    config = load_config(storage=[{"type": "memory"}, {"type": "webhook", "options": options}])
    with pytest.raises(ValidationError) as info:
        ExporterSet.from_config(config, None)
    assert info.value.field == field


def test_two_exporters_with_one_name_are_refused() -> None:
    config = load_config(storage=[{"type": "memory"},
                                  {"type": "webhook", "options": {"url": "http://127.0.0.1:9/x"}},
                                  {"type": "webhook", "options": {"url": "http://127.0.0.1:9/x"}}])
    with pytest.raises(ValidationError) as info:
        ExporterSet.from_config(config, None)
    assert info.value.field == "storage[2].options.name"


def test_delivery_options_are_split_from_the_destinations_own() -> None:
    delivery, rest = DeliveryOptions.split({"url": "u", "open_timeout_s": 3, "queue_size": 5}, "x")
    assert rest == {"url": "u"} and delivery.open_timeout_s == 3 and delivery.queue_size == 5
