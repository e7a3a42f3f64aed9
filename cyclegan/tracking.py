"""Run tracking: the Weights & Biases run. The only module importing wandb."""

from __future__ import annotations

import logging
import netrc
import os
from pathlib import Path
from urllib.parse import urlparse

from .errors import UserError

log = logging.getLogger(__name__)

WANDB_MODES = ("auto", "online", "offline", "disabled")


def wandb_logged_in() -> bool:
    """True when W&B credentials are configured (API key in the environment or in ~/.netrc)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname or "api.wandb.ai"
    try:
        return netrc.netrc().authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def resolve_wandb_mode(mode: str) -> str:
    if mode not in WANDB_MODES:
        raise UserError(f"--wandb-mode {mode}: choose one of {', '.join(WANDB_MODES)}")
    if mode == "auto":
        return "online" if wandb_logged_in() else "offline"
    return mode


class Tracker:
    """A W&B run kept inside the run folder (``<run>/wandb``), so a run is one folder.

    With ``mode='disabled'`` every call is a no-op and wandb is never imported.
    """

    def __init__(self, run_dir: Path, mode: str, project: str, name: str, config: dict,
                 run_id: str | None = None):
        self.run = None
        self.mode = resolve_wandb_mode(mode)
        if self.mode == "disabled":
            return
        import wandb  # seconds to import: only when a run is tracked

        run_dir.mkdir(parents=True, exist_ok=True)
        try:
            self.run = wandb.init(
                project=project, name=name, dir=str(run_dir), config=config, mode=self.mode,
                id=run_id, resume="allow" if run_id else None,
            )
        except Exception as e:  # a tracking outage must not cost a training run
            log.warning("W&B could not start (%s); continuing without it", e)
            self.run = None
            return
        if self.mode == "offline":
            log.info("W&B run saved offline in %s (upload later with `wandb sync`)", Path(self.run.dir).parent)

    @property
    def run_id(self) -> str | None:
        return self.run.id if self.run else None

    def log(self, metrics: dict, step: int) -> None:
        if self.run:
            self.run.log(metrics, step=step)

    def log_image(self, key: str, path: Path, step: int, caption: str = "") -> None:
        if self.run:
            import wandb  # imported already by __init__: only a name here

            self.run.log({key: wandb.Image(str(path), caption=caption)}, step=step)

    def log_table(self, key: str, columns: list[str], rows: list[list], step: int | None = None) -> None:
        if self.run:
            import wandb  # imported already by __init__: only a name here

            self.run.log({key: wandb.Table(columns=columns, data=rows)}, step=step)

    def finish(self) -> None:
        if self.run:
            self.run.finish()
            self.run = None
