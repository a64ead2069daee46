"""Private pieces of the ``falcon-mc`` command line (the entry point is :mod:`falcon_mc.cli`)."""
