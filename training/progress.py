"""How long jobs report progress and learn that they were cancelled."""
from dataclasses import dataclass
from typing import Callable, Protocol


class Cancelled(Exception):
    """Raised inside a long job when its owner asked it to stop."""


class Reporter(Protocol):
    def __call__(self, *, stage: str, step: int, total: int, metrics: dict | None = None) -> None: ...


@dataclass
class Hooks:
    """Callbacks a caller hands to a long job.

    `report` receives progress (and per-step metrics when there are any); `should_stop`
    is polled between steps and makes the job raise Cancelled when it returns True.
    """

    report: Reporter | None = None
    should_stop: Callable[[], bool] | None = None

    def progress(self, stage: str, step: int, total: int, metrics: dict | None = None) -> None:
        if self.report is not None:
            self.report(stage=stage, step=step, total=total, metrics=metrics)

    def check(self) -> None:
        if self.should_stop is not None and self.should_stop():
            raise Cancelled("cancelled on request")


NO_HOOKS = Hooks()
