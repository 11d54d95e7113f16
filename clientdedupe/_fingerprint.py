"""Short one-way fingerprints: how keys appear in stats and logs (SPEC §7).

A key holds argument values, API keys among them, so it is never shown; its fingerprint
is a keyed hash with a per-process random salt, so that even a guessable value cannot be
confirmed from a fingerprint seen in a log.
"""

from __future__ import annotations

import hashlib
import os

_SALT = os.urandom(16)


def fingerprint(key: object) -> str:
    """Eight hex digits identifying ``key`` within this process."""
    return hashlib.blake2b(repr(key).encode(), digest_size=4, key=_SALT).hexdigest()
