"""The end-of-run report for commands that convert many files (translate, stylize)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table


@dataclass
class Summary:
    """Which files were converted, skipped (output already there) or failed (with why)."""

    converted: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """1 when any file failed, so scripts notice; 0 otherwise."""
        return 1 if self.failed else 0

    def print(self, console: Console | None = None, title: str = "Summary") -> None:
        console = console or Console(stderr=True)
        table = Table(title=title, show_header=False)
        table.add_row("converted", str(len(self.converted)))
        table.add_row("skipped (output exists; --overwrite to redo)", str(len(self.skipped)))
        table.add_row("failed", f"[red]{len(self.failed)}[/]" if self.failed else "0")
        console.print(table)
        for path, why in self.failed:
            console.print(f"[red]failed:[/] {path}: {why}")
