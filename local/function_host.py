"""Drives the registered functions from their own bindings, as the Functions host would.

`func start` cannot run here (Core Tools download from a CDN), so this reads each function's
trigger and bindings from `app.get_functions()` and:
- fires timer triggers when their NCRONTAB schedule (resolved from `%SETTING%`) comes due on a
  simulated clock;
- feeds queue triggers from Azurite in batches of host.json's `batchSize`, base64-decoding as
  the trigger does, passing `dequeue_count`; on failure makes the message visible again and,
  past `maxDequeueCount`, moves it to `<queue>-poison` as the host does;
- sends what a function set on its queue output bindings (base64, as the host writes them).
Messages sent with a visibility delay (throttling back-off) are held until the simulated clock
reaches their time, because Azurite's visibility timeouts run on the wall clock.
"""

from __future__ import annotations

import base64
import contextlib
import inspect
import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from azure.core.exceptions import ResourceExistsError
from azure.functions.decorators.function_app import Function
from azure.functions.queue import QueueMessage
from azure.storage.queue import QueueServiceClient, TextBase64EncodePolicy

from shared.schedules import NCronTab


class Out:
    """The object a function receives for a queue output binding."""

    def __init__(self) -> None:
        self.value: Any = None

    def set(self, value: Any) -> None:
        self.value = value

    def get(self) -> Any:
        return self.value


class TimerStub:
    past_due = False


@dataclass
class Delayed:
    due: datetime
    queue: str
    body: str


@dataclass
class HostStats:
    invocations: dict[str, int] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)
    poisoned_by_host: int = 0
    #: CPU seconds spent inside function bodies (the app's share of the worker's CPU; the
    #: queue polling and output sends around them are the Functions host's work in Azure).
    function_cpu_s: float = 0.0


class LocalHost:
    def __init__(
        self,
        functions: tuple[Function, ...],
        settings: Mapping[str, str],
        queues: QueueServiceClient,
        host_json: Path,
        clock: Callable[[], datetime],
    ) -> None:
        self._functions = functions
        self._settings = settings
        self._queues = queues
        self._clock = clock
        config = json.loads(host_json.read_text())["extensions"]["queues"]
        self.batch_size = int(config["batchSize"])
        self.max_dequeue = int(config["maxDequeueCount"])
        self.delayed: list[Delayed] = []
        self.stats = HostStats()
        self._next_fire: dict[str, datetime] = {}
        self._schedules: dict[str, NCronTab] = {}
        for fn in functions:
            trigger = fn.get_trigger()
            if trigger.type == "timerTrigger":
                self._schedules[fn.get_function_name()] = NCronTab.parse(self._resolve(trigger.schedule))

    def _resolve(self, value: str) -> str:
        match = re.fullmatch(r"%(\w+)%", value)
        return self._settings[match.group(1)] if match else value

    def queue_names(self) -> set[str]:
        names = set()
        for fn in self._functions:
            for binding in fn.get_bindings():
                if binding.type in ("queue", "queueTrigger"):
                    names.add(binding.queue_name)
        return names

    def create_queues(self) -> None:
        for name in self.queue_names():
            for queue in (name, f"{name}-poison"):
                with contextlib.suppress(ResourceExistsError):
                    self._queues.create_queue(queue)

    def send(self, queue: str, body: str, visibility_timeout_s: int = 0) -> None:
        """The app's QueueSender while running locally (see module docstring on delays)."""
        if visibility_timeout_s:
            self.delayed.append(Delayed(self._clock() + timedelta(seconds=visibility_timeout_s), queue, body))
            return
        self._client(queue).send_message(body)

    def _client(self, queue: str) -> Any:
        return self._queues.get_queue_client(queue, message_encode_policy=TextBase64EncodePolicy())

    def release_delayed(self) -> int:
        now = self._clock()
        ready = [d for d in self.delayed if d.due <= now]
        self.delayed = [d for d in self.delayed if d.due > now]
        for d in ready:
            self._client(d.queue).send_message(d.body)
        return len(ready)

    def next_timer_time(self, after: datetime) -> datetime:
        for name, schedule in self._schedules.items():
            if name not in self._next_fire:
                self._next_fire[name] = schedule.next_after(after)
        return min(self._next_fire.values())

    def fire_due_timers(self) -> list[str]:
        now = self._clock()
        fired = []
        for fn in self._functions:
            name = fn.get_function_name()
            if name in self._schedules and self._next_fire.get(name, now + timedelta(days=1)) <= now:
                self._invoke(fn, TimerStub())
                self._next_fire[name] = self._schedules[name].next_after(now)
                fired.append(name)
        return fired

    def drain_queues(self, max_rounds: int = 10_000) -> int:
        """Run queue triggers until every trigger queue is empty. Returns messages handled."""
        handled = 0
        for _ in range(max_rounds):
            progressed = 0
            for fn in self._functions:
                trigger = fn.get_trigger()
                if trigger.type == "queueTrigger":
                    progressed += self._run_batch(fn, trigger.queue_name)
            handled += progressed
            if not progressed:
                return handled
        raise RuntimeError("queues did not drain")

    def _run_batch(self, fn: Function, queue: str) -> int:
        client = self._queues.get_queue_client(queue)
        batch = client.receive_messages(messages_per_page=self.batch_size, max_messages=self.batch_size)
        count = 0
        for raw in batch:
            count += 1
            body = base64.b64decode(raw.content)
            message = QueueMessage(
                id=raw.id, body=body, dequeue_count=raw.dequeue_count, pop_receipt=raw.pop_receipt
            )
            if self._invoke(fn, message):
                client.delete_message(raw)
            elif raw.dequeue_count >= self.max_dequeue:
                self._client(f"{queue}-poison").send_message(body.decode("utf-8", errors="replace"))
                client.delete_message(raw)
                self.stats.poisoned_by_host += 1
            else:
                client.update_message(raw, visibility_timeout=0)
        return count

    def _invoke(self, fn: Function, trigger_value: object) -> bool:
        name = fn.get_function_name()
        user_fn = fn.get_user_function()
        trigger_name = fn.get_trigger().name
        outputs = {b.name: (b.queue_name, Out()) for b in fn.get_bindings() if b.type == "queue"}
        kwargs: dict[str, object] = {trigger_name: trigger_value}
        kwargs.update({arg: out for arg, (_, out) in outputs.items()})
        missing = set(inspect.signature(user_fn).parameters) - set(kwargs)
        if missing:
            raise RuntimeError(f"{name}: no binding for {sorted(missing)}")
        self.stats.invocations[name] = self.stats.invocations.get(name, 0) + 1
        started = time.thread_time()
        try:
            user_fn(**kwargs)
        except Exception:
            self.stats.failures[name] = self.stats.failures.get(name, 0) + 1
            return False
        finally:
            self.stats.function_cpu_s += time.thread_time() - started
        for queue, out in outputs.values():
            values = out.get()
            for value in values if isinstance(values, list) else ([values] if values else []):
                self._client(queue).send_message(value)
        return True
