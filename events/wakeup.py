"""Wake the event log's consumers when events commit: one connection LISTENs on `jobqueue_events`
(notified by a trigger on the event table) and sets each subscriber's threading.Event. Consumers still
poll, slowly, as a fallback: a notification can be missed while this connection reconnects, and an
event held back behind an older open transaction becomes visible without a new one."""

from __future__ import annotations

import logging
import threading

import psycopg
from django.db import connections

logger = logging.getLogger(__name__)

CHANNEL = "jobqueue_events"
RECONNECT_DELAY_S = 1.0
WAIT_SLICE_S = 1.0  # how often the listener looks at `stop`


class EventWakeup(threading.Thread):
    def __init__(self, stop: threading.Event, subscribers: list[threading.Event]) -> None:
        super().__init__(name="event-wakeup", daemon=True)
        self.stop, self.subscribers = stop, subscribers

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self._listen()
            except psycopg.Error as exc:
                logger.warning("listening for events failed (%s); reconnecting", exc)
                self._wake_all()  # something may have been missed meanwhile
                self.stop.wait(RECONNECT_DELAY_S)

    def _listen(self) -> None:
        params = {
            k: v
            for k, v in connections["default"].get_connection_params().items()
            if k in {"dbname", "user", "password", "host", "port", "sslmode"}
        }
        with psycopg.connect(**params, autocommit=True) as connection:
            connection.execute(f"LISTEN {CHANNEL}")
            self._wake_all()
            while not self.stop.is_set():
                for _ in connection.notifies(timeout=WAIT_SLICE_S, stop_after=1):
                    self._wake_all()

    def _wake_all(self) -> None:
        for subscriber in self.subscribers:
            subscriber.set()
