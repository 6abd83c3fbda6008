"""One engine call: its cancel signal, the steps it ran, and whether it may share the engine.

A tab runs each request as a `Call` in a worker thread (`running(call)` makes it the thread's
current call). Every long loop of the engine (denoising, inversion, null-text optimisation,
fine-tuning) calls `step()` before each step: that counts the step on the current call and
raises `Cancelled` once the call's cancel signal is set, so a cancel stops the work within one
step and the loop's `finally` blocks leave the engine as it was. Outside a call (tests, scripts)
`step()` does nothing.

Calls that change shared weights (attach a LoRA to the cached UNet, tune its layers, toggle its
gradients) hold the engine exclusively; every other call shares it (`engine_lock`). Attention
state is per call already (core.attention), so sharing calls cannot see each other's edits.
"""
from __future__ import annotations

import collections
import contextlib
import contextvars
import threading
import time
from dataclasses import dataclass, field


class Cancelled(Exception):
    """The call's cancel signal was set; its loop stopped before the next step."""


@dataclass
class Call:
    name: str  # what runs, e.g. "tabs.p2p.generate"
    steps: int = 0  # engine steps started (denoising, inversion, optimisation, training)
    steps_at_cancel: int | None = None  # `steps` when the cancel signal was set
    started: float = field(default_factory=time.monotonic)
    ended: float = float("inf")  # time.monotonic() when it ended
    cancel_signal: threading.Event = field(default_factory=threading.Event, repr=False)
    finished: threading.Event = field(default_factory=threading.Event, repr=False)

    def cancel(self) -> None:
        if not self.cancel_signal.is_set():
            self.steps_at_cancel = self.steps
            self.cancel_signal.set()

    @property
    def cancelled(self) -> bool:
        return self.cancel_signal.is_set()

    def step(self) -> None:
        if self.cancel_signal.is_set():
            raise Cancelled(f"{self.name} was cancelled after {self.steps} steps")
        self.steps += 1


_current: contextvars.ContextVar[Call | None] = contextvars.ContextVar("studio_call", default=None)
# the latest calls, newest last: what a test or the log reads back (steps run, steps at the cancel)
history: collections.deque[Call] = collections.deque(maxlen=256)


def current() -> Call | None:
    return _current.get()


def step() -> None:
    """A loop of the engine is about to run one step: count it, or stop if the call was cancelled."""
    call = _current.get()
    if call is not None:
        call.step()


class SharedOrExclusive:
    """A readers-writer lock: any number of sharing holders, or one exclusive holder. A thread that holds
    it exclusively may also take it shared (an exclusive call runs shared engine code inside)."""

    def __init__(self):
        self._condition = threading.Condition()
        self._sharing = 0
        self._owner: int | None = None
        self._depth = 0

    @contextlib.contextmanager
    def shared(self):
        me = threading.get_ident()
        with self._condition:
            if self._owner == me:
                self._depth += 1
            else:
                self._condition.wait_for(lambda: self._owner is None)
                self._sharing += 1
        try:
            yield
        finally:
            with self._condition:
                if self._owner == me:
                    self._depth -= 1
                else:
                    self._sharing -= 1
                    self._condition.notify_all()

    @contextlib.contextmanager
    def exclusive(self):
        me = threading.get_ident()
        with self._condition:
            if self._owner == me:
                self._depth += 1
            else:
                self._condition.wait_for(lambda: self._owner is None and self._sharing == 0)
                self._owner, self._depth = me, 1
        try:
            yield
        finally:
            with self._condition:
                self._depth -= 1
                if self._depth == 0:
                    self._owner = None
                    self._condition.notify_all()


engine_lock = SharedOrExclusive()


@contextlib.contextmanager
def running(call: Call, exclusive: bool = False):
    """Run `call` in this thread: it is the current call, it holds the engine (shared or exclusively),
    and it is in `history`. Its `finished` event is set however it ends."""
    history.append(call)
    try:
        with engine_lock.exclusive() if exclusive else engine_lock.shared():
            call.started = time.monotonic()  # when it holds the engine, not when it began to wait
            token = _current.set(call)
            try:
                yield call
            finally:
                _current.reset(token)
    finally:
        call.ended = time.monotonic()
        call.finished.set()
