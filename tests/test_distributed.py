"""train_segmentation.py under torchrun: two CPU processes on gloo train one U-Net, the main process alone
writes, and a resumed run with the same number of processes continues exactly."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import train_segmentation
from tests.training_run import command, make_inputs
from utils.distributed import rank_seed
from utils.errors import InputError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return make_inputs(tmp_path_factory.mktemp("inputs"))


def torchrun(argv: list[str], processes: int = 2) -> subprocess.CompletedProcess:
    launcher = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={processes}",
    ]
    result = subprocess.run(
        [*launcher, "train_segmentation.py", *argv], cwd=REPO, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.mark.slow
def test_two_processes_train_one_model_and_write_once(inputs, tmp_path):
    out = tmp_path / "run"
    result = torchrun(command(inputs, out, 2))
    assert result.stdout.count("Folder") == 0 and result.stdout.count("F_max") == 1  # one score table
    assert json.loads((out / "args.json").read_text())["world_size"] == 2
    assert len(list((out / "tensorboard").glob("events.out.tfevents.*"))) == 1
    checkpoint = torch.load(out / "checkpoint.pth", weights_only=True)
    assert checkpoint["step"] == 2 and len(checkpoint["rng"]) == 2
    assert not torch.equal(checkpoint["rng"][0], checkpoint["rng"][1])
    assert set(json.loads((out / "score.json").read_text())) == {"synthetic", "ds"}


@pytest.mark.slow
def test_resumed_run_with_the_same_processes_continues_exactly(inputs, tmp_path):
    out, straight = tmp_path / "run", tmp_path / "straight"
    torchrun(command(inputs, out, 2))
    resumed = torchrun(command(inputs, out, 4))
    assert "Resuming from" in resumed.stdout
    torchrun(command(inputs, straight, 4))
    ours = torch.load(out / "segmentation.pth", weights_only=True)
    reference = torch.load(straight / "segmentation.pth", weights_only=True)
    for key, value in reference.items():
        assert torch.equal(ours[key], value), key
    with pytest.raises(InputError, match="world_size: 2 -> 1"):
        train_segmentation.main(command(inputs, out, 6))


def test_each_process_has_its_own_latent_stream_and_rank_0_keeps_the_seed():
    assert rank_seed(2, 0) == 2
    assert len({rank_seed(2, rank) for rank in range(8)}) == 8
    assert rank_seed(2, 1) != rank_seed(3, 1)
