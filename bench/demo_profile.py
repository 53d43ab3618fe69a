"""Where the demo's wall time goes: one real `train_segmentation.py --demo` run, its phases timed.

    python -m bench.demo_profile --out results/demo_profile [more train_segmentation.py flags]

Each phase is the time spent in the functions named beside it (wrapped, not changed). Phases inside the
training loop are part of it: "waiting for synthesis" is the time the loop waited for the next batch (on
the CPU, where batches are made when asked for, all of the synthesis; on CUDA the part not hidden behind
the U-Net step), "logging and validation" the main process's logging, and "U-Net steps" the rest. Run it
with an empty cache (`rm -rf cache/demo`) to include the held-out folder's generation, as on a fresh clone.
"""

import time

STARTED = time.perf_counter()

import functools  # noqa: E402  (the imports are a phase of their own)
import sys  # noqa: E402
from collections import defaultdict  # noqa: E402
from pathlib import Path  # noqa: E402

import demo.preset  # noqa: E402
import gan_mask_gen  # noqa: E402
import train_segmentation  # noqa: E402

IMPORTED = time.perf_counter()
# phase -> (module, function names); a phase's time is the total time spent in its functions.
PHASES = {
    "demo preset (held-out folder made when missing)": (demo.preset, ["demo_preset"]),
    "inputs loaded and checked": (train_segmentation, ["load_inputs"]),
    "synthetic test set": (train_segmentation, ["make_test_set"]),
    "run files and first picture": (train_segmentation, ["write_run_files"]),
    "training loop": (train_segmentation, ["train_segmentation"]),
    "  waiting for synthesis": (gan_mask_gen.MaskStream, ["__next__"]),
    "  logging and validation": (train_segmentation.RunLog, ["step"]),
    "final scores": (train_segmentation, ["final_scores"]),
    "  baselines (validation folder made when missing)": (demo.preset, ["demo_score_extras"]),
    "prediction pictures": (train_segmentation, ["save_prediction_pictures"]),
}


def timed(function, phase: str, spent: dict):
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            spent[phase] += time.perf_counter() - start

    return wrapper


def profile(argv: list[str]) -> dict[str, float]:
    """Seconds per phase of one demo run with `argv`'s flags."""
    spent: dict[str, float] = defaultdict(float)
    for phase, (owner, names) in PHASES.items():
        for name in names:
            setattr(owner, name, timed(getattr(owner, name), phase, spent))
    start = time.perf_counter()
    score = train_segmentation.main(["--demo", *argv])
    total = time.perf_counter() - start
    loop = spent["training loop"]
    phases = {"imports": IMPORTED - STARTED, **{phase: spent[phase] for phase in PHASES}}
    phases["  U-Net steps"] = loop - spent["  waiting for synthesis"] - spent["  logging and validation"]
    phases["other (model saved, TensorBoard, tables)"] = total - sum(
        spent[phase] for phase in PHASES if not phase.startswith("  ")
    )
    phases["total"] = time.perf_counter() - STARTED
    phases["held-out IoU"] = score["heldout"]["thr"]["IoU"]
    return phases


def print_table(phases: dict[str, float]) -> None:
    total = phases["total"]
    print("\n| phase | seconds | share |\n|---|---:|---:|")
    for phase, seconds in phases.items():
        name = "↳ " + phase.strip() if phase.startswith("  ") else phase
        if phase == "held-out IoU":
            print(f"| {name} | {seconds:.3f} | |")
        else:
            print(f"| {name} | {seconds:.1f} | {seconds / total:.0%} |")


if __name__ == "__main__":
    if "--out" not in sys.argv:
        sys.argv += ["--out", str(Path("results/demo_profile"))]
    print_table(profile(sys.argv[1:]))
