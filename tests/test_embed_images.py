"""embed_images.py: inversion of images of known latents, the files it writes, its flag checks, the tfhub
method's messages without TensorFlow or a module, and bigbigan_embeddings.ipynb."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import embed_images
from BigGAN.gan_load import make_big_gan
from demo.assets import DEMO_GENERATOR_CONFIG, DEMO_GENERATOR_CONFIG_PATH, DEMO_GENERATOR_PATH
from gan_inversion import TFHUB_INSTALL_HINT, file_list_path, generator_inputs, pixel_errors
from tests.notebooks import execute_notebook, image_count, printed_text
from tf_tools.tfhub_module import MODULE_URL
from utils.cli import run_cli
from utils.inputs import load_embeddings
from visualization import to_unit_range

DEMO_FLAGS = ["--gan_weights", str(DEMO_GENERATOR_PATH), "--gan_config", str(DEMO_GENERATOR_CONFIG_PATH)]
HAS_TENSORFLOW = importlib.util.find_spec("tensorflow") is not None


@pytest.fixture(scope="module")
def demo_generator():
    return make_big_gan(DEMO_GENERATOR_PATH, device="cpu", config=DEMO_GENERATOR_CONFIG)


@pytest.fixture(scope="module")
def known_latents_folder(demo_generator, tmp_path_factory) -> Path:
    """8-bit PNGs of G(z) for 8 latents drawn from N(0, I), named in batch order."""
    folder = tmp_path_factory.mktemp("known") / "images"
    folder.mkdir()
    z = torch.randn(8, demo_generator.dim_z, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        pixels = (to_unit_range(demo_generator(z)) * 255).round().byte().permute(0, 2, 3, 1).numpy()
    for index, picture in enumerate(pixels):
        Image.fromarray(picture).save(folder / f"{index:02d}.png")
    return folder


def embed(images: Path, out: Path, *flags: str) -> int:
    return run_cli(embed_images.main, ["--images", str(images), "--out", str(out), *DEMO_FLAGS, *flags])


@pytest.mark.slow
def test_images_of_known_latents_are_reconstructed(demo_generator, known_latents_folder, tmp_path):
    out = tmp_path / "z.npy"
    assert embed(known_latents_folder, out, "--device", "cpu", "--batch_size", "3") == 0
    zs = load_embeddings(out, demo_generator.dim_z)  # what train_segmentation.py --z reads
    assert np.load(out).dtype == np.float32 and zs.shape == (8, demo_generator.dim_z)
    assert file_list_path(out).read_text().splitlines() == [f"{index:02d}.png" for index in range(8)]
    assert (zs.norm(dim=1) <= demo_generator.dim_z**0.5 + 1e-4).all()
    targets = torch.stack(list(generator_inputs(known_latents_folder, 32)))
    with torch.no_grad():
        error = (demo_generator(zs) - targets).pow(2).mean()
        baseline = (demo_generator(torch.zeros_like(zs)) - targets).pow(2).mean()
    assert error <= 0.1 * baseline, (error, baseline)


def test_embeddings_do_not_depend_on_the_run_and_reconstruct_as_well_at_any_batch_size(
    demo_generator, known_latents_folder, tmp_path
):
    runs = {"a": ["--batch_size", "8"], "b": ["--batch_size", "8"], "c": ["--batch_size", "3"]}
    for name, flags in runs.items():
        assert (
            embed(known_latents_folder, tmp_path / f"{name}.npy", "--device", "cpu", "--steps", "20", *flags)
            == 0
        )
    a, b, c = (torch.from_numpy(np.load(tmp_path / f"{name}.npy")) for name in runs)
    assert torch.equal(a, b)
    # Another batch size changes only the float rounding of the convolutions, which Adam can amplify in
    # a latent (by how much depends on the machine). What a user gets must not change: each row is still
    # its own image's, and reconstructs it as well, within a tenth of what the inversion gained over z = 0.
    assert torch.equal(torch.cdist(c, a).argmin(dim=1), torch.arange(len(a)))
    targets = torch.stack(list(generator_inputs(known_latents_folder, 32)))
    with torch.no_grad():
        start, error_a, error_c = (
            pixel_errors(demo_generator, z, targets) for z in (torch.zeros_like(a), a, c)
        )
    assert ((error_c - error_a).abs() < 0.1 * (start - error_a)).all()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--out", "z.txt"], "--out z.txt: name a .npy file"),
        (["--steps", "0"], "--steps 0: must be a whole number of at least 1"),
        (["--rate", "-1"], "--rate -1.0: must be a finite number above 0"),
        (["--images", "no_such_folder"], "image folder no_such_folder does not exist"),
    ],
)
def test_bad_flags_are_named(flags, message, known_latents_folder, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    argv = ["--images", str(known_latents_folder), "--out", "z.npy", *DEMO_FLAGS, "--device", "cpu", *flags]
    assert run_cli(embed_images.main, argv) == 1
    assert message in capsys.readouterr().err
    assert not list(tmp_path.glob("z.*"))


def fake_module_files(module_dir: Path) -> None:
    (module_dir / "variables").mkdir(parents=True)
    for name in ("saved_model.pb", "variables/variables.index", "variables/variables.data-00000-of-00001"):
        (module_dir / name).write_bytes(b"")


def test_tfhub_without_a_module_says_what_to_download(known_latents_folder, tmp_path, capsys):
    module = tmp_path / "tfhub" / "bigbigan-resnet50"
    assert (
        embed(known_latents_folder, tmp_path / "z.npy", "--method", "tfhub", "--tfhub_module", str(module))
        == 1
    )
    err = capsys.readouterr().err
    assert MODULE_URL in err and str(module / "variables" / "variables.index") in err
    assert not (tmp_path / "z.npy").exists()


@pytest.mark.skipif(HAS_TENSORFLOW, reason="TensorFlow is installed here")
def test_tfhub_without_tensorflow_says_how_to_install_it(known_latents_folder, tmp_path, capsys):
    fake_module_files(tmp_path / "module")
    flags = ["--method", "tfhub", "--tfhub_module", str(tmp_path / "module")]
    assert embed(known_latents_folder, tmp_path / "z.npy", *flags) == 1
    assert TFHUB_INSTALL_HINT in capsys.readouterr().err


def write_tf1_encoder_module(module_dir: Path) -> None:
    """A TF1 SavedModel shaped like the BigBiGAN module's encoder: default graph variant (no tags),
    signature `encode` with input `default` [N, 256, 256, 3] and outputs `z_sample`, `z_mean`; here
    z_sample is each image's mean colour tiled to 120 values, times a variable (2)."""
    tf = pytest.importorskip("tensorflow")
    graph = tf.Graph()
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as session:
        images = tf.compat.v1.placeholder(tf.float32, [None, 256, 256, 3])
        scale = tf.compat.v1.get_variable("scale", initializer=2.0)
        z = tf.tile(tf.reduce_mean(images, axis=[1, 2]), [1, 40]) * scale
        session.run(tf.compat.v1.global_variables_initializer())
        signature = tf.compat.v1.saved_model.predict_signature_def(
            {"default": images}, {"z_sample": z, "z_mean": z}
        )
        builder = tf.compat.v1.saved_model.Builder(str(module_dir))
        builder.add_meta_graph_and_variables(session, [], signature_def_map={"encode": signature})
        builder.save()


