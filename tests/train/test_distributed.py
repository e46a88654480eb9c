"""Two CPU processes on the Gloo backend, launched with torchrun's environment variables: the
decoders start equal and stay equal, each process reads its own shard, only rank 0 writes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import torch

WORKER = Path(__file__).with_name("ddp_worker.py")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_two_processes_keep_the_decoders_identical(tmp_path: Path) -> None:
    port = free_port()
    processes = []
    for rank in range(2):
        env = {
            **os.environ,
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            "WORLD_SIZE": "2",
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
            "OMP_NUM_THREADS": "1",
        }
        processes.append(
            subprocess.Popen(
                [sys.executable, str(WORKER), str(tmp_path)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    for process in processes:
        try:
            output, _ = process.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            for other in processes:
                other.kill()
            raise
        assert process.returncode == 0, output

    results = [torch.load(tmp_path / f"result{rank}.pt", weights_only=True) for rank in range(2)]
    # Different seeds gave different initial decoders ...
    assert any(
        not torch.equal(results[0]["initial"][k], results[1]["initial"][k])
        for k in results[0]["initial"]
    )
    for stage in ("after_fit", "after_unrolled"):
        first, second = results[0][stage], results[1][stage]
        # ... but training keeps them identical across the processes,
        assert all(torch.equal(first[key], second[key]) for key in first), stage
    # and it did train (rank 0's starting point moved).
    assert any(
        not torch.equal(results[0]["after_fit"][k], results[0]["initial"][k])
        for k in results[0]["initial"]
    )
    # Each epoch is split into disjoint shards that cover the data set.
    read = [result["read"].reshape(2, 20) for result in results]
    for epoch in range(2):
        shard0, shard1 = set(read[0][epoch].tolist()), set(read[1][epoch].tolist())
        assert not shard0 & shard1 and shard0 | shard1 == set(range(40))
    assert results[0]["steps"] == results[1]["steps"] == 8  # 20 images per process, batches of 5
    # Only rank 0 writes.
    assert (tmp_path / "rank0" / "checkpoint.pt").is_file()
    assert len((tmp_path / "rank0" / "metrics.csv").read_text().splitlines()) == 1 + 8
    assert not (tmp_path / "rank1").exists() or not any((tmp_path / "rank1").iterdir())
