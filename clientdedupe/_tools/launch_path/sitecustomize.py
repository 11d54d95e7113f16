"""Loaded at interpreter start in the processes ``clientdedupe run`` launches.

It activates clientdedupe, then runs the user's own sitecustomize, if there is one
further down ``sys.path`` (``opentelemetry-instrument`` hides it, and its users
complained; ``ddtrace-run`` chains it, as this does).

Every Python process the command starts pays for this file, so it does as little as it
can: nothing at all about clientdedupe when ``CLIENTDEDUPE`` is unset in the child; the
user's sitecustomize is looked for with the path finder the interpreter has already
loaded, and ``importlib.util`` is imported only when there is one to run.

Nothing here may stop the interpreter from starting, and an interpreter that lacks
clientdedupe (the command may start another Python: ``python3.9``, a tool's own
virtualenv) starts quietly, as it would without the launcher; only a *broken*
clientdedupe says so, in one line. The syntax stays plain (no f-strings) so that any
Python that reads this file can at least parse it.
"""

import os
import sys


def _activate():
    if not os.environ.get("CLIENTDEDUPE", "").strip():
        return  # unset in this child (opted out): nothing to do, nothing to import
    try:
        from clientdedupe.startup import activate
    except ImportError as error:
        name = getattr(error, "name", None)
        if name == "clientdedupe" or (name is None and "clientdedupe" in str(error)):
            return  # not installed for this interpreter: start as without the launcher
        _say(error)
        return
    except Exception as error:  # a broken clientdedupe must not stop the program
        _say(error)
        return
    activate()  # never raises


def _say(error):
    sys.stderr.write("clientdedupe: not activated ({}: {})\n".format(type(error).__name__, error))


def _path_finder():
    for finder in sys.meta_path:
        if getattr(finder, "__name__", None) == "PathFinder":
            return finder
    import importlib.machinery

    return importlib.machinery.PathFinder


def _chain_to_the_users_sitecustomize():
    here = os.path.dirname(os.path.abspath(__file__))
    mine = [i for i, p in enumerate(sys.path) if os.path.abspath(p or os.curdir) == here]
    # Only what is further down the path: a start-up hook ahead of this one has run.
    further = sys.path[mine[-1] + 1 :] if mine else list(sys.path)
    # Off the path for good (as ddtrace does): another start-up hook that chains the
    # same way must not find this file again, or the two would call each other forever.
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    spec = _path_finder().find_spec("sitecustomize", further)
    if spec is None or spec.loader is None:
        return
    import importlib.util

    module = importlib.util.module_from_spec(spec)
    # From now on ``import sitecustomize`` is the user's module, as without us.
    sys.modules["sitecustomize"] = module
    spec.loader.exec_module(module)


_activate()
_chain_to_the_users_sitecustomize()
