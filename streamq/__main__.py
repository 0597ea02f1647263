"""``python -m streamq``: see :mod:`streamq.ops.cli`."""

from .ops.cli import main

main(prog_name="python -m streamq")
