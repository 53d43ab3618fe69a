"""Which TF-Hub BigBiGAN generator variable becomes which `Generator` state-dict entry, and how.

The rules are derived from a `Generator` instance, so they follow its layout (blocks, attention,
shortcuts) and shapes. TF names are given below the generator scope `GenEncWrapper/Generator/`.
As in the original work's conversion, the exponential moving averages (`.../ema_0.9999`) of the
weights, biases, BN scales and offsets are used; spectral-norm vectors `u0` and BN statistics have
no average. The layout differences handled:

- dense weights are `[in, out]` in TF, `[out, in]` here; conv kernels HWIO in TF, OIHW here;
- the first linear layer's outputs are ordered (h, w, c) in TF, (c, h, w) here;
- the conditional BN linears take `[z chunk, class embedding]` in TF, `[class embedding, z chunk]` here;
- BigBiGAN has one class: its `[1, shared_dim]` embedding fills every row of `shared.weight`;
- the attention `gamma` is `[1]` in TF and stays `[1]`, as the original conversion leaves it.
"""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from BigGAN.gan_load import make_biggan_config
from BigGAN.model.BigGAN import GBlock, Generator

GENERATOR_SCOPE = "GenEncWrapper/Generator/"
EMA_SUFFIX = "/ema_0.9999"
Transform = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Layout:
    """How a TF value becomes a state-dict tensor (`to_torch`) and back (`to_tf`)."""

    to_torch: Transform
    to_tf: Transform

    def then(self, other: "Layout") -> "Layout":
        """This layout followed by `other`."""
        return Layout(lambda t: other.to_torch(self.to_torch(t)), lambda t: self.to_tf(other.to_tf(t)))


SAME = Layout(lambda t: t, lambda t: t)
DENSE = Layout(lambda t: t.t(), lambda t: t.t())
CONV = Layout(lambda t: t.permute(3, 2, 0, 1), lambda t: t.permute(2, 3, 1, 0))
ONE_ELEMENT = Layout(lambda t: t.reshape(1), lambda t: t.reshape(1))


def class_columns_first(class_dim: int) -> Layout:
    """Moves the last `class_dim` input columns of an `[out, in]` weight to the front."""
    return Layout(lambda t: t.roll(class_dim, dims=1), lambda t: t.roll(-class_dim, dims=1))


def channels_first_outputs(channels: int, width: int) -> Layout:
    """Reorders the last axis, `width * width * channels` long, from (h, w, c) to (c, h, w)."""

    def to_torch(t: torch.Tensor) -> torch.Tensor:
        lead = t.shape[:-1]
        return t.reshape(*lead, width, width, channels).movedim(-1, -3).reshape(*lead, -1)

    def to_tf(t: torch.Tensor) -> torch.Tensor:
        lead = t.shape[:-1]
        return t.reshape(*lead, channels, width, width).movedim(-3, -1).reshape(*lead, -1)

    return Layout(to_torch, to_tf)


def single_class_embedding(n_classes: int) -> Layout:
    """BigBiGAN's one class embedding repeated for every class id (`to_tf` keeps row 0)."""
    return Layout(lambda t: t.repeat(n_classes, 1), lambda t: t[:1])


@dataclass(frozen=True)
class Rule:
    """State-dict entry `key` is TF variable `tf_name` (its moving average if `averaged`) in `layout`."""

    key: str
    tf_name: str
    layout: Layout
    averaged: bool

    @property
    def source(self) -> str:
        """The TF name the value is read from."""
        return self.tf_name + EMA_SUFFIX if self.averaged else self.tf_name


@dataclass(frozen=True)
class GeneratorMapping:
    """The rules of one generator, and the TF names it recognises but does not read."""

    rules: list[Rule]
    unused: frozenset[str]


def target_generator(config: dict | None = None) -> Generator:
    """A `Generator` of `make_biggan_config(128)` updated by `config`: the layout and shapes to convert to."""
    return Generator(**{**make_biggan_config(128), **(config or {})})


