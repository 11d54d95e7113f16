"""The directory ``clientdedupe run`` puts first on ``PYTHONPATH`` (see sitecustomize.py)."""
