"""Tests marked ``cuda`` run only where CUDA is available (benchmarks/gpu_check.sh runs them)."""

from __future__ import annotations

import pytest
import torch


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA: torch.cuda.is_available() is False here")
    for item in items:
        if item.get_closest_marker("cuda") is not None:
            item.add_marker(skip)
