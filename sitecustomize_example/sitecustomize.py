"""Activates clientdedupe at interpreter start when ``CLIENTDEDUPE`` is on.

Copy this file into site-packages, put this folder on ``PYTHONPATH``, or append these
two lines to an existing sitecustomize.py:

    try: import clientdedupe.startup as _clientdedupe; _clientdedupe.activate()
    except Exception: pass

``activate()`` does nothing unless ``CLIENTDEDUPE=1`` (or true/yes/on) is set, imports no
SDK, and never raises; a missing clientdedupe is ignored here.
"""

try:
    import clientdedupe.startup as _clientdedupe

    _clientdedupe.activate()
except Exception:  # a missing or broken clientdedupe must never stop the interpreter
    pass
