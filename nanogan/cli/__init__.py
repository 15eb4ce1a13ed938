"""Subcommands of the ``nanogan`` command line beyond ``sample``, ``info`` and ``evaluate``:
``train``, ``resume`` and ``bench`` (each a thin layer over library calls)."""

from __future__ import annotations

import argparse

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``train``, ``resume`` and ``bench`` to the ``nanogan`` parser's subcommands."""
    from . import bench, train

    train.add_train_parser(sub)
    train.add_resume_parser(sub)
    bench.add_parser(sub)
