"""``python -m falcon_mc``: the ``falcon-mc`` command line."""

from .cli import main

main()
