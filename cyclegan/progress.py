"""The one progress bar of the toolkit: training, translation, style transfer, downloads, metrics.

On a terminal it is a live rich bar. When stderr is not a terminal (a log file, CI, a batch job) a live
bar would print nothing useful, so the same calls write a plain log line every ``LOG_EVERY`` seconds and
one when a task completes. Descriptions and fields are shown as text, never as rich markup, so a file
named ``[bold]x.jpg`` is printed as it is.

This module imports no torch: the download code uses it too.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.text import Text

log = logging.getLogger(__name__)

LOG_EVERY = 30.0  # seconds between plain log lines when stderr is not a terminal


class RateColumn(ProgressColumn):
    """Items per second, named by their unit ("12.5 images/s"); a task's ``unit`` field overrides it."""

    def __init__(self, unit: str):
        super().__init__()
        self.unit = unit

    def render(self, task) -> Text:
        rate = f"{task.speed:.1f}" if task.speed else "…"
        return Text(f"{rate} {task.fields.get('unit', self.unit)}/s", style="progress.data.speed")


class _Bar(Progress):
    """A rich ``Progress`` that, without a terminal, logs a line now and then instead of drawing."""

    def __init__(self, *columns, fields: tuple[str, ...], unit: str, log_lines: bool, **kwargs):
        super().__init__(*columns, **kwargs)
        self._fields, self._unit, self._log_lines = fields, unit, log_lines
        self._logged: dict[TaskID, float | None] = {}

    def update(self, task_id: TaskID, **kwargs) -> None:
        super().update(task_id, **kwargs)
        self._maybe_log(task_id)

    def advance(self, task_id: TaskID, advance: float = 1) -> None:
        super().advance(task_id, advance)
        self._maybe_log(task_id)

    def _maybe_log(self, task_id: TaskID) -> None:
        task = self._tasks[task_id]
        for listener in _listeners:
            listener(task.description, task.completed, task.total)
        if not self._log_lines:
            return
        now = time.monotonic()
        last = self._logged.setdefault(task_id, now)  # the first line comes after LOG_EVERY seconds
        if last is None or (now - last < LOG_EVERY and not task.finished):
            return
        self._logged[task_id] = None if task.finished else now  # completion is logged once
        done = f"{task.completed:g}/{task.total:g}" if task.total else f"{task.completed:g}"
        extra = " ".join(str(task.fields[f]) for f in self._fields if task.fields.get(f))
        log.info("%s: %s %s %s", task.description, done, task.fields.get("unit", self._unit), extra)


_listeners: list[Callable[[str, float, float | None], None]] = []


@contextmanager
def listening(listener: Callable[[str, float, float | None], None]) -> Iterator[None]:
    """Call ``listener(description, done, total)`` at every step of every progress bar while inside: the
    web app shows a model's download, a folder's progress, in the page."""
    _listeners.append(listener)
    try:
        yield
    finally:
        _listeners.remove(listener)


def progress_bar(*fields: str, unit: str = "images", transfer: bool = False, disable: bool = False,
                 transient: bool = False, log_lines: bool = True, console: Console | None = None) -> Progress:
    """A progress bar: description, bar, done/total, rate, elapsed and remaining time.

    ``fields`` name free-text task fields shown after the bar (``add_task(..., info="")`` then
    ``update(task, info=...)``); ``unit`` names what is counted (a task may say ``unit=`` itself).
    ``transfer`` shows bytes and bytes/s, for downloads. ``disable`` hides it entirely (another process
    reports, or the user asked for quiet); ``log_lines=False`` keeps it silent without a terminal too,
    for callers that write their own log lines.
    """
    console = console or Console(stderr=True)
    counts: list[ProgressColumn] = (
        [TaskProgressColumn(), DownloadColumn(), TransferSpeedColumn()] if transfer
        else [MofNCompleteColumn(), RateColumn(unit)]
    )
    columns = [
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        *counts,
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        *(TextColumn(f"{{task.fields[{f}]}}", markup=False) for f in fields),
    ]
    log_lines = log_lines and not disable and not console.is_terminal
    disable = disable or not console.is_terminal
    return _Bar(*columns, fields=fields, unit="bytes" if transfer else unit, log_lines=log_lines,
                console=console, transient=transient, disable=disable)


class TrainingProgress:
    """The progress bar on a terminal, and a log line every 30 s elsewhere (logs, CI, batch jobs)."""

    def __init__(self, description: str, total: int, done: int, enabled: bool):
        self.enabled = enabled
        # silent without a terminal: ``report`` writes its own lines, with the losses
        self.bar = progress_bar("info", unit="steps", disable=not enabled, log_lines=False)
        self.task = self.bar.add_task(description, total=total, completed=done, rate="", info="")
        self.t_last, self.step_last, self.t_report = time.perf_counter(), done, 0.0

    def __enter__(self) -> TrainingProgress:
        self.bar.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.bar.__exit__(*exc)

    def advance(self) -> None:
        self.bar.update(self.task, advance=1)

    def describe(self, description: str) -> None:
        self.bar.update(self.task, description=description)

    def report(self, step: int, total: int, info: str) -> float:
        """Show ``info`` with the speed since the last report; returns that speed (steps per second)."""
        now = time.perf_counter()
        rate = (step - self.step_last) / max(now - self.t_last, 1e-9)
        self.t_last, self.step_last = now, step
        self.bar.update(self.task, rate=f"{rate:.2f} it/s", info=info)
        if self.enabled and not self.bar.console.is_terminal and now - self.t_report >= 30:
            self.t_report = now
            log.info("step %d/%d  %.2f it/s  %s", step, total, rate, info)
        return rate
