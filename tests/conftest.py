"""Fixtures for the whole suite; plain helpers shared by several folders are in testkit.py.

Tests marked ``cuda`` run only where CUDA is available (benchmarks/gpu_check.sh runs them).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA: torch.cuda.is_available() is False here")
    for item in items:
        if item.get_closest_marker("cuda") is not None:
            item.add_marker(skip)


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread() -> Iterator[None]:
    """One intra-op thread for the whole run, restored at the end.

    The models in the tests are tiny: a second OpenMP thread buys nothing, and on a shared
    two-core machine threads waiting for each other made steps up to 20 times slower while the
    other core was busy. Session scope, so session fixtures (trained networks) get it as well.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
