"""The TF-Hub BigBiGAN conversion (tf_tools): the original chain's per-key fingerprints, an exact round
trip, errors that name variables, and the notebook. Step 1 (TensorFlow) is in test_conversion_tf.py."""

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from BigGAN.gan_load import UnconditionalBigGAN, make_big_gan
from BigGAN.model.BigGAN import Generator
from tests.fixture_files import FIXTURES
from tests.notebooks import execute_notebook, image_count, printed_text
from tests.weight_fill import fill_module
from tf_tools.bigbigan2biggan import ConversionError, convert, convert_file, main
from tf_tools.h5_variables import write_variables
from tf_tools.mapping import GENERATOR_SCOPE, generator_mapping, target_generator, tf_variables
from tf_tools.tfhub_module import MODULE_URL
from utils.cli import run_cli

FINGERPRINT_WEIGHTS_SEED = 12345


def variable_list() -> dict[str, list[int]]:
    """Section 8 of the reference README: TF name -> shape."""
    lines = (FIXTURES / "bigbigan_tfhub_generator_variables.txt").read_text().splitlines()
    rows = (line.split("\t") for line in lines if not line.startswith("#"))
    return {name: json.loads(shape) for name, shape in rows}


def fill_tf_variables(shapes: dict[str, list[int]], seed: int) -> dict[str, np.ndarray]:
    """The deterministic fill of the TF variables (section 9 of the reference README)."""
    filled = {}
    for index, name in enumerate(sorted(shapes)):
        shape = shapes[name]
        g = torch.Generator().manual_seed(seed * 1_000_003 + index)
        if "accumulation_counter" in name:
            value = torch.tensor(1000.0 + index)
        elif "accumulated_var" in name:
            value = torch.rand(shape, generator=g) + 0.5
        elif "accumulated_mean" in name:
            value = 0.1 * torch.randn(shape, generator=g)
        elif len(shape) >= 2:
            value = torch.randn(shape, generator=g) / math.prod(shape[:-1]) ** 0.5
        else:
            value = 0.1 * torch.randn(shape, generator=g) + (1.0 if "scale" in name.split("/") else 0.0)
        filled[name] = value.numpy().astype(np.float32)
    return filled


def fingerprint(tensor: torch.Tensor) -> tuple[list[int], float, float]:
    """Shape, sum and a position-weighted sum, as in conversion_fingerprints_seed0.json."""
    g = torch.Generator().manual_seed(FINGERPRINT_WEIGHTS_SEED)
    weights = torch.rand(tensor.numel(), generator=g, dtype=torch.float64) - 0.5
    values = tensor.double().flatten()
    return list(tensor.shape), values.sum().item(), (values * weights).sum().item()


@pytest.fixture(scope="module")
def small_config(reference_results) -> dict:
    return reference_results["generator_small"]["config"]


@pytest.fixture(scope="module")
def small_generator(small_config) -> Generator:
    """A filled narrow generator whose class embedding has one row repeated, as BigBiGAN's has."""
    generator = fill_module(Generator(**small_config), seed=5)
    with torch.no_grad():
        generator.shared.weight.copy_(generator.shared.weight[:1].expand_as(generator.shared.weight))
    return generator


@pytest.fixture()
def small_variables(small_generator, small_config) -> dict[str, np.ndarray]:
    """Its TF variables, with the ones the conversion must not read set to NaN, and an encoder variable."""
    variables = tf_variables(small_generator.state_dict(), small_config)
    unused = generator_mapping(target_generator(small_config)).unused
    for name in unused:
        ema = variables.get(GENERATOR_SCOPE + name + "/ema_0.9999")
        variables[GENERATOR_SCOPE + name] = np.full(ema.shape if ema is not None else (), np.nan, np.float32)
    variables["GenEncWrapper/Encoder/linear/w"] = np.zeros((4, 2), np.float32)
    return variables


def test_mapping_covers_exactly_the_variable_list_with_its_shapes():
    generator = target_generator()
    mapping = generator_mapping(generator)
    targets = generator.state_dict()
    read = {rule.source: list(rule.layout.to_tf(targets[rule.key]).shape) for rule in mapping.rules}
    expected = {name.removeprefix(GENERATOR_SCOPE): shape for name, shape in variable_list().items()}
    assert {name: expected[name] for name in read} == read
    assert set(read) | mapping.unused == set(expected)
    assert sorted(rule.key for rule in mapping.rules) == sorted(
        key for key in targets if not key.endswith(".sv0")
    )


