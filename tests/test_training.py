"""The training engine's parts, called directly (whole runs: tests/test_train_segmentation.py)."""

import math
from types import SimpleNamespace

import pytest
import torch
from torch.nn.parallel import DistributedDataParallel

import training
from postprocessing import connected_components_filter
from UNet.unet_model import UNet
from utils.distributed import Ranks, rank_seed
from utils.errors import InputError
from utils.train_config import resolve_config


class RecordingWriter:
    """A SummaryWriter stand-in keeping (kind, tag, step) of everything logged."""

    def __init__(self):
        self.logged = []

    def add_scalar(self, tag, value, step):
        self.logged.append(("scalar", tag, step))

    def add_image(self, tag, image, step):
        self.logged.append(("image", tag, step))


def tiny_model() -> UNet:
    return UNet(base_width=4).eval()


def synthetic_batches(count: int, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [
        (torch.rand(2, 3, 16, 16, generator=g) * 2 - 1, (torch.rand(2, 16, 16, generator=g) > 0.5).long())
        for _ in range(count)
    ]


def config(*flags: str):
    return resolve_config(["--out", "unused", *flags])


def test_each_process_synthesises_its_share_of_the_batch_from_its_own_stream():
    inputs = SimpleNamespace(G=torch.nn.Identity(), direction=torch.ones(4), zs=None)
    run = config("--batch_size", "6", "--seed", "3", "--z_noise", "0.25")
    generator = training.rank_mask_generator(inputs, run, Ranks(rank=1, world_size=3), "cpu")
    assert generator.p.batch_size == 2 and generator.z_noise == 0.25
    expected = torch.Generator().manual_seed(rank_seed(3, 1)).get_state()
    assert torch.equal(generator.rng.get_state(), expected)
    with pytest.raises(InputError, match=r"^--batch_size 2 leaves no samples for 3 processes$"):
        training.rank_mask_generator(inputs, config("--batch_size", "2"), Ranks(rank=0, world_size=3), "cpu")


@pytest.mark.parametrize(
    "flag, postprocessing", [([], (connected_components_filter,)), (["--connected_components", "false"], ())]
)
def test_mask_generator_filters_connected_components_unless_told_not_to(flag, postprocessing):
    params = config(*flag).params
    zs = torch.randn(3, 4)
    generator = training.build_mask_generator(torch.nn.Identity(), torch.ones(4), params, zs, 0.5, 7, "cpu")
    assert generator.mask_postprocessing == postprocessing and generator.p is params
    assert torch.equal(generator.zs, zs) and generator.z_noise == 0.5
    assert torch.equal(generator.rng.get_state(), torch.Generator().manual_seed(7).get_state())


class CountingGenerator:
    """A mask generator stand-in of batch size 2 whose batches are their call numbers."""

    p = SimpleNamespace(batch_size=2)

    def __init__(self):
        self.calls = 0

    def __call__(self) -> int:
        self.calls += 1
        return self.calls


@pytest.mark.parametrize("count, batches", [(4, 2), (5, 3), (1, 1)])
def test_test_set_has_enough_batches_for_its_sample_count(count, batches):
    assert training.make_test_set(CountingGenerator(), count) == list(range(1, batches + 1))


def test_synthetic_loss_is_the_mean_cross_entropy_and_keeps_the_mode():
    model, test_set = tiny_model().train(), synthetic_batches(3)
    loss = training.synthetic_loss(model, test_set)
    assert model.training
    model.eval()
    with torch.no_grad():
        losses = [torch.nn.functional.cross_entropy(model(x), y).item() for x, y in test_set]
    assert loss == pytest.approx(sum(losses) / 3, rel=1e-6)
    assert not model.training


def test_non_finite_weights_are_named():
    model = tiny_model()
    assert training.non_finite_weights(model) == []
    with torch.no_grad():
        model.outc.conv.bias[0] = math.inf
        model.inc.double_conv[1].running_mean[0] = math.nan
    assert training.non_finite_weights(model) == ["inc.double_conv.1.running_mean", "outc.conv.bias"]


def test_one_process_trains_the_model_itself():
    model = tiny_model()
    assert training.distributed_model(model, Ranks(), torch.device("cpu")) is model


def test_several_cpu_processes_wrap_the_model_without_synchronised_batch_norm(tmp_path):
    """gloo has no SyncBatchNorm: on CPUs each process keeps its own statistics."""
    torch.distributed.init_process_group(
        "gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1
    )
    try:
        model = tiny_model()
        wrapped = training.distributed_model(model, Ranks(rank=0, world_size=2), torch.device("cpu"))
        assert isinstance(wrapped, DistributedDataParallel) and wrapped.module is model
        assert not any(isinstance(m, torch.nn.SyncBatchNorm) for m in wrapped.modules())
    finally:
        torch.distributed.destroy_process_group()


def test_steps_log_loss_and_rate_every_10_steps_test_loss_and_samples_at_their_intervals():
    run = config("--n_steps", "12", "--steps_per_log", "4", "--steps_per_validation", "6", "--rate", "0.5")
    writer, model = RecordingWriter(), tiny_model()
    progress = SimpleNamespace(postfix=[], set_postfix=lambda **values: progress.postfix.append(values))
    scheduler = SimpleNamespace(get_last_lr=lambda: [0.5])
    for step in range(1, 13):
        training.log_step(
            writer, model, synthetic_batches(1), None, run, "cpu", step, 0.125, scheduler, progress
        )
    assert writer.logged == [
        ("scalar", "val/loss", 4),
        ("image", "synthetic/samples", 6),
        ("scalar", "val/loss", 8),
        ("scalar", "train/loss", 10),
        ("scalar", "train/lr", 10),
        ("scalar", "train/loss", 12),
        ("scalar", "train/lr", 12),
        ("scalar", "val/loss", 12),
    ]
    assert progress.postfix == [{"loss": "0.1250"}, {"loss": "0.1250"}]


def test_final_scores_are_logged_per_folder_and_metric():
    writer = RecordingWriter()
    entry = {"id": {"F_max": 0.5}, "thr": {"IoU": 0.25, "accuracy": 0.75}}
    training.log_scores(writer, {"synthetic": entry, "ds": entry, "baselines": {"mean": {}}}, 40)
    assert writer.logged == [
        ("scalar", f"final/{name}/{metric}", 40)
        for name in ("synthetic", "ds")
        for metric in ("F_max", "IoU", "accuracy")
    ]


def test_score_table_has_one_row_per_scored_folder(capsys):
    entry = {"id": {"F_max": 0.91234}, "thr": {"IoU": 0.5, "accuracy": 0.987654}}
    training.print_table({"synthetic": entry, "baselines": {"mean": {}}})
    assert capsys.readouterr().out == (
        "\ndataset                    F_max     IoU  accuracy\n"
        "synthetic                  0.912   0.500     0.988\n"
    )
