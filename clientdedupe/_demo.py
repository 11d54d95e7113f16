"""``clientdedupe demo`` (placeholder)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``clientdedupe demo``."""
    parser.add_argument("--agents", type=int, default=100, help="number of agents (default 100)")
    parser.add_argument("--tls", action="store_true", help="serve the loopback API over TLS")


def main(args: argparse.Namespace) -> int:
    """Run the demo; returns the exit code."""
    raise NotImplementedError