@pytest.fixture
def scratch(tmp_path):
    """tmp_path, emptied after the test: full-size variables and weights take hundreds of MB, and pytest
    keeps the folders of failed tests (in mutation testing, of every killed mutant)."""
    yield tmp_path
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_conversion_reproduces_the_original_fingerprints(scratch, capsys):
    tmp_path = scratch
    reference = json.loads((FIXTURES / "conversion_fingerprints_seed0.json").read_text())
    write_variables(tmp_path / "vars.h5", fill_tf_variables(variable_list(), reference["seed"]).items())
    main(["--h5", str(tmp_path / "vars.h5"), "--out", str(tmp_path / "G.pth")])
    assert capsys.readouterr().out == (
        f"wrote {len(reference['keys'])} tensors (moving averages of the weights) to {tmp_path / 'G.pth'}\n"
    )
    state = torch.load(tmp_path / "G.pth", weights_only=True)
    assert sorted(state) == sorted(reference["keys"])
    for key, (shape, total, weighted) in reference["keys"].items():
        got_shape, got_total, got_weighted = fingerprint(state[key])
        assert got_shape == shape, key
        assert got_total == pytest.approx(total, rel=1e-9, abs=1e-12), key
        assert got_weighted == pytest.approx(weighted, rel=1e-9, abs=1e-12), key
    make_big_gan(tmp_path / "G.pth", device="cpu")  # loads strictly


