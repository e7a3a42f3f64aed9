"""One torchrun worker running ``cyclegan train``, instrumented for the distributed tests.

    python -m torch.distributed.run --nproc-per-node 2 tests/ddp_worker.py OUT_DIR train ...

Besides training as usual, each rank writes ``OUT_DIR/rank<R>.json`` (every file or folder it created,
wrote, renamed or removed below ``--checkpoints-dir``, seen through Python's audit hooks) and
``OUT_DIR/rank<R>.pt`` (its generator weights when training ended). With ``CYCLEGAN_TEST_SIGINT=R:S``
rank R sends itself SIGINT after its step S: a Ctrl-C that reaches one rank only.
"""

import json
import os
import signal
import sys
from pathlib import Path

import torch

from cyclegan import train as training
from cyclegan.cli import app

out_dir, args = Path(sys.argv[1]), sys.argv[2:]
rank = int(os.environ["RANK"])
watched = str(Path(args[args.index("--checkpoints-dir") + 1]).resolve())
writes: list[str] = []


def audit(event: str, event_args: tuple) -> None:
    if event == "open":
        path, mode, flags = event_args
        writing = any(c in mode for c in "wax+") if isinstance(mode, str) else flags & (os.O_WRONLY | os.O_RDWR)
        if not writing:
            return
    elif event not in ("os.mkdir", "os.rename", "os.remove", "os.rmdir"):
        return
    path = event_args[0]
    if isinstance(path, (str, bytes, os.PathLike)) and os.path.abspath(os.fsdecode(path)).startswith(watched):
        writes.append(f"{event} {os.fsdecode(path)}")


trainers: list[training.Trainer] = []
signal_rank, signal_step = map(int, os.environ.get("CYCLEGAN_TEST_SIGINT", "-1:-1").split(":"))


class RecordedTrainer(training.Trainer):
    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.steps_done = 0
        trainers.append(self)

    def step(self, *a):
        losses = super().step(*a)
        self.steps_done += 1
        if rank == signal_rank and self.steps_done == signal_step:
            os.kill(os.getpid(), signal.SIGINT)
        return losses


training.Trainer = RecordedTrainer
sys.addaudithook(audit)
try:
    app(args, prog_name="cyclegan")
finally:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"rank{rank}.json").write_text(json.dumps(writes))
    if trainers:
        nets = trainers[0].nets
        torch.save({"G_AB": nets.G_AB.state_dict(), "G_BA": nets.G_BA.state_dict()}, out_dir / f"rank{rank}.pt")
