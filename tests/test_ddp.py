"""Two-process CPU DDP (gloo): sharded data per rank, equal step counts, CoLES negatives from every rank.

Each test starts two copies of tests/ddp_worker.py the way torchrun would (MASTER_ADDR/PORT, RANK,
LOCAL_RANK, WORLD_SIZE), on a free port, with a hard timeout so a hung collective fails the test.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from eventseq.data.hashing import hash_split

WORKER = Path(__file__).with_name("ddp_worker.py")
SOURCE = Path(__file__).resolve().parents[1] / "src"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _launch(mode: str, sharded: Path, output: Path, timeout: float = 150) -> list[dict]:
    output.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    processes, logs = [], []
    for rank in range(2):
        env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "WORLD_SIZE": "2",
               "NODE_RANK": "0", "RANK": str(rank), "LOCAL_RANK": str(rank), "OMP_NUM_THREADS": "1",
               "PYTHONPATH": os.pathsep.join([str(SOURCE), os.environ.get("PYTHONPATH", "")])}
        log = open(output / f"rank{rank}.log", "w")  # files, not pipes: a full pipe would block a rank
        logs.append(log)
        processes.append(subprocess.Popen([sys.executable, str(WORKER), mode, str(sharded), str(output)],
                                          env=env, stdout=log, stderr=subprocess.STDOUT))
    try:
        for process in processes:
            process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        for process in processes:
            process.kill()
        tail = (output / "rank0.log").read_text()[-3000:]
        pytest.fail(f"DDP ranks still running after {timeout} s (a hang?): {tail}")
    finally:
        for log in logs:
            log.close()
    for rank, process in enumerate(processes):
        assert process.returncode == 0, (output / f"rank{rank}.log").read_text()[-5000:]
    return [json.loads((output / f"rank{rank}.json").read_text()) for rank in range(2)]


def test_ddp_ranks_see_disjoint_shards_and_gather_coles_negatives(sharded_dir, tmp_path):
    ranks = _launch("fit", sharded_dir, tmp_path)
    assert [r["rank"] for r in ranks] == [0, 1] and ranks[0]["world"] == 2

    # (a) each epoch: disjoint entities, together every training entity, the same number of batches
    table = pl.read_parquet(sharded_dir / "data.parquet")
    train_ids = set(table["entity_id"].to_numpy()[hash_split(table["entity_id"].to_numpy(), 0.1) == 0].tolist())
    for epoch in ("0", "1"):
        first, second = (set(r["ids"][epoch]) for r in ranks)
        assert not first & second
        assert first | second == train_ids
        assert ranks[0]["batches"][epoch] == ranks[1]["batches"][epoch] == ranks[0]["length"] == ranks[1]["length"]

    # (b) the CoLES loss over views gathered from both ranks is the one-process loss over both ranks'
    # views, on every rank; so is the gradient after DDP's averaging
    for loss in ("margin", "infonce"):
        for rank in ranks:
            assert rank[f"{loss}_gathered"] == pytest.approx([rank[f"{loss}_single"]] * 2, rel=1e-5)
            assert rank[f"{loss}_grad_max_diff"] <= 1e-5 * rank[f"{loss}_grad_max"]
            assert abs(rank[f"{loss}_local_only"] - rank[f"{loss}_single"]) > 1e-3  # gathering changed it


def test_ddp_pretrain_from_shards_saves_one_model(sharded_dir, tmp_path):
    from eventseq.saved import load_model

    ranks = _launch("pretrain", sharded_dir, tmp_path)
    run = tmp_path / "run"
    assert load_model(run / "model").kind == "coles"
    metrics = json.loads((run / "metrics.json").read_text())
    assert ranks[0]["metrics"]["val_recall_at_2"] == pytest.approx(metrics["val_recall_at_2"])
    assert np.isfinite(metrics["val_loss"]) and metrics["epochs"] == 2
    assert json.loads((run / "splits.json").read_text())["entities"]["train"] > 0
    assert not list(run.rglob("*.tmp"))
