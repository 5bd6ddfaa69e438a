"""The nn tests' helper modules: ``torch_nets`` needs torch, which the ``test`` extra lacks."""

from __future__ import annotations

import importlib.util


def _has_torch() -> bool:
    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):  # a blocked or broken torch
        return False


# --doctest-modules imports every module under tests/: skip the torch-only helper without torch
collect_ignore = [] if _has_torch() else ["torch_nets.py"]
