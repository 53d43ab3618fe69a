"""evaluate.py: the paper's numbers as metrics.model_metrics gives them, the SOD numbers
as pysodmetrics gives them, one table for several models and folders."""

import json
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import evaluate
from evaluate import Scores, ValidationSet, evaluate_model, validation_sets
from metrics import F_max, IoU, accuracy, model_metrics, probability_to_uint8
from postprocessing import SegmentationInference, Threshold
from UNet.unet_model import UNet
from utils.errors import InputError


def write_folder(root, sizes, seed):
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for index, (height, width) in enumerate(sizes):
        image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        mask = np.zeros((height, width), dtype=np.uint8)
        mask[height // 4 : 3 * height // 4, width // 3 :] = 255
        Image.fromarray(image).save(root / f"images/{index}.png")
        Image.fromarray(mask).save(root / f"masks/{index}.png")
    return root / "images", root / "masks"


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    return {
        "ECSSD": write_folder(root / "ECSSD", [(40, 50), (33, 47), (64, 64), (20, 31)], seed=0),
        "DUTS": write_folder(root / "DUTS", [(48, 36), (50, 50)], seed=1),
    }


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    root = tmp_path_factory.mktemp("weights")
    paths = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        model = UNet(base_width=4)
        with torch.no_grad():  # a U-Net whose predictions are not all one class
            model.outc.conv.bias.copy_(torch.tensor([0.0, 0.3 * seed]))
        torch.save(model.state_dict(), root / f"unet_{seed}.pth")
        paths.append(root / f"unet_{seed}.pth")
    return paths


@pytest.mark.parametrize("resize_to", [None, 32])
def test_paper_metrics_equal_model_metrics(folders, resize_to):
    torch.manual_seed(0)
    model = UNet(base_width=4).eval()
    (val_set,) = validation_sets([str(folders["ECSSD"][0])], [str(folders["ECSSD"][1])])
    scores = evaluate_model(model, val_set.batches(), resize_to, sod=False)
    paper_f = model_metrics(SegmentationInference(model, resize_to), val_set.batches(), stats=(F_max,))
    paper_thr = model_metrics(Threshold(model, resize_to=resize_to), val_set.batches(), stats=(IoU, accuracy))
    assert scores.F_max == paper_f["F_max"]
    assert scores.IoU == pytest.approx(paper_thr["IoU"], abs=1e-7)
    assert scores.accuracy == pytest.approx(paper_thr["accuracy"], abs=1e-7)
    assert len(scores.per_image_iou) == 4 and scores.sod is None


@pytest.mark.filterwarnings("ignore:This class will be removed")  # py_sod_metrics.Fmeasure, same values
def test_sod_metrics_equal_pysodmetrics_on_the_saved_predictions(folders):
    py_sod_metrics = pytest.importorskip("py_sod_metrics")
    torch.manual_seed(0)
    model = UNet(base_width=4).eval()
    (val_set,) = validation_sets([str(folders["ECSSD"][0])], [str(folders["ECSSD"][1])])
    scores = evaluate_model(model, val_set.batches(), None)
    reference = {
        name: metric()
        for name, metric in {
            "MAE": py_sod_metrics.MAE,
            "S": py_sod_metrics.Smeasure,
            "E": py_sod_metrics.Emeasure,
            "wF": py_sod_metrics.WeightedFmeasure,
            "F": py_sod_metrics.Fmeasure,
        }.items()
    }
    inference = SegmentationInference(model)
    for image, mask in val_set.batches():
        prediction = probability_to_uint8(inference(image)[0])
        for metric in reference.values():
            metric.step(pred=prediction, gt=mask[0].numpy().astype(np.uint8) * 255)
    expected = {
        "MAE": reference["MAE"].get_results()["mae"],
        "S_measure": reference["S"].get_results()["sm"],
        "E_measure_max": reference["E"].get_results()["em"]["curve"].max(),
        "E_measure_mean": reference["E"].get_results()["em"]["curve"].mean(),
        "E_measure_adaptive": reference["E"].get_results()["em"]["adp"],
        "weighted_F": reference["wF"].get_results()["wfm"],
        "F_measure_max": reference["F"].get_results()["fm"]["curve"].max(),
        "F_measure_mean": reference["F"].get_results()["fm"]["curve"].mean(),
        "F_measure_adaptive": reference["F"].get_results()["fm"]["adp"],
    }
    assert set(scores.sod) == set(expected)
    for name, value in expected.items():
        assert scores.sod[name] == pytest.approx(value, abs=1e-6), name


def test_evaluate_compares_models_on_folders_in_one_table(folders, weights, tmp_path, capsys):
    argv = [f"--weights={path}" for path in weights]
    for images, masks in folders.values():
        argv += ["--images", str(images), "--masks", str(masks)]
    argv += ["--resize_to", "32", "--device", "cpu", "--out", str(tmp_path / "scores.json")]
    results = evaluate.main(argv)
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["model", "dataset", "F_max", "IoU", "acc", *evaluate.SOD_COLUMNS]
    assert [line.split()[:2] for line in table[1:5]] == [
        ["unet_0.pth", "ECSSD"],
        ["unet_0.pth", "DUTS"],
        ["unet_1.pth", "ECSSD"],
        ["unet_1.pth", "DUTS"],
    ]
    written = json.loads((tmp_path / "scores.json").read_text())
    assert written["resize_to"] == 32
    for path in weights:
        for name in ("ECSSD", "DUTS"):
            assert written["results"][str(path)][name] == results[str(path)][name].to_json()
            assert set(written["results"][str(path)][name]) == {"id", "thr", "sod"}
    assert results[str(weights[0])]["ECSSD"].IoU != results[str(weights[1])]["ECSSD"].IoU


def test_every_bad_input_is_named_at_once(folders, tmp_path):
    argv = ["--weights", str(tmp_path / "absent.pth"), "--images", str(tmp_path / "nowhere")]
    argv += ["--masks", str(folders["DUTS"][1])]
    with pytest.raises(InputError) as error:
        evaluate.main(argv)
    lines = str(error.value).splitlines()
    assert len(lines) == 2 and "absent.pth" in lines[0] and "nowhere" in lines[1]
    with pytest.raises(InputError, match="one --masks"):
        evaluate.main(["--weights", "w.pth", "--images", "a", "--images", "b", "--masks", "c"])


def test_validation_pairs_come_one_by_one_at_their_own_size_in_file_order(folders):
    (val_set,) = validation_sets([str(folders["ECSSD"][0])], [str(folders["ECSSD"][1])])
    shapes = [(tuple(image.shape), tuple(mask.shape)) for image, mask in val_set.batches()]
    sizes = [(40, 50), (33, 47), (64, 64), (20, 31)]
    assert shapes == [((1, 3, h, w), (1, h, w)) for h, w in sizes]


def test_folders_of_the_same_dataset_name_get_distinct_names(folders):
    images, masks = (str(path) for path in folders["ECSSD"])
    sets = validation_sets([images] * 3, [masks] * 3)
    assert [s.name for s in sets] == ["ECSSD", "ECSSD_", "ECSSD__"]
    assert [s.name for s in validation_sets([images, images], [masks, masks], names=["a", "a"])] == [
        "a",
        "a_",
    ]
    with pytest.raises(ValueError):
        validation_sets([images, images], [masks])


def test_a_damaged_file_stops_validation_unless_skipped(folders, tmp_path):
    images, masks = tmp_path / "images", tmp_path / "masks"
    for source, target in zip(folders["DUTS"], (images, masks), strict=True):
        target.mkdir()
        for path in source.iterdir():
            (target / path.name).write_bytes(path.read_bytes())
    (images / "0.png").write_bytes((images / "0.png").read_bytes()[:100])
    with pytest.raises(InputError, match="0.png"):
        validation_sets([str(images)], [str(masks)])
    with pytest.raises(InputError, match="0.png"):
        ValidationSet("DUTS", str(images), str(masks))
    with pytest.warns(UserWarning, match="left out 1 of 2"):
        (val_set,) = validation_sets([str(images)], [str(masks)], skip_bad_files=True)
    assert len(val_set.dataset) == 1


def test_scores_entry_of_score_json():
    assert Scores(0.5, 0.25, 0.75).to_json() == {"id": {"F_max": 0.5}, "thr": {"IoU": 0.25, "accuracy": 0.75}}
    assert Scores(0.5, 0.25, 0.75, sod={"MAE": 0.1}).to_json() == {
        "id": {"F_max": 0.5},
        "thr": {"IoU": 0.25, "accuracy": 0.75},
        "sod": {"MAE": 0.1},
    }


def test_nothing_to_evaluate_is_an_error():
    with pytest.raises(ValueError) as error:
        evaluate_model(UNet(base_width=4), [], resize_to=None)
    assert str(error.value) == "there were no images to evaluate"


EVALUATE_HELP = [
    "usage: evaluate.py [-h] --weights FILE --images DIR --masks DIR [--names NAME [NAME ...]] [--out JSON]",
    "Score trained U-Nets on image/mask folders: the paper's metrics and the SOD community's.",
    "--weights FILE U-Net weights; repeat to compare models",
    "--images DIR an images folder; repeatable",
    "--masks DIR its masks folder, in the same order",
    "--names NAME [NAME ...] dataset names (default: the folder above each images folder)",
    "--out JSON also write the scores to this file",
    "--debug print the traceback of an error too",
    "--resize_to PX short side the images are resized to for the U-Net (none: native size), as "
    "--val_resize_to (default: 128)",
    "--sod BOOL also compute the SOD metrics (MAE, S-, E-, weighted F-, F-measure) (default: True)",
    "--skip_bad_files BOOL leave out pairs whose files cannot be decoded (with a warning) (default: False)",
    "--device DEVICE cpu, cuda, cuda:1, or a GPU index (0 = cuda:0) (default: CUDA if available)",
    "--threads N torch CPU threads (default: torch's choice)",
]


def test_help_names_every_flag_with_its_metavar_and_meaning(monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")
    help_text = evaluate.build_parser().format_help()
    shown = " ".join(help_text.split())
    for text in EVALUATE_HELP:
        assert text in shown
    # the example command keeps its own lines (RawDescriptionHelpFormatter)
    assert "\n\n    python evaluate.py --weights results/demo/segmentation.pth \\\n" in help_text


@pytest.mark.parametrize("missing", ["--weights", "--images", "--masks"])
def test_weights_images_and_masks_are_required(missing, capsys):
    argv = {"--weights": "w.pth", "--images": "i", "--masks": "m"}
    with pytest.raises(SystemExit):
        evaluate.build_parser().parse_args(
            [part for flag, value in argv.items() if flag != missing for part in (flag, value)]
        )
    assert f"the following arguments are required: {missing}" in capsys.readouterr().err


def scores(iou: float, sod: dict | None = None) -> Scores:
    return Scores(F_max=0.5, IoU=iou, accuracy=0.75, sod=sod, per_image_iou=[iou])


def test_the_table_has_one_row_per_model_and_dataset_and_sod_columns_on_request():
    sod = dict.fromkeys(evaluate.SOD_COLUMNS.values(), 0.125)
    results = {"runs/a.pth": {"ECSSD": scores(0.25, sod)}, "b.pth": {"DUTS-TE": scores(1.0, sod)}}
    assert evaluate.format_table(results, sod=False).splitlines() == [
        f"{'model':<24}{'dataset':<9}{'F_max':>9}{'IoU':>9}{'acc':>9}",
        f"{'a.pth':<24}{'ECSSD':<9}{0.5:>9.3f}{0.25:>9.3f}{0.75:>9.3f}",
        f"{'b.pth':<24}{'DUTS-TE':<9}{0.5:>9.3f}{1.0:>9.3f}{0.75:>9.3f}",
    ]
    table = evaluate.format_table(results, sod=True).splitlines()
    assert table[0].split() == ["model", "dataset", "F_max", "IoU", "acc", *evaluate.SOD_COLUMNS]
    assert table[1] == f"{'a.pth':<24}{'ECSSD':<9}" + "".join(
        f"{value:>9.3f}" for value in (0.5, 0.25, 0.75, *[0.125] * len(sod))
    )


def test_the_flags_reach_the_evaluation(folders, weights, tmp_path, monkeypatch, capsys):
    """--names, --resize_to, --sod, --skip_bad_files, --threads and the device go where they belong, from
    sys.argv when no argv is given; --out may lie in folders that do not exist yet."""
    calls, sets, threads = [], [], []
    monkeypatch.setattr(
        evaluate, "evaluate_model", lambda *args, **kwargs: calls.append((args, kwargs)) or scores(0.5)
    )
    real_sets = evaluate.validation_sets
    monkeypatch.setattr(evaluate, "validation_sets", lambda *args: sets.append(args) or real_sets(*args))
    monkeypatch.setattr(
        evaluate, "resolve_device", lambda name: torch.device("cpu") if name == "cpu" else 1 / 0
    )
    monkeypatch.setattr(torch, "set_num_threads", threads.append)
    images, masks = folders["DUTS"]
    out = tmp_path / "new" / "folder" / "scores.json"
    argv = ["--weights", str(weights[0]), "--images", str(images), "--masks", str(masks), "--names", "mine"]
    argv += ["--resize_to", "24", "--sod", "false", "--skip_bad_files", "true", "--threads", "1"]
    monkeypatch.setattr(sys, "argv", ["evaluate.py", *argv, "--device", "cpu", "--out", str(out)])
    results = evaluate.main()
    assert sets == [([str(images)], [str(masks)], True, ["mine"])] and threads == [1]
    [(args, kwargs)] = calls
    assert args[2:] == (24, False, "mine", None) and kwargs == {}  # sod, desc, no refinement
    assert list(results[str(weights[0])]) == ["mine"]
    shown = capsys.readouterr().out.splitlines()
    assert shown[0].split() == ["model", "dataset", "F_max", "IoU", "acc"] and shown[-1] == f"wrote {out}"
    assert json.loads(out.read_text())["resize_to"] == 24


def test_names_must_match_the_folders(folders, weights):
    images, masks = folders["DUTS"]
    argv = ["--weights", str(weights[0]), "--images", str(images), "--masks", str(masks), "--names", "a", "b"]
    with pytest.raises(
        InputError, match=r"^give one --masks \(and one --names entry, if any\) per --images folder$"
    ):
        evaluate.main(argv)
