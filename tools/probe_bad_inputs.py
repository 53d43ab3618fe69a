"""Bad input on every entry point, as a new user would give it: each case runs one command in a scratch
folder and is classed by what the user sees. Writes the table of docs/bad_input.md.

    python tools/probe_bad_inputs.py --out docs/bad_input.md
    python tools/probe_bad_inputs.py --repo /tmp/older_checkout      # the same cases on another version

Classes: `refused` (exit status != 0 and a one-line `error:` naming what to fix, no traceback),
`ran` (exit 0; the case says whether that is right), `traceback` (a raw Python traceback) and
`wrong` (the case's own check of the outcome failed: a silent wrong result or lost data).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

HERE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(HERE))

from UNet.unet_model import UNet  # noqa: E402

PY = sys.executable
REPO = HERE  # the checkout whose entry points run (--repo)


@dataclass
class Case:
    entry: str
    what: str
    command: list[str]
    expect: str = "refused"  # what is right: refused, or ran
    check: Callable[[Path], bool] | None = None  # the outcome is right (files kept, nothing written)
    words: str = ""  # the message must contain these
    result: dict = field(default_factory=dict)


def scratch_files(root: Path) -> None:
    """The inputs the cases use, made here."""
    good = root / "images"
    good.mkdir()
    for name, colour in (("a", 40), ("b", 200)):
        picture = np.full((48, 64, 3), colour, np.uint8)
        picture[12:36, 16:48] = 255 - colour
        Image.fromarray(picture).save(good / f"{name}.png")
    masks = root / "masks"
    masks.mkdir()
    for name in ("a", "b"):
        mask = np.zeros((48, 64), np.uint8)
        mask[12:36, 16:48] = 255
        Image.fromarray(mask).save(masks / f"{name}.png")
    (root / "empty").mkdir()
    mixed = root / "mixed"
    shutil.copytree(good, mixed)
    data = (good / "a.png").read_bytes()
    (mixed / "cut.png").write_bytes(data[: len(data) // 2])
    (mixed / "notes.png").write_text("not an image\n")
    texts = root / "texts"
    texts.mkdir()
    (texts / "x.png").write_text("not an image\n")
    small_masks = root / "small_masks"
    small_masks.mkdir()
    for name in ("a", "b"):
        Image.fromarray(np.full((24, 32), 255, np.uint8)).save(small_masks / f"{name}.png")
    blank_masks = root / "blank_masks"
    blank_masks.mkdir()
    for name in ("a", "b"):
        Image.fromarray(np.zeros((48, 64), np.uint8)).save(blank_masks / f"{name}.png")
    one_mask = root / "one_mask"
    one_mask.mkdir()
    shutil.copy(masks / "a.png", one_mask / "a.png")
    huge = root / "huge"
    huge.mkdir()
    Image.new("RGB", (3000, 2000), (90, 90, 90)).save(huge / "photo.jpg")
    (root / "notes.txt").write_text("hello\n")
    (root / "page.pth").write_bytes(b"<!DOCTYPE html><html><body>Sign in</body></html>\n")
    unet = (HERE / "demo/assets/unet.pth").read_bytes()  # the demo-trained U-Net, in any checkout
    (root / "unet.pth").write_bytes(unet)
    (root / "cut.pth").write_bytes(unet[: len(unet) // 3])
    state = UNet(base_width=4).state_dict()
    state["outc.conv.weight"][0] = float("nan")
    torch.save(state, root / "nan.pth")
    torch.save([1, 2, 3], root / "list.pth")
    (root / "hostile.pth").write_bytes(hostile_pickle(root / "pwned"))
    torch.save(torch.randn(7), root / "short_direction.pth")
    torch.save(torch.zeros(120), root / "zero_direction.pth")
    np.save(root / "nan_z.npy", np.full((4, 120), np.nan, np.float32))
    np.save(root / "narrow_z.npy", np.zeros((4, 7), np.float32))
    (root / "bad.json").write_text("{not json")
    (root / "earlier").mkdir()
    (root / "earlier" / "a.png").write_bytes(b"earlier")
    (root / "scores.json").write_text("earlier")
    (root / "z.npy").write_bytes(b"earlier")
    (root / "d.pth").write_bytes(b"earlier")


def hostile_pickle(marker: Path) -> bytes:
    """A pickle whose loading would create `marker` (torch.load with weights_only must refuse it)."""
    import pickle

    class Hostile:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = marker.with_suffix(".tmp")
    with open(path, "wb") as file:
        pickle.dump(Hostile(), file)
    return path.read_bytes()


def cases(root: Path) -> list[Case]:
    r = str(root)
    UNET, GEN, GEN_CONFIG = (
        f"{r}/unet.pth",
        str(REPO / "demo/assets/generator.pth"),
        str(REPO / "demo/assets/generator_config.json"),
    )
    DEMO_GAN = ["--gan_weights", GEN, "--gan_config", GEN_CONFIG]
    seg = [PY, str(REPO / "segment.py"), "--images", f"{r}/images", "--resize_to", "32"]
    seg_out = [*seg, "--out", f"{r}/out_seg"]
    ev = [PY, str(REPO / "evaluate.py"), "--weights", UNET, "--images", f"{r}/images", "--sod", "false"]
    train = [PY, str(REPO / "train_segmentation.py"), "--demo", "--n_steps", "2", "--test_samples_count", "4"]
    nothing_written = lambda name: lambda root: not (root / name).exists()  # noqa: E731
    kept = lambda name, content: lambda root: (root / name).read_bytes() == content  # noqa: E731
    return [
        Case(
            "segment.py",
            "weights file missing",
            [*seg_out, "--weights", f"{r}/none.pth"],
            check=nothing_written("out_seg"),
            words="none.pth",
        ),
        Case(
            "segment.py", "weights: a text file", [*seg_out, "--weights", f"{r}/notes.txt"], words="notes.txt"
        ),
        Case(
            "segment.py",
            "weights: an HTML page (a share link)",
            [*seg_out, "--weights", f"{r}/page.pth"],
            words="HTML",
        ),
        Case("segment.py", "weights truncated", [*seg_out, "--weights", f"{r}/cut.pth"], words="cut.pth"),
        Case(
            "segment.py",
            "weights with NaN in one tensor",
            [*seg_out, "--weights", f"{r}/nan.pth"],
            check=nothing_written("out_seg"),
            words="outc.conv.weight",
        ),
        Case(
            "segment.py",
            "weights of another model (the generator)",
            [*seg_out, "--weights", GEN],
            words="not a U-Net",
        ),
        Case(
            "segment.py",
            "weights: a pickled list",
            [*seg_out, "--weights", f"{r}/list.pth"],
            words="list.pth",
        ),
        Case(
            "segment.py",
            "weights: a hostile pickle",
            [*seg_out, "--weights", f"{r}/hostile.pth"],
            check=nothing_written("pwned"),
            words="hostile.pth",
        ),
        Case(
            "segment.py",
            "images folder missing",
            [PY, str(REPO / "segment.py"), "--weights", UNET, "--images", f"{r}/nowhere", "--out", f"{r}/o1"],
            words="nowhere",
        ),
        Case(
            "segment.py",
            "images folder empty",
            [PY, str(REPO / "segment.py"), "--weights", UNET, "--images", f"{r}/empty", "--out", f"{r}/o2"],
            words="empty",
        ),
        Case(
            "segment.py",
            "a truncated and a text file among images",
            [
                PY,
                str(REPO / "segment.py"),
                "--weights",
                UNET,
                "--images",
                f"{r}/mixed",
                "--out",
                f"{r}/o3",
                "--resize_to",
                "32",
            ],
            expect="ran",
            check=lambda root: sorted(p.name for p in (root / "o3").glob("*.png")) == ["a.png", "b.png"],
        ),
        Case(
            "segment.py",
            "only unreadable files",
            [PY, str(REPO / "segment.py"), "--weights", UNET, "--images", f"{r}/texts", "--out", f"{r}/o4"],
            words="none of the 1 image files",
        ),
        Case(
            "segment.py",
            "--out inside --images",
            [*seg, "--weights", UNET, "--out", f"{r}/images/masks"],
            words="overlap",
        ),
        Case(
            "segment.py",
            "--out is a file",
            [*seg, "--weights", UNET, "--out", f"{r}/notes.txt"],
            words="is a file",
        ),
        Case(
            "segment.py",
            "rerun into a folder with earlier masks",
            [*seg, "--weights", UNET, "--out", f"{r}/earlier"],
            check=kept("earlier/a.png", b"earlier"),
            words="--overwrite",
        ),
        Case("segment.py", "--thr 0", [*seg_out, "--weights", UNET, "--thr", "0"], words="--thr"),
        Case("segment.py", "--thr 1.5", [*seg_out, "--weights", UNET, "--thr", "1.5"], words="--thr"),
        Case(
            "segment.py",
            "--resize_to 8",
            [*seg_out, "--weights", UNET, "--resize_to", "8"],
            words="--resize_to",
        ),
        Case(
            "segment.py",
            "--resize_to abc",
            [*seg_out, "--weights", UNET, "--resize_to", "abc"],
            words="--resize_to",
        ),
        Case(
            "segment.py", "--refine foo", [*seg_out, "--weights", UNET, "--refine", "foo"], words="--refine"
        ),
        Case(
            "segment.py",
            "--batch_size 0",
            [*seg_out, "--weights", UNET, "--batch_size", "0"],
            words="--batch_size",
        ),
        Case(
            "segment.py",
            "--device cuda on a machine without CUDA",
            [*seg_out, "--weights", UNET, "--device", "cuda"],
            words="cuda",
        ),
        Case(
            "segment.py",
            "a 6 MP photo at --resize_to none",
            [
                PY,
                str(REPO / "segment.py"),
                "--weights",
                UNET,
                "--images",
                f"{r}/huge",
                "--out",
                f"{r}/o5",
                "--resize_to",
                "none",
                "--max_megapixels",
                "4",
            ],
            check=nothing_written("o5"),
            words="--max_megapixels",
        ),
        Case(
            "segment.py",
            "--max_megapixels -1",
            [*seg_out, "--weights", UNET, "--max_megapixels", "-1"],
            words="--max_megapixels",
        ),
        Case("evaluate.py", "an image without its mask", [*ev, "--masks", f"{r}/one_mask"], words="no mask"),
        Case(
            "evaluate.py",
            "masks of another size",
            [*ev, "--masks", f"{r}/small_masks", "--resize_to", "32"],
            expect="ran",
        ),
        Case(
            "evaluate.py",
            "all-background masks",
            [*ev, "--masks", f"{r}/blank_masks", "--resize_to", "32"],
            expect="ran",
        ),
        Case(
            "evaluate.py",
            "two --images, one --masks",
            [*ev, "--images", f"{r}/images", "--masks", f"{r}/masks"],
            words="--masks",
        ),
        Case(
            "evaluate.py",
            "--names count mismatch",
            [*ev, "--masks", f"{r}/masks", "--names", "a", "b"],
            words="--names",
        ),
        Case(
            "evaluate.py",
            "--out file exists",
            [*ev, "--masks", f"{r}/masks", "--out", f"{r}/scores.json"],
            check=kept("scores.json", b"earlier"),
            words="--overwrite",
        ),
        Case("evaluate.py", "masks folder missing", [*ev, "--masks", f"{r}/nowhere"], words="nowhere"),
        Case(
            "train_segmentation.py",
            "--n_steps 0",
            [*train, "--out", f"{r}/t1", "--n_steps", "0"],
            words="--n_steps",
        ),
        Case(
            "train_segmentation.py",
            "--batch_size 0",
            [*train, "--out", f"{r}/t2", "--batch_size", "0"],
            words="--batch_size",
        ),
        Case(
            "train_segmentation.py", "--rate -1", [*train, "--out", f"{r}/t3", "--rate", "-1"], words="--rate"
        ),
        Case(
            "train_segmentation.py",
            "direction of the wrong length",
            [*train, "--out", f"{r}/t4", "--bg_direction", f"{r}/short_direction.pth"],
            words="short_direction.pth",
        ),
        Case(
            "train_segmentation.py",
            "an all-zero direction",
            [*train, "--out", f"{r}/t5", "--bg_direction", f"{r}/zero_direction.pth"],
            words="zero_direction.pth",
        ),
        Case(
            "train_segmentation.py",
            "--z with NaN rows",
            [*train, "--out", f"{r}/t6", "--z", f"{r}/nan_z.npy"],
            words="nan_z.npy",
        ),
        Case(
            "train_segmentation.py",
            "--z of the wrong width",
            [*train, "--out", f"{r}/t7", "--z", f"{r}/narrow_z.npy"],
            words="narrow_z.npy",
        ),
        Case(
            "train_segmentation.py",
            "--val_images_dirs without --val_masks_dirs",
            [*train, "--out", f"{r}/t8", "--val_images_dirs", f"{r}/images", "--val_masks_dirs"],
            words="val",
        ),
        Case(
            "train_segmentation.py",
            "--gan_config not JSON",
            [*train, "--out", f"{r}/t9", "--gan_config", f"{r}/bad.json"],
            words="--gan_config",
        ),
        Case("train_segmentation.py", "no --out", [*train], words="--out"),
        Case(
            "find_direction.py",
            "generator weights missing",
            [PY, str(REPO / "find_direction.py"), "--gan_weights", f"{r}/none.pth", "--out", f"{r}/d2.pth"],
            words="none.pth",
        ),
        Case(
            "find_direction.py",
            "--out exists",
            [PY, str(REPO / "find_direction.py"), *DEMO_GAN, "--out", f"{r}/d.pth", "--steps", "1"],
            check=kept("d.pth", b"earlier"),
            words="--overwrite",
        ),
        Case(
            "find_direction.py",
            "--out is a folder",
            [PY, str(REPO / "find_direction.py"), *DEMO_GAN, "--out", f"{r}/empty"],
            words="folder",
        ),
        Case(
            "embed_images.py",
            "--out not .npy",
            [PY, str(REPO / "embed_images.py"), "--images", f"{r}/images", "--out", f"{r}/z.txt", *DEMO_GAN],
            words=".npy",
        ),
        Case(
            "embed_images.py",
            "--out exists",
            [PY, str(REPO / "embed_images.py"), "--images", f"{r}/images", "--out", f"{r}/z.npy", *DEMO_GAN],
            check=kept("z.npy", b"earlier"),
            words="--overwrite",
        ),
        Case(
            "embed_images.py",
            "images folder empty",
            [PY, str(REPO / "embed_images.py"), "--images", f"{r}/empty", "--out", f"{r}/z2.npy", *DEMO_GAN],
            words="empty",
        ),
        Case(
            "visualization gif",
            "--steps 1",
            [PY, "-m", "visualization", "gif", "--demo", "--out", f"{r}/w.gif", "--steps", "1"],
            words="--steps",
        ),
        Case(
            "visualization gif",
            "no generator",
            [PY, "-m", "visualization", "gif", "--out", f"{r}/w.gif"],
            words="--gan_weights",
        ),
        Case(
            "self_train.py",
            "--unet missing",
            [PY, str(REPO / "self_train.py"), "--demo", "--out", f"{r}/s1"],
            words="--unet",
        ),
        Case(
            "self_train.py",
            "unlabeled folder empty",
            [
                PY,
                str(REPO / "self_train.py"),
                "--demo",
                "--unet",
                UNET,
                "--images",
                f"{r}/empty",
                "--out",
                f"{r}/s2",
            ],
            words="empty",
        ),
        Case(
            "reproduce.py",
            "unknown row",
            [PY, str(REPO / "reproduce.py"), "--rows", "nowhere/bigbigan", "--dry_run"],
            words="nowhere",
        ),
        Case(
            "prepare_datasets.py",
            "unknown dataset",
            [PY, str(REPO / "prepare_datasets.py"), "nowhere", "--root", f"{r}/ds"],
            words="nowhere",
        ),
        Case(
            "download_all.sh",
            "unknown --only",
            ["bash", str(REPO / "download_all.sh"), "--only", "nowhere"],
            words="nowhere",
        ),
        Case(
            "download_all.sh",
            "mirror unreachable",
            [
                "env",
                f"BGW_ROOT={r}/dl",
                "BGW_MIRROR=http://127.0.0.1:9",
                "bash",
                str(REPO / "download_all.sh"),
                "--only",
                "bg_direction.pth",
            ],
            check=lambda root: not any((root / "dl").rglob("*.pth")),
            words="bg_direction.pth",
        ),
        Case(
            "app.py",
            "--gan_weights without --bg_direction",
            [PY, str(REPO / "app.py"), "--gan_weights", GEN],
            words="--bg_direction",
        ),
    ]


def run(case: Case, root: Path) -> None:
    if case.entry == "download_all.sh" and "BGW_ROOT" in " ".join(case.command):
        (root / "dl").mkdir(exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(REPO), "TQDM_DISABLE": "1"}
    done = subprocess.run(case.command, cwd=root, env=env, capture_output=True, text=True, timeout=600)
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    usage = [line for line in done.stderr.splitlines() if ": error: " in line]  # argparse's
    warned = [line.strip() for line in done.stderr.splitlines() if "Warning: " in line]
    last_out = done.stdout.strip().splitlines()[-1:] if done.returncode == 0 else []
    fallback = done.stderr.strip().splitlines()[-1:] if done.stderr.strip() else [""]
    message = (errors or usage or warned or last_out or fallback)[-1]
    if "Traceback (most recent call last)" in done.stderr:
        seen = "traceback"
    elif done.returncode == 0:
        seen = "ran"
    else:
        seen = "refused" if (errors or usage) else "traceback"
    right = seen == case.expect and (case.check is None or case.check(root))
    if seen == "refused" and case.words and case.words.lower() not in message.lower():
        right = False
    case.result = {
        "status": done.returncode,
        "seen": seen if right or seen == "traceback" else "wrong",
        "message": message,
    }


def table(all_cases: list[Case]) -> str:
    lines = ["| # | entry point | case | exit | what the user sees |", "|---:|---|---|---:|---|"]
    for number, case in enumerate(all_cases, 1):
        message = case.result["message"].replace("|", "\\|")[:240]
        status, seen = case.result["status"], case.result["seen"]
        lines.append(f"| {number} | {case.entry} | {case.what} | {status} | {seen}: {message} |")
    counts = Counter(case.result["seen"] for case in all_cases)
    summary = ", ".join(f"{name} {counts[name]}" for name in ("refused", "ran", "wrong", "traceback"))
    return "\n".join(lines) + f"\n\n{len(all_cases)} cases: {summary}.\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, help="write the table here (default: print it)")
    parser.add_argument("--json", type=Path, help="also write every case's outcome as JSON")
    parser.add_argument("--repo", type=Path, default=HERE, help="the checkout to probe (default: this one)")
    args = parser.parse_args()
    global REPO
    REPO = args.repo.resolve()
    root = Path(tempfile.mkdtemp(prefix="bgw_probe_"))
    scratch_files(root)
    all_cases = cases(root)
    for case in all_cases:
        run(case, root)
        print(f"{case.result['seen']:>9}  {case.entry}: {case.what}", flush=True)
    text = table(all_cases)
    if args.out:
        args.out.write_text(text)
    else:
        print(text)
    if args.json:
        args.json.write_text(
            json.dumps([{"entry": c.entry, "case": c.what, **c.result} for c in all_cases], indent=1)
        )
    shutil.rmtree(root)


if __name__ == "__main__":
    main()
