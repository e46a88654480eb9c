"""Two CPU processes on the Gloo backend, launched as torchrun launches them: the decoders start
equal, train exactly as one process on the global batch, each process reads its own shard, only
rank 0 writes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from ddp_worker import (
    RecordingDataset,
    build_pnet,
    decoders,
    fit_trainer,
    unrolled_images,
    unrolled_trainer,
)

WORKER = Path(__file__).with_name("ddp_worker.py")


def test_two_processes_train_as_one_process_on_the_global_batch(tmp_path: Path) -> None:
    # The test is the launcher: it owns the rendezvous store on a port the OS picked when the
    # store bound it, and the workers only connect (torchrun's agent store), so no other process
    # can take the port between choosing and binding it.
    store = dist.TCPStore("127.0.0.1", 0, world_size=2, is_master=True, wait_for_workers=False)
    processes = []
    for rank in range(2):
        env = {
            **os.environ,
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            "WORLD_SIZE": "2",
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(store.port),
            "TORCHELASTIC_USE_AGENT_STORE": "True",
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
    # ... and equal to one process training rank 0's starting decoders on the global batch:
    # each step's 2 x 5 images are the single process's 10 (the shards interleave one seeded
    # order), and DDP averages the ranks' gradients of their mean losses.
    reference = build_pnet(decoder_seed=100)
    assert all(torch.equal(v, results[0]["initial"][k]) for k, v in decoders(reference).items())
    single = fit_trainer(reference)
    assert single.world_size == 1
    single.fit(RecordingDataset(), epochs=2, batch_size=10)
    for key, value in decoders(reference).items():
        torch.testing.assert_close(results[0]["after_fit"][key], value, rtol=0, atol=1e-6)
    unrolled = unrolled_trainer(reference)
    for _ in range(2):
        unrolled.step(torch.cat([unrolled_images(0), unrolled_images(1)]))
    for key, value in decoders(reference).items():
        torch.testing.assert_close(results[0]["after_unrolled"][key], value, rtol=0, atol=1e-6)
    # And it did train (rank 0's starting point moved).
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
