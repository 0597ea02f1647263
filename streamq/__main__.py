"""``python -m streamq``: see :mod:`streamq.cli`."""

from .cli import main

main(prog_name="python -m streamq")
