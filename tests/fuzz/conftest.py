"""The fuzz suite: marked ``fuzz`` (``pytest -m "not fuzz"`` is the quick run), cases counted."""

from __future__ import annotations

from typing import Any

from fuzz.harness import CASES


def pytest_terminal_summary(terminalreporter: Any) -> None:
    cases = {k: n for k, n in CASES.items() if not k.startswith("known issue")}
    if cases:
        kinds = ", ".join(f"{kind} {count}" for kind, count in sorted(cases.items()))
        terminalreporter.write_line(f"fuzz: {sum(cases.values())} generated cases run ({kinds})")
    for kind, count in sorted(CASES.items()):
        if kind.startswith("known issue"):
            terminalreporter.write_line(f"fuzz: {kind}: {count} cases")
