"""The local web demo: explore the background direction, segment an image, inspect a training run.

    pip install -r requirements-app.txt
    python app.py                      # the demo's generator, direction and U-Net: offline, on the CPU
    python app.py --gan_weights BigGAN/weights/BigBiGAN_x1.pth --bg_direction BigGAN/weights/bg_direction.pth

Serves on 127.0.0.1 only, with Gradio's analytics off and no font or script fetched from the internet.
The pages call webapp/ (the same inference and writing code as segment.py); a mistake (a file that is
not an image, weights of the wrong kind, a missing run folder) is shown on the page as a message.
"""

import argparse
import os
import random
import sys
from dataclasses import dataclass
from functools import wraps
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported: it reads it then

import gradio as gr  # noqa: E402
import pandas as pd  # noqa: E402  (gradio's own dependency, for its line plot)

from demo.assets import DEMO_DIRECTION_PATH, DEMO_GENERATOR_CONFIG, DEMO_GENERATOR_PATH  # noqa: E402
from demo.preset import DEMO_TRAINING  # noqa: E402
from refinement import REFINE_CHOICES  # noqa: E402
from train_config import SegmentationTrainParams, parse_json_object  # noqa: E402
from utils.checks import at_least, check_fields  # noqa: E402
from utils.cli import add_debug_flag, run_cli  # noqa: E402
from utils.errors import InputError, UserError  # noqa: E402
from utils.flags import add_flags, device_flag, flag, from_namespace, threads_flag  # noqa: E402
from webapp.explorer import DirectionExplorer  # noqa: E402
from webapp.runs import read_run  # noqa: E402
from webapp.segmenter import (  # noqa: E402
    DEFAULT_RESIZE,
    RUN_CHOICE,
    SEGMENT_RESIZE,
    ImageSegmenter,
    unet_choices,
)