def test_round_trip_gives_the_same_state_dict_and_images(
    tmp_path, small_generator, small_config, small_variables
):
    write_variables(tmp_path / "vars.h5", small_variables.items())
    convert_file(tmp_path / "vars.h5", tmp_path / "G.pth", small_config)
    converted = make_big_gan(tmp_path / "G.pth", device="cpu", config=small_config)
    original, restored = small_generator.state_dict(), converted.big_gan.state_dict()
    for key in original:
        if not key.endswith(".sv0"):
            assert torch.equal(original[key], restored[key]), key
    z = torch.randn(4, converted.dim_z, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(UnconditionalBigGAN(small_generator)(z), converted(z))


def test_an_outer_scope_is_accepted_once(small_config, small_variables):
    nested = {"module/" + name: value for name, value in small_variables.items()}
    plain = convert(small_variables, small_config)
    converted = convert(nested, small_config)
    assert converted.keys() == plain.keys()
    assert all(torch.equal(converted[key], plain[key]) for key in plain)
    name = GENERATOR_SCOPE + "conv_2d/u0"
    with pytest.raises(ConversionError, match=f"several scopes: {name}, module/{name}$"):
        convert({**small_variables, "module/" + name: small_variables[name]}, small_config)


def test_unknown_missing_and_misshaped_variables_are_named_and_nothing_is_written(
    tmp_path, small_config, small_variables, capsys
):
    scope = GENERATOR_SCOPE
    del small_variables[scope + "GBlock_2/conv1/w/ema_0.9999"]
    small_variables[scope + "GBlock/conv0/u1"] = np.zeros((1, 64), np.float32)
    small_variables[scope + "conv_2d/b/ema_0.9999"] = np.zeros(4, np.float32)
    with pytest.raises(ConversionError) as error:
        convert(small_variables, small_config)
    message = str(error.value)
    assert f"unknown (1): {scope}GBlock/conv0/u1" in message
    assert f"missing (1): {scope}GBlock_2/conv1/w/ema_0.9999" in message
    assert f"wrong shape (1): {scope}conv_2d/b/ema_0.9999: file [4] vs expected [3]" in message

    write_variables(tmp_path / "vars.h5", small_variables.items())
    out = tmp_path / "G.pth"
    assert run_cli(main, ["--h5", str(tmp_path / "vars.h5"), "--out", str(out)]) == 1
    assert capsys.readouterr().err.startswith("error: the variables of")
    assert not out.exists()


def test_a_file_without_the_generator_scope_is_refused(tmp_path, capsys):
    write_variables(tmp_path / "vars.h5", [("module/Generator/linear/w", np.zeros((1, 2), np.float32))])
    assert run_cli(main, ["--h5", str(tmp_path / "vars.h5"), "--out", str(tmp_path / "G.pth")]) == 1
    assert f"has no variables under {GENERATOR_SCOPE}" in capsys.readouterr().err
    assert run_cli(main, ["--h5", str(tmp_path / "absent.h5"), "--out", str(tmp_path / "G.pth")]) == 1
    assert "absent.h5 does not exist" in capsys.readouterr().err


def notebook_parameters(tmp_path: Path, **overrides) -> dict:
    return {
        "MODULE_DIR": str(tmp_path / "tfhub" / "bigbigan-resnet50"),
        "VARIABLES_H5": str(tmp_path / "tfhub" / "bigbigan-resnet50.h5"),
        "OUT": str(tmp_path / "BigBiGAN_x1_converted.pth"),
        "EXISTING": str(tmp_path / "BigBiGAN_x1.pth"),
        "GAN_CONFIG": None,
        "SAMPLES": 4,
        "SEED": 0,
        **overrides,
    }


@pytest.mark.slow
def test_notebook_without_a_module_says_what_to_download(tmp_path):
    text = printed_text(execute_notebook("bigbigan2biggan.ipynb", notebook_parameters(tmp_path)))
    assert MODULE_URL in text
    assert str(tmp_path / "tfhub" / "bigbigan-resnet50" / "variables" / "variables.index") in text
    assert not (tmp_path / "BigBiGAN_x1_converted.pth").exists()


@pytest.mark.slow
def test_notebook_converts_shows_and_compares(tmp_path, small_generator, small_config, small_variables):
    parameters = notebook_parameters(tmp_path, GAN_CONFIG=small_config)
    Path(parameters["VARIABLES_H5"]).parent.mkdir()
    write_variables(parameters["VARIABLES_H5"], small_variables.items())
    torch.save(small_generator.state_dict(), parameters["EXISTING"])
    outputs = execute_notebook("bigbigan2biggan.ipynb", parameters)
    text = printed_text(outputs)
    assert "largest pixel difference" in text and ": 0 (range" in text
    assert image_count(outputs) == 2


def test_the_command_line_needs_both_files_and_says_what_they_are(capsys):
    with pytest.raises(SystemExit):
        main(["--h5", "vars.h5"])
    assert "the following arguments are required: --out" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--out", "G.pth"])
    assert "the following arguments are required: --h5" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert (
        "Step 2 of the conversion (PyTorch and h5py only): TF-Hub BigBiGAN generator variables -> state dict."
        in shown
    )
    assert "--h5 H5 variables file written by tf_tools.tfhub_to_h5" in shown
    assert "--out OUT state dict to write (BigGAN/weights/BigBiGAN_x1.pth)" in shown
    assert "python -m tf_tools.bigbigan2biggan" not in shown  # the first paragraph only


def test_every_mismatch_is_listed_in_one_message_naming_the_source(tmp_path, small_config, small_variables):
    scope = GENERATOR_SCOPE
    for name in ("GBlock/conv0/u1", "GBlock/conv0/u2"):
        small_variables[scope + name] = np.zeros((1, 64), np.float32)
    del small_variables[scope + "GBlock_2/conv1/w/ema_0.9999"]
    small_variables[scope + "conv_2d/b/ema_0.9999"] = np.zeros(4, np.float32)
    with pytest.raises(ConversionError) as error:
        convert(small_variables, small_config)
    assert str(error.value) == (
        "the variables of the input do not match the BigBiGAN generator: "
        f"unknown (2): {scope}GBlock/conv0/u1, {scope}GBlock/conv0/u2; "
        f"missing (1): {scope}GBlock_2/conv1/w/ema_0.9999; "
        f"wrong shape (1): {scope}conv_2d/b/ema_0.9999: file [4] vs expected [3]"
    )
    write_variables(tmp_path / "vars.h5", small_variables.items())
    with pytest.raises(ConversionError, match=f"^the variables of {tmp_path / 'vars.h5'} do not match"):
        convert_file(tmp_path / "vars.h5", tmp_path / "G.pth", small_config)


def test_an_input_without_the_generator_scope_shows_its_first_names():
    names = ["d/x", "c/x", "b/x", "a/x"]
    with pytest.raises(ConversionError) as error:
        convert(dict.fromkeys(names, np.zeros(1, np.float32)))
    assert str(error.value) == (
        f"the input has no variables under {GENERATOR_SCOPE}, so it is not a dump of the TF-Hub BigBiGAN "
        "module (4 variables, e.g. a/x, b/x, c/x)"
    )
    with pytest.raises(ConversionError, match=r"\(0 variables, e.g. none\)$"):
        convert({})


def test_only_whole_scope_names_count_and_values_become_float32(tmp_path, small_config, small_variables):
    plain = convert(small_variables, small_config)
    lookalike = "Not" + GENERATOR_SCOPE + "conv_2d/u0"
    doubled = {name: np.asarray(value, np.float64) for name, value in small_variables.items()}
    converted = convert({**doubled, lookalike: small_variables[GENERATOR_SCOPE + "conv_2d/u0"]}, small_config)
    assert all(
        converted[key].dtype == torch.float32 and torch.equal(converted[key], plain[key]) for key in plain
    )
    write_variables(tmp_path / "vars.h5", small_variables.items())
    assert convert_file(tmp_path / "vars.h5", tmp_path / "new" / "dir" / "G.pth", small_config) == len(plain)
    assert (tmp_path / "new" / "dir" / "G.pth").is_file()
