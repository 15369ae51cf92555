"""The monitoring event stream on NATS JetStream: its layout, its partitions, and publishing to it.

Why partitions
    The stream engine keeps state *per account* and needs an account's events in order, but it
    never looks at two accounts at once. So the accounts can be split between workers, as long as
    every event of one account goes to the same worker, in the order it was published. JetStream
    keeps one total order (the stream sequence); we add a subject per partition,
    ``<prefix>.<p>`` with ``p = partition_of(account_id, P)``, and a worker subscribes only to the
    subjects of its partitions. Worker ``i`` of ``N`` owns the partitions ``p`` with
    ``p % N == i`` (:func:`owned_partitions`), so ``P`` must be at least ``N``; choose ``P`` once,
    generously (16, 64): it is the most workers the stream can ever be split between, and changing
    it moves accounts between partitions (a full rebuild of the state from the stream).

Why a *stable* hash
    Python's ``hash()`` of a string is salted per process (``PYTHONHASHSEED``): the publisher and
    each worker would disagree about an account's partition. :func:`partition_of` uses BLAKE2b,
    identical on every machine, in every language, forever.

Publishing
    One message per event: the event's canonical JSON (:meth:`Event.to_json`) as the payload and
    ``Nats-Msg-Id: <event_id>`` as a header, so JetStream drops a re-published event within the
    stream's duplicate window (2 minutes unless ``duplicate_window`` / ``events publish
    --duplicate-window`` says otherwise when the stream is created) — a publisher that crashes and
    re-sends its file does not even store it twice. Outside the window the stream stores the copy,
    and the workers catch it: each partition remembers the event ids it counted for days of event
    time and skips a re-sent one (:class:`freezedesk.monitoring.worker.EventIdMemory`). The window
    costs the server memory per message id, so it stays short; the workers' memory is the one that
    must span outages. Every message also carries
    ``Freezedesk-Partitions: P``; a worker configured with a different ``P`` refuses to run instead of
    silently routing accounts to the wrong state.

Order
    Events are published in the order given, and the stream preserves it per subject. The engine
    expects each account's events in time order (a late event is processed "at the account's latest
    time"); publish files sorted by time, as ``freezedesk synth`` writes them.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

import orjson
from nats.js import JetStreamContext
from nats.js.api import PubAck, StorageType, StreamConfig
from nats.js.errors import NotFoundError

from freezedesk.monitoring.events import Event

DEFAULT_STREAM: Final = "FREEZEDESK_EVENTS"
DEFAULT_SUBJECT_PREFIX: Final = "freezedesk.events"
DEFAULT_PARTITIONS: Final = 16
#: Header every published message carries: the partition count the publisher hashed with.
PARTITIONS_HEADER: Final = "Freezedesk-Partitions"
#: JetStream's per-message dedup header; we set it to the event id.
MSG_ID_HEADER: Final = "Nats-Msg-Id"
#: How long JetStream remembers message ids to drop re-published events (seconds).
DEFAULT_DUPLICATE_WINDOW: Final = 120.0


def partition_of(account_id: str, partitions: int) -> int:
    """The partition of an account: BLAKE2b-64 of its UTF-8 id, modulo ``partitions``.

    >>> partition_of("acct-1", 16) == partition_of("acct-1", 16)
    True
    """
    digest = hashlib.blake2b(account_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % partitions


def owned_partitions(worker: int, workers: int, partitions: int) -> list[int]:
    """The partitions worker ``worker`` (0-based) of ``workers`` consumes: ``p % workers == worker``.

    >>> owned_partitions(1, 4, 10)
    [1, 5, 9]
    """
    if workers < 1 or not 0 <= worker < workers:
        raise ValueError(f"worker index {worker} is not in 0..{workers - 1}")
    if partitions < workers:
        raise ValueError(f"{workers} workers need at least {workers} partitions, the stream has {partitions}")
    return [p for p in range(partitions) if p % workers == worker]


@dataclass(frozen=True, slots=True)
class StreamLayout:
    """Where events live: stream name, subject prefix and partition count (shared by all parties)."""

    stream: str = DEFAULT_STREAM
    prefix: str = DEFAULT_SUBJECT_PREFIX
    partitions: int = DEFAULT_PARTITIONS

    def __post_init__(self) -> None:
        if self.partitions < 1:
            raise ValueError("the partition count must be at least 1")

    def subject(self, partition: int) -> str:
        return f"{self.prefix}.{partition}"

    def subject_of(self, account_id: str) -> str:
        return self.subject(partition_of(account_id, self.partitions))


async def ensure_stream(js: JetStreamContext, layout: StreamLayout,
                        duplicate_window: float = DEFAULT_DUPLICATE_WINDOW) -> float:
    """Create the stream (file storage, subjects ``<prefix>.*``) unless it exists already.

    ``duplicate_window`` (seconds, > 0) is JetStream's dedup window by ``Nats-Msg-Id`` for a stream
    created here. An existing stream is left as it is (retention, limits and its window are an
    operator's decision), but it must capture our subjects. Returns the stream's duplicate window.
    """
    if not duplicate_window > 0:
        raise ValueError(f"the duplicate window must be a positive number of seconds, not {duplicate_window}")
    wanted = f"{layout.prefix}.*"
    try:
        info = await js.stream_info(layout.stream)
    except NotFoundError:
        info = await js.add_stream(StreamConfig(name=layout.stream, subjects=[wanted], storage=StorageType.FILE,
                                                duplicate_window=duplicate_window))
        return float(info.config.duplicate_window or duplicate_window)
    subjects = info.config.subjects or []
    if wanted not in subjects and f"{layout.prefix}.>" not in subjects:
        raise ValueError(f"stream {layout.stream} exists but does not capture {wanted} (its subjects: {subjects})")
    return float(info.config.duplicate_window or DEFAULT_DUPLICATE_WINDOW)


@dataclass(frozen=True, slots=True)
class PublishResult:
    """What JetStream said about each event, in input order."""

    published: int  # stored now
    duplicates: int  # dropped as a re-publish within the duplicate window
    sequences: list[int]  # the stream sequence of each event (the original one for a duplicate)


async def publish_events(js: JetStreamContext, layout: StreamLayout, events: Iterable[Event]) -> PublishResult:
    """Publish events in order, one message each, deduplicated by event id; wait for every ack.

    Publishes are pipelined (:meth:`JetStreamContext.publish_async`; the context's
    ``publish_async_max_pending``, 4000 by default, bounds the unacknowledged ones) but written to
    the connection one after another, so the stream order is the input order. Raises if JetStream
    refuses any message (the stream may then miss part of the input; publishing the same input
    again within the duplicate window fills it in without duplicates).
    """
    futures: list[asyncio.Future[PubAck]] = []
    partitions = str(layout.partitions)
    for event in events:
        headers = {MSG_ID_HEADER: event.event_id, PARTITIONS_HEADER: partitions}
        futures.append(await js.publish_async(layout.subject_of(event.account_id), orjson.dumps(event.to_json()),
                                              headers=headers, stream=layout.stream))
    acks = await asyncio.gather(*futures)
    duplicates = sum(1 for ack in acks if ack.duplicate)
    return PublishResult(len(acks) - duplicates, duplicates, [ack.seq for ack in acks])