IMAGE_HEIGHT = 280
# System fonts only: the default theme would fetch its fonts from Google.
THEME = gr.themes.Default(font=["system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])


@dataclass
class AppOptions:
    host: str = flag("127.0.0.1", "address to serve on (127.0.0.1: this machine only)")
    port: int = flag(7860, "port to serve on", check=at_least(1))
    run: str = flag("results/demo", "the run folder the 'Inspect a run' tab opens with")
    device: str | None = device_flag()
    threads: int | None = threads_flag()


def shown_on_page(function):
    """A callback whose user errors appear on the page as a message rather than a stack trace."""

    @wraps(function)
    def wrapper(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except UserError as error:
            raise gr.Error(str(error), print_exception=False) from error

    return wrapper


def explorer_tab(explorer: DirectionExplorer, shift: float, gif_dir: Path) -> None:
    gr.Markdown(
        "Move the latent along the background direction d: `G(z)`, `G(z + r d)` and the synthetic mask "
        "(pixels brighter after the shift), with the training filters' verdict on the sample."
    )
    with gr.Row():
        seed = gr.Number(value=0, precision=0, label="seed of the latent z", elem_id="explorer-seed")
        resample = gr.Button("new latent", elem_id="explorer-resample")
        radius = gr.Slider(-10, 10, value=shift, step=0.5, label="shift radius r", elem_id="explorer-radius")
    with gr.Row():
        image = gr.Image(label="G(z)", format="png", height=IMAGE_HEIGHT, elem_id="explorer-image")
        shifted = gr.Image(label="G(z + r d)", format="png", height=IMAGE_HEIGHT, elem_id="explorer-shifted")
        mask = gr.Image(label="synthetic mask", format="png", height=IMAGE_HEIGHT, elem_id="explorer-mask")
    verdict = gr.Textbox(label="the filters' verdict", interactive=False, elem_id="explorer-verdict")
    with gr.Row():
        export = gr.Button("export the walk as a GIF", elem_id="explorer-export")
        gif = gr.File(label="walk.gif", elem_id="explorer-gif")

    @shown_on_page
    def show(seed_value, radius_value):
        sample = explorer.sample(int(seed_value or 0), float(radius_value))
        text = f"{sample.verdict} (mask covers {sample.mask_share:.0%} of the image)"
        return sample.image, sample.shifted, sample.mask, text

    @shown_on_page
    def walk(seed_value):
        seed_value = int(seed_value or 0)
        return str(explorer.walk_gif(seed_value, gif_dir / f"walk_seed_{seed_value}.gif"))

    outputs = [image, shifted, mask, verdict]
    radius.change(show, [seed, radius], outputs)
    seed.change(show, [seed, radius], outputs)
    resample.click(lambda: random.randrange(1_000_000), None, seed)
    export.click(walk, seed, gif)
    return show, [seed, radius], outputs


def segment_tab(segmenter: ImageSegmenter, refiners: list[str], own_unet: Path | None) -> None:
    choices = unet_choices(own_unet)
    first = next(iter(choices))
    gr.Markdown(
        "Upload an image: the U-Net's probability map, its thresholded mask and an overlay, computed as "
        "`segment.py` computes them; the mask PNG is the file `segment.py` writes."
    )
    with gr.Row():
        upload = gr.File(label="image", type="filepath", elem_id="segment-upload")
        with gr.Column():
            unet = gr.Dropdown(list(choices), value=first, label="U-Net", elem_id="segment-unet")
            run_unet = gr.Textbox(label="path of a segmentation.pth", elem_id="segment-path")
            resize = gr.Textbox(
                value=str(DEFAULT_RESIZE.get(first, SEGMENT_RESIZE)),
                label="shorter side the U-Net sees (px, or none: native size)",
                elem_id="segment-resize",
            )
            refine = gr.Radio(refiners, value="none", label="refinement", elem_id="segment-refine")
            thr = gr.Slider(0.01, 1.0, value=0.5, step=0.01, label="threshold", elem_id="segment-thr")
    with gr.Row():
        probability = gr.Image(
            label="probability", format="png", height=IMAGE_HEIGHT, elem_id="segment-probability"
        )
        mask = gr.Image(label="mask", format="png", height=IMAGE_HEIGHT, elem_id="segment-mask")
        overlay = gr.Image(label="overlay", format="png", height=IMAGE_HEIGHT, elem_id="segment-overlay")
    download = gr.File(label="mask PNG", elem_id="segment-download")

    @shown_on_page
    def run(path, unet_choice, unet_path, resize_text, refine_name, thr_value):
        if not path:
            return None, None, None, None
        weights = choices.get(unet_choice) or (Path(unet_path.strip()) if unet_path.strip() else None)
        if weights is None:
            raise InputError(f"choose '{RUN_CHOICE}' only with the path of a segmentation.pth")
        result = segmenter.segment(path, weights, float(thr_value), parse_resize(resize_text), refine_name)
        return result.probability, result.mask, result.overlay, str(result.mask_file)

    def default_resize(unet_choice):
        return str(DEFAULT_RESIZE.get(unet_choice, SEGMENT_RESIZE))

    unet.change(default_resize, unet, resize)
    inputs = [upload, unet, run_unet, resize, refine, thr]
    for component in (upload, unet, refine, thr):
        component.change(run, inputs, [probability, mask, overlay, download])
    for component in (run_unet, resize):
        component.submit(run, inputs, [probability, mask, overlay, download])


def parse_resize(text: str) -> int | None:
    text = str(text).strip().lower()
    if text == "none":
        return None
    if not text.isdigit() or int(text) < 16:
        raise InputError(f"shorter side {text!r}: give a whole number of pixels of at least 16, or none")
    return int(text)


def runs_tab(default_run: str) -> None:
    gr.Markdown("A training run's `--out` folder: its final scores, its pictures, its TensorBoard curves.")
    with gr.Row():
        folder = gr.Textbox(value=default_run, label="run folder", elem_id="run-folder")
        show = gr.Button("show", elem_id="run-show")
    scores = gr.Markdown(elem_id="run-scores")
    pictures = gr.Gallery(label="pictures", columns=3, elem_id="run-pictures")
    curves = gr.LinePlot(x="step", y="value", color="curve", label="curves", elem_id="run-curves")

    @shown_on_page
    def inspect(path):
        view = read_run(path)
        rows = pd.DataFrame(view.curves, columns=["step", "value", "curve"])
        return view.scores, [(str(path), caption) for path, caption in view.pictures], rows

    show.click(inspect, folder, [scores, pictures, curves])
    folder.submit(inspect, folder, [scores, pictures, curves])


def build_app(args: argparse.Namespace, options: AppOptions) -> gr.Blocks:
    device = options.device or "cpu"
    demo_generator = args.gan_weights is None
    explorer = DirectionExplorer(
        args.gan_weights or DEMO_GENERATOR_PATH,
        dict(DEMO_GENERATOR_CONFIG) if demo_generator and args.gan_config is None else args.gan_config,
        args.bg_direction or DEMO_DIRECTION_PATH,
        SegmentationTrainParams(latent_shift_r=DEMO_TRAINING["latent_shift_r"]) if demo_generator else None,
        device,
    )
    segmenter = ImageSegmenter(device)
    refiners = [name for name in REFINE_CHOICES if name != "crf" or crf_installed()]
    with gr.Blocks(title="Big GANs Are Watching You", analytics_enabled=False) as app:
        gr.Markdown("# Big GANs Are Watching You: unsupervised object segmentation from a GAN")
        with gr.Tab("Direction explorer"):
            show, inputs, outputs = explorer_tab(explorer, explorer.params.latent_shift_r, segmenter.out_dir)
        with gr.Tab("Segment an image"):
            segment_tab(segmenter, refiners, args.unet)
        with gr.Tab("Inspect a run"):
            runs_tab(options.run)
        app.load(show, inputs, outputs)
    return app


def crf_installed() -> bool:
    try:
        import pydensecrf.densecrf  # noqa: F401
    except ImportError:
        return False
    return True


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="app.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--gan_weights", type=Path, metavar="FILE", help="generator (default: the demo's)")
    parser.add_argument("--gan_config", type=parse_json_object, metavar="JSON", help="generator config")
    parser.add_argument("--bg_direction", type=Path, metavar="FILE", help="direction (default: the demo's)")
    parser.add_argument(
        "--unet", type=Path, metavar="FILE", help="a U-Net to offer beside the demo's and the released ones"
    )
    add_flags(parser, AppOptions, defaults=True)
    add_debug_flag(parser)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    options = from_namespace(AppOptions, args)
    check_fields(options)
    if (args.gan_weights is None) != (args.bg_direction is None):
        raise InputError("give --gan_weights and --bg_direction together (or neither, for the demo's)")
    if options.threads is not None:
        import torch

        torch.set_num_threads(options.threads)
    app = build_app(args, options)
    app.launch(server_name=options.host, server_port=options.port, theme=THEME, footer_links=[])


if __name__ == "__main__":
    sys.exit(run_cli(main))
