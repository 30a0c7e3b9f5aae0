"""``python -m fervid``: the command line, where the ``fervid`` script is not installed (a borrowed GPU machine)."""

from fervid.cli import app

app(prog_name="fervid")