def _sn_layer(key: str, scope: str, layer, weight: Layout, vector: Layout = SAME) -> list[Rule]:
    rules = [
        Rule(f"{key}.weight", f"{scope}/w", weight, True),
        Rule(f"{key}.u0", f"{scope}/u0", vector, False),
    ]
    if layer.bias is not None:
        rules.append(Rule(f"{key}.bias", f"{scope}/b", vector, True))
    return rules


def _statistics(key: str, scope: str) -> list[Rule]:
    return [
        Rule(f"{key}.stored_mean", f"{scope}/accumulated_mean", SAME, False),
        Rule(f"{key}.stored_var", f"{scope}/accumulated_var", SAME, False),
    ]


def _conditional_bn(key: str, scope: str, bn, class_dim: int) -> list[Rule]:
    weight = DENSE.then(class_columns_first(class_dim))
    rules = _sn_layer(f"{key}.gain", f"{scope}/scale", bn.gain, weight)
    rules += _sn_layer(f"{key}.bias", f"{scope}/offset", bn.bias, weight)
    return rules + _statistics(key, scope)


def _block(key: str, scope: str, block: GBlock, class_dim: int) -> list[Rule]:
    rules = _sn_layer(f"{key}.conv1", f"{scope}/conv0", block.conv1, CONV)
    rules += _sn_layer(f"{key}.conv2", f"{scope}/conv1", block.conv2, CONV)
    if block.learnable_sc:
        rules += _sn_layer(f"{key}.conv_sc", f"{scope}/conv_sc", block.conv_sc, CONV)
    rules += _conditional_bn(f"{key}.bn1", f"{scope}/BatchNorm", block.bn1, class_dim)
    return rules + _conditional_bn(f"{key}.bn2", f"{scope}/BatchNorm_1", block.bn2, class_dim)


def _attention(key: str, scope: str, attention) -> list[Rule]:
    rules = []
    for name, tf_name in (("theta", "theta"), ("phi", "phi"), ("g", "g"), ("o", "o_conv")):
        rules += _sn_layer(f"{key}.{name}", f"{scope}/{tf_name}", getattr(attention, name), CONV)
    return rules + [Rule(f"{key}.gamma", f"{scope}/gamma", ONE_ELEMENT, True)]


def generator_mapping(generator: Generator) -> GeneratorMapping:
    """The rules for every state-dict entry of `generator` except the `sv0` logs (TF has none)."""
    first_outputs = channels_first_outputs(generator.in_channels[0], generator.bottom_width)
    rules = [Rule("shared.weight", "linear/w", single_class_embedding(generator.n_classes), True)]
    rules += _sn_layer("linear", "GenZ/G_linear", generator.linear, first_outputs.then(DENSE), first_outputs)
    for index, stage in enumerate(generator.blocks):
        scope = "GBlock" if index == 0 else f"GBlock_{index}"
        rules += _block(f"blocks.{index}.0", scope, stage[0], generator.shared_dim)
        if len(stage) > 1:
            rules += _attention(f"blocks.{index}.1", "attention", stage[1])
    rules += [
        Rule("output_layer.0.gain", "BatchNorm/scale", SAME, True),
        Rule("output_layer.0.bias", "BatchNorm/offset", SAME, True),
    ]
    rules += _statistics("output_layer.0", "BatchNorm")
    rules += _sn_layer("output_layer.2", "conv_2d", generator.output_layer[2], CONV)
    plain_copies = {rule.tf_name for rule in rules if rule.averaged}
    counters = {
        rule.tf_name.replace("accumulated_mean", "accumulation_counter")
        for rule in rules
        if rule.key.endswith(".stored_mean")
    }
    return GeneratorMapping(rules, frozenset(plain_copies | counters))


def tf_variables(state: dict[str, torch.Tensor], config: dict | None = None) -> dict[str, np.ndarray]:
    """The inverse mapping: the TF variables (full names) that convert to `state`.

    `shared.weight` must repeat one row (BigBiGAN's single class); row 0 is kept.
    """
    mapping = generator_mapping(target_generator(config))
    return {
        GENERATOR_SCOPE + rule.source: rule.layout.to_tf(state[rule.key]).contiguous().numpy()
        for rule in mapping.rules
    }
