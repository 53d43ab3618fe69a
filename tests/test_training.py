"""The training engine's parts, called directly (whole runs: tests/test_train_segmentation.py)."""

import json
import math
import re
import signal
from types import SimpleNamespace

import pytest
import torch
from torch.nn.parallel import DistributedDataParallel
from torchvision.utils import save_image

import train_segmentation
from BigGAN.gan_load import make_biggan_config
from BigGAN.model.BigGAN import Generator
from evaluate import evaluate_model, predictions_grid, validation_sets
from postprocessing import connected_components_filter
from tests.training_run import make_inputs
from tests.weight_fill import fill_module
from train_config import resolve_config
from UNet.unet_model import UNet
from utils.distributed import Ranks, rank_seed
from utils.errors import InputError
from utils.stop_signals import StopRequested
from utils.weights import WeightsError


class RecordingWriter:
    """A SummaryWriter stand-in keeping (kind, tag, step) of everything logged."""

    def __init__(self):
        self.logged, self.values = [], {}

    def add_scalar(self, tag, value, step):
        self.logged.append(("scalar", tag, step))
        self.values[tag, step] = value

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
    inputs = SimpleNamespace(G=torch.nn.Identity(), direction=torch.ones(4), zs=torch.randn(3, 4))
    run = config("--batch_size", "6", "--seed", "3", "--z_noise", "0.25")
    generator = train_segmentation.rank_mask_generator(inputs, run, Ranks(rank=1, world_size=3), "cpu")
    assert generator.p.batch_size == 2 and generator.z_noise == 0.25 and torch.equal(generator.zs, inputs.zs)
    expected = torch.Generator().manual_seed(rank_seed(3, 1)).get_state()
    assert torch.equal(generator.rng.get_state(), expected)
    one_each = train_segmentation.rank_mask_generator(
        inputs, config("--batch_size", "3"), Ranks(world_size=3), "cpu"
    )
    assert one_each.p.batch_size == 1
    with pytest.raises(InputError, match=r"^--batch_size 2 leaves no samples for 3 processes$"):
        train_segmentation.rank_mask_generator(
            inputs, config("--batch_size", "2"), Ranks(rank=0, world_size=3), "cpu"
        )


@pytest.mark.parametrize(
    "flag, postprocessing", [([], (connected_components_filter,)), (["--connected_components", "false"], ())]
)
def test_mask_generator_filters_connected_components_unless_told_not_to(flag, postprocessing):
    params = config(*flag).params
    zs = torch.randn(3, 4)
    generator = train_segmentation.build_mask_generator(
        torch.nn.Identity(), torch.ones(4), params, zs, 0.5, 7, "cpu"
    )
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
def test_test_set_has_enough_batches_for_its_sample_count(count, batches, monkeypatch):
    shown = []
    monkeypatch.setattr(
        train_segmentation, "progress_bar", lambda items, **options: shown.append(options) or items
    )
    assert train_segmentation.make_test_set(CountingGenerator(), count) == list(range(1, batches + 1))
    assert shown == [{"desc": "synthetic test set", "leave": False}]


def test_synthetic_loss_is_the_mean_cross_entropy_and_keeps_the_mode():
    model, test_set = tiny_model().train(), synthetic_batches(3)
    loss = train_segmentation.synthetic_loss(model, test_set)
    assert model.training
    model.eval()
    with torch.no_grad():
        losses = [torch.nn.functional.cross_entropy(model(x), y).item() for x, y in test_set]
    assert loss == pytest.approx(sum(losses) / 3, rel=1e-6)
    assert not model.training


def test_non_finite_weights_are_named():
    model = tiny_model()
    assert train_segmentation.non_finite_weights(model) == []
    with torch.no_grad():
        model.outc.conv.bias[0] = math.inf
        model.inc.double_conv[1].running_mean[0] = math.nan
    assert train_segmentation.non_finite_weights(model) == [
        "inc.double_conv.1.running_mean",
        "outc.conv.bias",
    ]


def test_one_process_trains_the_model_itself():
    model = tiny_model()
    assert train_segmentation.distributed_model(model, Ranks(), torch.device("cpu")) is model


def test_several_cpu_processes_wrap_the_model_without_synchronised_batch_norm(tmp_path):
    """gloo has no SyncBatchNorm: on CPUs each process keeps its own statistics."""
    torch.distributed.init_process_group(
        "gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1
    )
    try:
        model = tiny_model()
        wrapped = train_segmentation.distributed_model(
            model, Ranks(rank=0, world_size=2), torch.device("cpu")
        )
        assert isinstance(wrapped, DistributedDataParallel) and wrapped.module is model
        assert not any(isinstance(m, torch.nn.SyncBatchNorm) for m in wrapped.modules())
    finally:
        torch.distributed.destroy_process_group()


