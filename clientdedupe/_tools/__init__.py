"""The tools around clientdedupe, which never run on a construction: the ``clientdedupe``
command (``cli``), the launcher (``launcher``, and ``launch_path``, the sitecustomize it
puts first on ``PYTHONPATH``), ``doctor``, ``demo`` with its example program, and the
loopback ``stub_server`` the demo, the benchmarks and the tests talk to.

The modules one level up are what runs inside the user's process: ``install()`` and the
import hook at start-up, then the constructor, key, cache, ownership and per-loop pools
on every construction of a covered client.
"""
