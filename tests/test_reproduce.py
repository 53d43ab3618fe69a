"""reproduce.py: the rows and their commands, missing inputs named, the demo row over seeds, resuming."""

import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

import reproduce

REPOSITORY = Path(__file__).parent.parent
TINY = ["--n_steps", "20", "--batch_size", "16", "--test_samples_count", "16", "--steps_per_validation", "20"]
TINY += ["--steps_per_log", "10", "--steps_per_checkpoint_save", "10"]


def test_every_paper_row_has_its_three_figures_and_its_source():
    data = json.loads(reproduce.PAPER_RESULTS.read_text())
    assert list(reproduce.make_rows()) == [reproduce.DEMO_ROW, *data["rows"]]
    assert len(data["rows"]) == 12
    for row in data["rows"].values():
        assert all(0 < row[metric] < 1 for metric in reproduce.METRICS)
        assert row["table"] in data["tables"] and row["column"] and row["method"]
    assert data["rows"]["cub/e-bigbigan-noise"]["IoU"] == 0.710
    figures = {"F_max": 0.608, "IoU": 0.498, "accuracy": 0.878}
    assert data["rows"]["duts-te/bigbigan"] == {
        "table": "saliency",
        "column": "DUTS",
        "method": "BigBiGAN",
        **figures,
    }


def test_dry_run_prints_the_original_training_of_each_row_and_what_it_lacks(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "embeddings").mkdir()
    (tmp_path / "embeddings/BigBiGAN_CUB_train_z.npy").write_bytes(b"present")
    rows = ["ecssd/bigbigan", "cub/e-bigbigan-noise", "flowers/e-bigbigan"]
    reproduce.main(["--dry_run", "--rows", *rows, "--seeds", "2", "--out", "runs"])
    lines = capsys.readouterr().out.splitlines()
    commands = [line for line in lines if line.startswith("python ")]
    assert len(commands) == 6
    script = os.path.relpath(REPOSITORY / "train_segmentation.py")
    common = f"python {script} --faithful --gan_weights BigGAN/weights/BigBiGAN_x1.pth "
    common += "--bg_direction BigGAN/weights/bg_direction.pth"
    assert commands[0] == (
        f"{common} --z embeddings/BigBiGAN_ImageNet_z.npy --val_images_dirs datasets/ecssd/images "
        "--val_masks_dirs datasets/ecssd/masks --seed 2 --out runs/ecssd/bigbigan/seed_2"
    )
    assert commands[1].endswith("--seed 3 --out runs/ecssd/bigbigan/seed_3")
    assert " --z embeddings/BigBiGAN_CUB_train_z.npy --z_noise 0.2 " in commands[2]
    assert " --z embeddings/BigBiGAN_Flowers_train_z.npy --val_images_dirs" in commands[4]
    missing = [line.strip() for line in lines if line.startswith("  missing")]
    assert "missing BigGAN/weights/BigBiGAN_x1.pth: bash download_all.sh --only BigBiGAN_x1.pth" in missing
    flowers_z = "BigBiGAN_Flowers_train_z.npy"
    assert f"missing embeddings/{flowers_z}: bash download_all.sh --only {flowers_z}" in missing
    assert not any("BigBiGAN_CUB_train_z" in line for line in missing)  # present here
    assert sum("datasets/cub/images" in line for line in missing) == 1
    assert "missing datasets/cub/images: python prepare_datasets.py cub" in missing
    assert "missing datasets/flowers/masks: python prepare_datasets.py flowers" in missing
    assert not (tmp_path / "runs").exists()  # a dry run writes nothing


