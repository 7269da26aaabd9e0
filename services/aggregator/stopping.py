"""Stopping is always quick: SIGTERM ends the aggregator within `STOP_DEADLINE_S`, in any state.

faust's shutdown (``App._stop_consumer``) waits, unbounded, until every record handed to the
agent is acked (``Consumer.wait_empty``), and only then stops the agent. A batch being retried
(PostgreSQL gone, a lock held) is never acked, so SIGTERM used to wait for ever. Two bounds:

* `LedgerApp` waits for the batch in flight at most `STOP_WAIT_EMPTY_S` when the app is
  stopping (a rebalance still waits for it in full: the partition must not move mid-batch);
  after that the process ends at once, as a crash would (the transaction rolls back, no
  offset is committed to Kafka), so the records are delivered again to the partition's next
  owner; a graceful shutdown past that point let faust commit offsets beyond the abandoned
  batch, which the cluster leader-kill test caught as acknowledged events never counted;
* `LedgerWorker` arms a watchdog on SIGTERM/SIGINT that ends the process at
  `STOP_DEADLINE_S` whatever still hangs (a broker that does not answer the final commit, a
  pool that does not close). That is a crash, and a crash at any instant is safe here: the
  offsets that count are the ones PostgreSQL committed with the rows, and records at or below
  them are skipped when redelivered, so nothing is applied twice or skipped.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from typing import Any

import faust

from services.aggregator.take import ByteBoundedQueue

log = logging.getLogger("opsledger.aggregator")

#: How long a stopping app waits for the batch in flight to commit and be acked.
STOP_WAIT_EMPTY_S = 4.0
#: When the process ends after SIGTERM/SIGINT, at the latest.
STOP_DEADLINE_S = 8.0
#: Exit status of a stop the watchdog had to finish (the orchestrator sees it was not clean).
FORCED_EXIT_STATUS = 70


class LedgerApp(faust.App):
    """faust's app: the wait for unacked records bounded when stopping, the stream buffer in
    bytes (`take.ByteBoundedQueue`)."""

    def __init__(self, *args: Any, buffer_max_bytes: int, **kwargs: Any) -> None:
        self.buffer_max_bytes = buffer_max_bytes
        super().__init__(*args, **kwargs)

    def FlowControlQueue(  # noqa: N802 - faust's name
        self, maxsize: int | None = None, *, clear_on_resume: bool = False
    ) -> ByteBoundedQueue:
        return ByteBoundedQueue(
            maxsize=maxsize,
            flow_control=self.flow_control,
            clear_on_resume=clear_on_resume,
            max_bytes=self.buffer_max_bytes,
        )

    #: Set by `LedgerWorker` on SIGTERM/SIGINT (faust's own state does not tell a shutdown's
    #: wait from a rebalance's).
    stopping = False

    async def _consumer_wait_empty(self, consumer: Any, logger: Any) -> None:
        if not self.stopping:  # a rebalance: the batch in flight finishes first
            await super()._consumer_wait_empty(consumer, logger)
            return
        # Not wait_for: faust's wait loop does not end promptly when cancelled, and wait_for
        # would wait for it to finish; the task is cancelled and left to wind down.
        waiting = asyncio.ensure_future(super()._consumer_wait_empty(consumer, logger))
        done, _ = await asyncio.wait({waiting}, timeout=STOP_WAIT_EMPTY_S)
        if not done:
            waiting.cancel()
            # End here, as a crash would: going on with faust's graceful shutdown lets it commit
            # Kafka offsets past the abandoned batch (its streams ack what they were handed when
            # they are torn down), and the partition's next owner would then start after records
            # that were never applied. A crash is safe: offsets live in PostgreSQL.
            log.error(
                "stopping: the batch in flight did not commit within %.0f s; exiting now without"
                " committing offsets (not acked: it is applied by the partition's next owner)",
                STOP_WAIT_EMPTY_S,
            )
            logging.shutdown()
            os._exit(FORCED_EXIT_STATUS)


def _force_exit() -> None:
    log.error("stopping took longer than %.0f s: exiting now", STOP_DEADLINE_S)
    logging.shutdown()
    os._exit(FORCED_EXIT_STATUS)


class LedgerWorker(faust.Worker):
    """faust's worker, with a deadline on stopping."""

    _watchdog: threading.Timer | None = None

    def _arm_watchdog(self) -> None:
        if isinstance(self.app, LedgerApp):
            self.app.stopping = True
        if self._watchdog is None:
            # A thread, not a task: it must fire even if the event loop itself is stuck.
            self._watchdog = threading.Timer(STOP_DEADLINE_S, _force_exit)
            self._watchdog.daemon = True
            self._watchdog.start()

    def _on_sigterm(self) -> None:
        self._arm_watchdog()
        super()._on_sigterm()

    def _on_sigint(self) -> None:
        self._arm_watchdog()
        super()._on_sigint()
