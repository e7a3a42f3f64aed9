"""The end-of-run report for commands that convert many files (translate, stylize)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text


@dataclass
class Summary:
    """Which files were converted, skipped (output already there) or failed (with why).

    ``stopped`` says why a run ended before trying every file (a full or read-only disk), and
    ``not_done`` how many files it left.
    """

    converted: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    stopped: str | None = None
    not_done: int = 0

    @property
    def exit_code(self) -> int:
        """2 when the run stopped early, 1 when any file failed, so scripts notice; 0 otherwise."""
        return 2 if self.stopped else 1 if self.failed else 0

    def print(self, console: Console | None = None, title: str = "Summary") -> None:
        # Paths and messages are printed as Text, never as markup: a file named "[bold]x.jpg" stays itself.
        console = console or Console(stderr=True)
        table = Table(title=title, show_header=False)
        table.add_row("converted", str(len(self.converted)))
        table.add_row("skipped (output exists; --overwrite to redo)", str(len(self.skipped)))
        table.add_row("failed", Text(str(len(self.failed)), style="red" if self.failed else ""))
        if self.stopped:
            table.add_row("not done (stopped early)", Text(str(self.not_done), style="red"))
        console.print(table)
        for path, why in self.failed:
            console.print(Text.assemble(("failed:", "red"), f" {path}: {why}"))
        if self.stopped:
            console.print(Text.assemble(("stopped:", "bold red"), f" {self.stopped}"))