def test_rows_lacking_inputs_are_listed_with_their_fetch_commands(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(reproduce.InputError, match="1 of 1 rows lack inputs"):
        reproduce.main(["--rows", "dut-omron/e-bigbigan", "--out", "runs"])
    table = (tmp_path / "runs/table.md").read_text()
    assert "- dut-omron/e-bigbigan: embeddings/BigBiGAN_DUTS-TR_z.npy (bash download_all.sh --only " in table
    assert "- dut-omron/e-bigbigan: datasets/dut-omron/masks (python prepare_datasets.py dut-omron)" in table
    assert json.loads((tmp_path / "runs/table.json").read_text())["results"] == {}


def test_seed_summary_is_the_mean_and_sample_std():
    per_seed = {
        2: {"F_max": 0.5, "IoU": 0.4, "accuracy": 0.9},
        3: {"F_max": 0.7, "IoU": 0.6, "accuracy": 0.8},
    }
    result = reproduce.summary(per_seed)
    assert result["seeds"] == [2, 3]
    assert result["mean"]["IoU"] == pytest.approx(0.5)
    assert result["std"]["IoU"] == pytest.approx(statistics.stdev([0.4, 0.6]))
    assert reproduce.summary({2: per_seed[2]})["std"]["F_max"] is None
    assert reproduce.seeds(3) == [2, 3, 4]  # the first is the default seed


def command(out: Path, steps: str = "20", seeds: str = "2") -> list[str]:
    flags = [*TINY]
    flags[1] = steps
    reproduction = ["reproduce.py", "--rows", "demo/bigbigan", "--seeds", seeds, "--out", str(out)]
    return [sys.executable, *reproduction, "--", *flags]


@pytest.mark.slow
def test_the_demo_row_runs_each_seed_scores_it_and_skips_finished_runs(tmp_path):
    out = tmp_path / "reproduce"
    subprocess.run(command(out), cwd=REPOSITORY, check=True, capture_output=True, text=True)
    table = json.loads((out / "table.json").read_text())
    result = table["results"]["demo/bigbigan"]
    scores = [json.loads((out / f"demo/bigbigan/seed_{seed}/score.json").read_text()) for seed in (2, 3)]
    ious = [score["heldout"]["thr"]["IoU"] for score in scores]
    assert ious[0] != ious[1]  # the seeds differ
    assert result["ours"]["mean"]["IoU"] == pytest.approx(statistics.fmean(ious))
    assert result["ours"]["std"]["IoU"] == pytest.approx(statistics.stdev(ious))
    assert result["paper"] is None and result["baselines"]["otsu"] == scores[0]["baselines"]["otsu"]["IoU"]
    text = (out / "table.md").read_text()
    assert (
        f"| demo/bigbigan | IoU | — | {statistics.fmean(ious):.4f} ± {statistics.stdev(ious):.4f} (n=2) |"
        in text
    )
    assert "| demo/bigbigan | otsu |" in text

    finished = (out / "demo/bigbigan/seed_2/segmentation.pth").stat().st_mtime_ns
    again = subprocess.run(command(out), cwd=REPOSITORY, check=True, capture_output=True, text=True)
    assert "== demo/bigbigan" not in again.stdout  # nothing trained again
    assert (out / "demo/bigbigan/seed_2/segmentation.pth").stat().st_mtime_ns == finished
    assert json.loads((out / "table.json").read_text()) == table

    other = command(out, steps="30")
    refused = subprocess.run(other, cwd=REPOSITORY, capture_output=True, text=True)
    assert refused.returncode == 1
    assert f"error: {out}/demo/bigbigan/seed_2 holds a run made with other flags (" in refused.stderr
    assert "give another --out, or delete that folder to train it again" in refused.stderr
    assert json.loads((out / "table.json").read_text()) == table  # nothing was changed


@pytest.mark.slow
def test_an_interrupted_reproduction_continues_where_it_stopped(tmp_path):
    out = tmp_path / "reproduce"
    run = subprocess.Popen(
        command(out, steps="200", seeds="1"),
        cwd=REPOSITORY,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    checkpoint = out / "demo/bigbigan/seed_2/checkpoint.pth"
    deadline = time.monotonic() + 240
    while not checkpoint.exists() and time.monotonic() < deadline and run.poll() is None:
        time.sleep(0.2)
    run.send_signal(signal.SIGINT)
    _, stderr = run.communicate(timeout=240)
    assert run.returncode == 130, stderr
    assert "demo/bigbigan, seed 2: checkpoint saved in" in stderr
    assert not (out / "demo/bigbigan/seed_2/score.json").exists()

    resumed = subprocess.run(command(out, "200", "1"), cwd=REPOSITORY, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert "Resuming from" in resumed.stdout
    assert (out / "table.md").exists()
