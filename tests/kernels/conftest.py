"""Fixtures for the kernel tests: the built-in library, and no user configuration."""

from __future__ import annotations

import pytest

from imgkernel.kernels import load_library


@pytest.fixture(scope="module")
def lib():
    return load_library(include_user=False)


@pytest.fixture(autouse=True)
def _no_user_config(tmp_path_factory, monkeypatch):
    # Keep the developer's own ~/.config out of every test.
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("xdg-empty")))
