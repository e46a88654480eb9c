"""Shared by the training tests: one intra-op thread while a test runs.

The models here are tiny, so a second OpenMP thread buys nothing, and on a busy machine two
threads waiting on each other make a step an order of magnitude slower. The previous setting is
restored after each test.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def single_thread() -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
