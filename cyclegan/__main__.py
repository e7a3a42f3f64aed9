"""``python -m cyclegan`` (and so ``torchrun -m cyclegan``)."""

from .cli import app

app(prog_name="cyclegan")