def test_steps_log_loss_and_rate_every_10_steps_test_loss_and_samples_at_their_intervals():
    run = config("--n_steps", "12", "--steps_per_log", "4", "--steps_per_validation", "6", "--rate", "0.5")
    writer, model = RecordingWriter(), tiny_model()
    progress = SimpleNamespace(postfix=[], set_postfix=lambda **values: progress.postfix.append(values))
    test_set = synthetic_batches(1)
    for step in range(1, 13):
        train_segmentation.RunLog(writer, test_set, None, run, "cpu").step(model, step, 0.125, 0.5, progress)
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
    train_segmentation.RunLog(writer, [], None, config(), "cpu").scores(
        {"synthetic": entry, "ds": entry, "baselines": {"mean": {}}}, 40
    )
    assert writer.logged == [
        ("scalar", f"final/{name}/{metric}", 40)
        for name in ("synthetic", "ds")
        for metric in ("F_max", "IoU", "accuracy")
    ]


def test_score_table_has_one_row_per_scored_folder(capsys):
    entry = {"id": {"F_max": 0.91234}, "thr": {"IoU": 0.5, "accuracy": 0.987654}}
    train_segmentation.print_table({"synthetic": entry, "baselines": {"mean": {}}})
    assert capsys.readouterr().out == (
        "\ndataset                    F_max     IoU  accuracy\n"
        "synthetic                  0.912   0.500     0.988\n"
    )


class BatchSource:
    """A mask generator stand-in: seeded 16x16 batches of two (NaN images if `nan`), on the CPU."""

    def __init__(self, nan: bool = False):
        self.rng, self.nan, self.device = torch.Generator().manual_seed(0), nan, torch.device("cpu")
        self.p = SimpleNamespace(batch_size=2)

    def __call__(self):
        images = torch.rand(2, 3, 16, 16, generator=self.rng) * 2 - 1
        masks = (torch.rand(2, 16, 16, generator=self.rng) > 0.5).long()
        return images * math.nan if self.nan else images, masks


def train(out, model, source, n_steps=1, checkpoint=None, ranks=None, flags=()) -> RecordingWriter | None:
    """`n_steps` of training into `out` on the CPU; the main process's writer, holding what it logged."""
    run = config("--n_steps", str(n_steps), "--out", str(out), *flags)
    ranks = ranks or Ranks()
    writer = RecordingWriter() if ranks.is_main else None
    cpu = torch.device("cpu")
    log = train_segmentation.RunLog(writer, synthetic_batches(1), None, run, cpu) if ranks.is_main else None
    train_segmentation.train_segmentation(
        model, source, run, cpu, log=log, checkpoint=checkpoint, ranks=ranks
    )
    return writer


def test_a_loss_that_is_not_finite_stops_before_any_checkpoint_with_a_full_explanation(tmp_path):
    with pytest.raises(train_segmentation.DivergenceError) as failure:
        train(tmp_path, tiny_model(), BatchSource(nan=True))
    checkpoint = tmp_path / "checkpoint.pth"
    assert str(failure.value) == (
        "training diverged at step 1: the loss is nan; no checkpoint and segmentation.pth was not written. "
        "Likely causes: a learning rate too high (--rate 0.001), latents far from N(0, I) (--z, --z_noise), "
        "or a generator giving non-finite images. Retry with other settings in a new --out (or delete "
        f"{checkpoint})"
    )
    assert not checkpoint.exists()


def test_weights_that_are_not_finite_are_counted_and_the_first_three_named(tmp_path):
    """BatchNorm's running means are not used by a training step's loss: the loss stays finite."""
    model = tiny_model()
    norms = [name for name, module in model.named_modules() if isinstance(module, torch.nn.BatchNorm2d)]
    with torch.no_grad():
        for name in norms[:4]:
            model.get_submodule(name).running_mean.fill_(math.nan)
    with pytest.raises(
        train_segmentation.DivergenceError, match="at step 1: 4 U-Net tensors are not finite"
    ) as failure:
        train(tmp_path, model, BatchSource())
    named = ", ".join(f"{name}.running_mean" for name in norms[:3])
    assert f"({named}); no checkpoint" in str(failure.value)


