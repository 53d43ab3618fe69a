"""Step 1 of the conversion (tf_tools.tfhub_to_h5) on a checkpoint that TensorFlow itself writes, with
the module's variable names; skipped where TensorFlow is not installed (requirements-tf.txt)."""

import numpy as np
import pytest
import torch

from BigGAN.model.BigGAN import Generator
from tests.weight_fill import fill_module
from tf_tools.bigbigan2biggan import convert, convert_file
from tf_tools.h5_variables import open_variables
from tf_tools.mapping import GENERATOR_SCOPE, tf_variables
from tf_tools.tfhub_module import MODULE_URL
from utils.cli import run_cli

tf = pytest.importorskip("tensorflow")
tfhub_to_h5 = pytest.importorskip("tf_tools.tfhub_to_h5")


def write_module(module_dir, variables: dict[str, np.ndarray]) -> None:
    """A TF-Hub-like module folder: `variables/variables.*` written by a name-based TF1 Saver."""
    saver = tf.compat.v1.train.Saver(var_list={name: tf.Variable(value) for name, value in variables.items()})
    (module_dir / "variables").mkdir(parents=True)
    saver.save(None, str(module_dir / "variables" / "variables"), write_meta_graph=False, write_state=False)


def test_a_tf_checkpoint_dumps_to_the_variables_it_holds_and_converts(tmp_path, reference_results):
    config = reference_results["generator_small"]["config"]
    variables = tf_variables(fill_module(Generator(**config), seed=7).state_dict(), config)
    variables[GENERATOR_SCOPE + "BatchNorm/accumulation_counter"] = np.int32(1000)
    variables["GenEncWrapper/Encoder/linear/w"] = np.ones((3, 2), np.float32)
    write_module(tmp_path / "module", variables)

    tfhub_to_h5.main(["--module", str(tmp_path / "module"), "--out", str(tmp_path / "vars.h5")])
    with open_variables(tmp_path / "vars.h5") as dumped:
        assert sorted(dumped) == sorted(variables)
        for name, value in variables.items():
            assert dumped[name].dtype == value.dtype and np.array_equal(dumped[name][()], value), name

    convert_file(tmp_path / "vars.h5", tmp_path / "G.pth", config)
    state = torch.load(tmp_path / "G.pth", weights_only=True)
    expected = convert(variables, config)
    assert state.keys() == expected.keys()
    assert all(torch.equal(state[key], expected[key]) for key in expected)


def test_a_missing_module_says_what_to_download(tmp_path, capsys):
    argv = ["--module", str(tmp_path / "absent"), "--out", str(tmp_path / "vars.h5")]
    assert run_cli(tfhub_to_h5.main, argv) == 1
    assert MODULE_URL in capsys.readouterr().err
    assert not (tmp_path / "vars.h5").exists()
