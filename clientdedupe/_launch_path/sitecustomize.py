"""Loaded at interpreter start in the processes ``clientdedupe run`` launches.

It activates clientdedupe, then runs the user's own sitecustomize, if there is one
further down ``sys.path`` (``opentelemetry-instrument`` hides it, and its users
complained; ``ddtrace-run`` chains it, as this does). Nothing here may stop the
interpreter from starting: failures are reported in one line on stderr.
"""


def _activate() -> None:
    try:
        from clientdedupe.startup import activate

        activate()
    except Exception as error:  # a broken clientdedupe must not stop the program
        import sys

        sys.stderr.write(f"clientdedupe: not activated ({type(error).__name__}: {error})\n")


def _chain_to_the_users_sitecustomize() -> None:
    import importlib.machinery
    import importlib.util
    import os
    import sys

    here = os.path.dirname(os.path.abspath(__file__))
    mine = [i for i, p in enumerate(sys.path) if os.path.abspath(p or os.curdir) == here]
    # Only what is further down the path: a start-up hook ahead of this one has run.
    further = sys.path[mine[-1] + 1 :] if mine else sys.path
    # Off the path for good (as ddtrace does): another start-up hook that chains the
    # same way must not find this file again, or the two would call each other forever.
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", list(further))
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    # From now on ``import sitecustomize`` is the user's module, as without us.
    sys.modules["sitecustomize"] = module
    spec.loader.exec_module(module)


_activate()
_chain_to_the_users_sitecustomize()