def test_one_process_saves_its_latent_stream_state_itself(tmp_path):
    source = BatchSource()
    train(tmp_path, tiny_model(), source)
    saved = torch.load(tmp_path / "checkpoint.pth", weights_only=True)
    assert saved["step"] == 1 and isinstance(saved["rng"], torch.Tensor)


def test_a_finished_checkpoint_restores_this_process_s_stream_and_trains_no_further(tmp_path):
    model, source = tiny_model(), BatchSource()
    states = [torch.Generator().manual_seed(seed).get_state() for seed in (1, 2)]
    checkpoint = {
        "model": model.state_dict(),
        "opt": torch.optim.Adam(model.parameters()).state_dict(),
        "scheduler": {"step_size": 1, "gamma": 0.1, "base_lrs": [0.001], "last_epoch": 0},
        "rng": states,
        "step": 3,
    }
    # Another process's share of a finished two-process run: nothing left to train or to exchange.
    train(tmp_path, model, source, n_steps=3, checkpoint=checkpoint, ranks=Ranks(rank=1, world_size=2))
    assert torch.equal(source.rng.get_state(), states[1])
    assert not (tmp_path / "checkpoint.pth").exists()


def test_a_checkpoint_of_another_model_is_named_when_refused(tmp_path):
    other = UNet(base_width=8).state_dict()
    with pytest.raises(WeightsError, match=re.escape(f"{tmp_path / 'checkpoint.pth'} does not match UNet")):
        train(tmp_path, tiny_model(), BatchSource(), checkpoint={"model": other})


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> list:
    """The same small folder pair twice: validation sets `ds` and `ds_`."""
    root = make_inputs(tmp_path_factory.mktemp("inputs"))
    images, masks = str(root / "ds/images"), str(root / "ds/masks")
    return validation_sets([images, images], [masks, masks])


def test_final_scores_cover_the_test_set_and_every_folder_at_the_run_s_size(folders, monkeypatch):
    model, test_set = tiny_model(), synthetic_batches(2)
    evaluated, extras_seen = [], []

    def recorded(model, batches, resize_to, **options):
        evaluated.append((resize_to, options))
        return evaluate_model(model, batches, resize_to, **options)

    monkeypatch.setattr(train_segmentation, "evaluate_model", recorded)

    def extras(scores, val_set) -> dict:
        extras_seen.append((scores, val_set))
        return {"extra": {"n": 1}}

    score = train_segmentation.final_scores(
        model, test_set, folders, config("--val_resize_to", "32"), "cpu", extras
    )

    unrefined = {"refine": None}  # --refine none, the default
    assert evaluated == [
        (None, {"desc": "synthetic test set"}),
        (32, {"desc": "ds", **unrefined}),
        (32, {"desc": "ds_", **unrefined}),
    ]
    assert list(score) == ["synthetic", "ds", "extra", "ds_"]
    assert score["synthetic"]["loss"] == train_segmentation.synthetic_loss(model, test_set)
    assert score["ds"] == evaluate_model(model, folders[0].batches("cpu"), 32).to_json()
    ((scores, val_set),) = extras_seen
    assert val_set is folders[0] and scores.to_json() == score["ds"]


def test_prediction_pictures_show_the_first_eight_pairs(folders, tmp_path):
    model = tiny_model()
    images, masks = synthetic_batches(1)[0]
    test_set = [(images.repeat(5, 1, 1, 1), masks.repeat(5, 1, 1))]  # 10 pairs
    train_segmentation.save_prediction_pictures(tmp_path, model, test_set, folders[:1], 32, "cpu")
    pairs = [(test_set[0][0][index], test_set[0][1][index]) for index in range(8)]
    save_image(predictions_grid(model, pairs, None), tmp_path / "expected_synthetic.png")
    save_image(
        predictions_grid(model, [folders[0].dataset[i] for i in range(3)], 32), tmp_path / "expected_ds.png"
    )
    for name in ("synthetic", "ds"):
        expected = (tmp_path / f"expected_{name}.png").read_bytes()
        assert (tmp_path / f"predictions_{name}.png").read_bytes() == expected, name


def test_training_without_a_signal_runs_to_its_last_step(tmp_path):
    try:
        train(tmp_path, tiny_model(), BatchSource(), n_steps=2)
    except StopRequested as stop:  # a KeyboardInterrupt, which pytest would take for the user's
        pytest.fail(f"training stopped without a signal: {stop}")
    assert torch.load(tmp_path / "checkpoint.pth", weights_only=True)["step"] == 2