@pytest.mark.skipif(not HAS_TENSORFLOW, reason="needs TensorFlow (requirements-tf.txt)")
def test_tfhub_encodes_inputs_prepared_as_the_original(known_latents_folder, tmp_path):
    module = tmp_path / "module"
    write_tf1_encoder_module(module)
    out = tmp_path / "z.npy"
    assert embed(known_latents_folder, out, "--method", "tfhub", "--tfhub_module", str(module)) == 0
    zs = np.load(out)
    assert zs.shape == (8, 120) and zs.dtype == np.float32
    with Image.open(known_latents_folder / "00.png") as image:
        resized = image.convert("RGB").resize((256, 256), Image.Resampling.BILINEAR)  # square: no crop
    mean_colour = (np.asarray(resized, dtype=np.float32) / 255 * 2 - 1).mean(axis=(0, 1))
    np.testing.assert_allclose(zs[0, :3], 2 * mean_colour, atol=1e-4)


@pytest.mark.slow
def test_notebook_inverts_shows_and_saves(tmp_path):
    out = tmp_path / "z.npy"
    outputs = execute_notebook(
        "bigbigan_embeddings.ipynb",
        {"DEMO_FOLDER": str(tmp_path / "demo_slice"), "DEMO_IMAGES": 6, "STEPS": 30, "OUT": str(out)},
    )
    assert np.load(out).shape == (6, 120)
    assert file_list_path(out).is_file()
    assert image_count(outputs) == 1 and "reconstruction error" in printed_text(outputs)