class SignallingSource(BatchSource):
    """Sends this process SIGINT while synthesising its first batch, as a user's Ctrl-C would."""

    def __call__(self):
        if torch.equal(self.rng.get_state(), torch.Generator().manual_seed(0).get_state()):
            signal.raise_signal(signal.SIGINT)
        return super().__call__()


def test_a_stop_signal_saves_a_checkpoint_after_the_step_then_stops(tmp_path):
    with pytest.raises(StopRequested) as stopped:
        train(tmp_path, tiny_model(), SignallingSource(), n_steps=5)
    checkpoint = tmp_path / "checkpoint.pth"
    assert str(stopped.value) == f"checkpoint of step 1 saved in {checkpoint}; rerun the command to continue"
    assert stopped.value.exit_code == 128 + signal.SIGINT
    assert torch.load(checkpoint, weights_only=True)["step"] == 1


def test_training_progress_counts_steps_from_the_checkpoint(tmp_path, monkeypatch):
    train(tmp_path, tiny_model(), BatchSource(), n_steps=1)
    checkpoint = torch.load(tmp_path / "checkpoint.pth", weights_only=True)
    shown = []
    real = train_segmentation.progress_bar
    monkeypatch.setattr(
        train_segmentation, "progress_bar", lambda **options: shown.append(options) or real(**options)
    )
    train(tmp_path, tiny_model(), BatchSource(), n_steps=3, checkpoint=checkpoint)
    assert shown == [{"total": 3, "initial": 1, "desc": "training", "disable": False}]


def test_bf16_precision_applies_to_the_training_steps(tmp_path):
    """The same first step in fp32 and under bf16 autocast: the logged training losses differ."""
    losses = {}
    for precision in ("fp32", "bf16"):
        torch.manual_seed(0)
        (tmp_path / precision).mkdir()
        writer = train(tmp_path / precision, tiny_model(), BatchSource(), flags=("--precision", precision))
        losses[precision] = writer.values["train/loss", 1]
    assert losses["fp32"] != losses["bf16"] and losses["fp32"] == pytest.approx(losses["bf16"], rel=0.05)


def test_synthetic_test_loss_is_logged_in_the_mode_the_run_asks_for():
    model, test_set = tiny_model(), synthetic_batches(2)
    for flag, train_mode in (("false", False), ("true", True)):
        writer = RecordingWriter()
        run = config("--n_steps", "1", "--synthetic_loss_train_mode", flag)
        progress = SimpleNamespace(set_postfix=lambda **values: None)
        train_segmentation.RunLog(writer, test_set, None, run, "cpu").step(model, 1, 0.5, 0.001, progress)
        assert writer.values["val/loss", 1] == train_segmentation.synthetic_loss(model, test_set, train_mode)
    assert train_segmentation.synthetic_loss(model, test_set, True) != train_segmentation.synthetic_loss(
        model, test_set, False
    )


def test_loading_inputs_takes_the_generator_s_latent_size_and_the_folders_by_default(tmp_path):
    """A generator of 60 latents and its 60-element direction; the folders load unless told not to."""
    root = make_inputs(tmp_path)
    gan_config = {"G_ch": 4, "resolution": 64, "G_attn": "0", "dim_z": 60}
    generator = fill_module(Generator(**{**make_biggan_config(128), **gan_config}), seed=0)
    torch.save(generator.state_dict(), tmp_path / "G60.pth")
    torch.save(torch.nn.functional.normalize(torch.randn(60), dim=0), tmp_path / "direction60.pth")
    flags = ["--gan_weights", str(tmp_path / "G60.pth"), "--gan_config", json.dumps(gan_config)]
    flags += ["--bg_direction", str(tmp_path / "direction60.pth")]
    flags += ["--val_images_dir", str(root / "ds/images"), "--val_masks_dir", str(root / "ds/masks")]
    loaded = train_segmentation.load_inputs(config(*flags), torch.device("cpu"))
    assert loaded.direction.shape == (60,) and [val_set.name for val_set in loaded.val_sets] == ["ds"]
    assert (
        train_segmentation.load_inputs(config(*flags), torch.device("cpu"), main_process=False).val_sets == []
    )


@pytest.mark.parametrize(("seconds", "shown"), [(12.4, "12 s"), (59.6, "1 min 00 s"), (245, "4 min 05 s")])
def test_wall_time_is_shown_in_minutes_and_seconds(seconds, shown):
    assert train_segmentation.wall_time(seconds) == shown
