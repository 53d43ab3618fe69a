"""Mask synthesis against the reference pipeline fixtures, and the batch-refilling generator."""

import time
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from BigGAN.gan_load import UnconditionalBigGAN, make_biggan_config
from BigGAN.model.BigGAN import Generator
from gan_mask_gen import (
    MaskGenerationError,
    MaskGenerator,
    MaskStream,
    MaskSynthesizing,
    area_filter,
    check_masks_vary,
    expected_need,
    maxes_filter,
    mean_thr_mask,
    pair_to_mask,
    rgb2gray,
)
from postprocessing import connected_components_filter
from tests.fixture_files import load_fixture
from tests.reference_impl import mask_batch_reference
from tests.weight_fill import fill_module


@pytest.fixture(scope="module")
def pipeline():
    inputs = load_fixture("mask_pipeline_inputs.pt")
    outputs = load_fixture("mask_pipeline.pt")
    return inputs["img"].float(), inputs["img_shifted"].float(), outputs


def params(**overrides) -> SimpleNamespace:
    values = dict(
        batch_size=16,
        latent_shift_r=5.0,
        synthezing=MaskSynthesizing.LIGHTING,
        mask_size_up=0.5,
        maxes_filter=True,
    )
    return SimpleNamespace(**{**values, **overrides})


def test_rgb2gray_weights():
    img = torch.zeros(1, 3, 1, 1)
    img[0, :, 0, 0] = torch.tensor([1.0, 2.0, 3.0])
    assert rgb2gray(img).item() == pytest.approx(0.2989 + 2 * 0.5870 + 3 * 0.1140)


def test_masks_are_strictly_brighter_pixels():
    """A pixel exactly as bright as the unshifted image, or as the shifted image's mean, is background."""
    img = torch.zeros(1, 3, 1, 3)
    shifted = torch.tensor([0.0, 1.0, 2.0]).expand(1, 3, 1, 3)
    assert pair_to_mask(img, shifted).tolist() == [[[0, 1, 1]]]
    assert mean_thr_mask(shifted).tolist() == [[[0, 0, 1]]]  # the mean is 1.0


def test_masks_and_filters_reproduce_reference(pipeline):
    img, shifted, ref = pipeline
    assert torch.equal(pair_to_mask(img, shifted), ref["pair_to_mask"].long())
    assert torch.equal(mean_thr_mask(shifted), ref["mean_thr_mask"].long())
    assert torch.equal(maxes_filter(shifted), ref["maxes_filter"])
    assert torch.equal(area_filter(ref["connected_components"].long(), 0.5), ref["area_keep"])
    assert torch.equal(area_filter(ref["pair_to_mask"].long(), 0.5), ref["area_keep_raw"])
    assert pair_to_mask(img, shifted).dtype == torch.long


def test_area_filter_is_off_from_one():
    full = torch.ones(3, 4, 4, dtype=torch.long)
    assert area_filter(full, 1.0).all()
    assert not area_filter(full, 0.99).any()


def test_area_filter_rejects_a_mask_exactly_at_the_bound():
    masks = torch.zeros(3, 2, 2, dtype=torch.long)
    masks[0, 0, 0] = 1  # 0.25
    masks[1, 0] = 1  # 0.5, exactly mask_size_up
    masks[2, :, 0] = masks[2, 0, 1] = 1  # 0.75
    assert area_filter(masks, 0.5).tolist() == [True, False, False]


def masks_of_coverage(*ones: int) -> torch.Tensor:
    """A batch of 2x2 masks with the given numbers of foreground pixels."""
    return torch.stack([(torch.arange(4) < count).long().view(2, 2) for count in ones])


@pytest.mark.parametrize("what, ones", [("empty", (0, 0)), ("full", (4, 4)), ("empty", (0, 0, 0))])
def test_a_batch_of_only_empty_or_only_full_masks_is_an_error(what, ones):
    message = (
        f"all {len(ones)} masks of a batch are {what}: the shift by latent_shift_r=2.5 along the direction "
        "does not brighten part of the image; check --bg_direction (a zero or tiny direction?) and "
        "--latent_shift_r"
    )
    with pytest.raises(MaskGenerationError) as error:
        check_masks_vary(masks_of_coverage(*ones), 2.5)
    assert str(error.value) == message


@pytest.mark.parametrize("ones", [(0,), (4,), (0, 4), (0, 1), (3, 4), (1, 2)])
def test_single_masks_and_mixed_batches_pass_the_variety_check(ones):
    check_masks_vary(masks_of_coverage(*ones), 2.5)


def image_with_histogram(counts: list[int]) -> torch.Tensor:
    """A [1, 3, 1, N] image whose 12-bin histogram over all channels is 3 * counts."""
    centres = -1 + (torch.arange(12) + 0.5) / 6
    values = torch.repeat_interleave(centres, torch.tensor(counts))
    return values.view(1, 1, 1, -1).expand(1, 3, 1, -1)


def test_maxes_filter_needs_two_maxima_of_the_smoothed_histogram():
    one_mode = image_with_histogram([1, 2, 3, 4, 5, 6, 7, 6, 5, 4, 3, 2])
    two_modes = image_with_histogram([1, 2, 9, 2, 1, 1, 1, 1, 2, 9, 2, 1])
    end_plateau = image_with_histogram([0, 0, 0, 0, 0, 5, 9, 5, 0, 0, 0, 0])
    kept = [maxes_filter(image).item() for image in (one_mode, two_modes, end_plateau)]
    assert kept == [False, True, True]


class ReplayGenerator(nn.Module):
    """Returns stored images, so the mask pipeline can be checked on the fixture's inputs: a latent's
    first value is the index of its stored image (see `replayed_latents`)."""

    dim_z = 120

    def __init__(self, img, shifted):
        super().__init__()
        self.img, self.shifted = img, shifted

    def forward(self, z):
        return self.img[z[:, 0].long()]

    def gen_shifted(self, z, shift):
        return self.shifted[z[:, 0].long()]


def replayed_latents(count: int) -> torch.Tensor:
    """Latents of the stored images 0 .. count - 1, in order."""
    return torch.arange(count, dtype=torch.float32)[:, None].expand(count, ReplayGenerator.dim_z)


def replay(img, shifted, p, postprocessing=()) -> MaskGenerator:
    """A mask generator over the stored images: each batch of latents is images 0, 1, ... again."""
    generator = MaskGenerator(ReplayGenerator(img, shifted), torch.zeros(120), p, (), postprocessing)
    generator.make_noise = replayed_latents
    return generator


def test_generator_filters_and_refills_like_the_reference(pipeline):
    img, shifted, ref = pipeline
    generator = replay(img, shifted, params(), [connected_components_filter])
    images, masks = generator()
    keep = ref["pipeline_keep"]
    assert keep.sum() == 14
    expected_images = torch.cat([img[keep], img[keep]])[:16]
    expected_masks = torch.cat([ref["connected_components"][keep]] * 2)[:16].long()
    assert torch.equal(images, expected_images)
    assert torch.equal(masks, expected_masks)


class ElementwiseGenerator(nn.Module):
    """4x4 images computed value by value from the latent, so a sample never depends on the others
    generated with it (a real generator's may, by float rounding)."""

    dim_z = 48

    def forward(self, z):
        return torch.sin(3 * z).view(len(z), 3, 4, 4)

    def gen_shifted(self, z, shift):
        return self.forward(z + shift)


def test_generator_keeps_the_originals_samples_and_makes_fewer():
    """Same samples, same random stream as generating every latent of every attempt; the samples made
    past the last one needed are left out."""
    direction = torch.randn(48, generator=torch.Generator().manual_seed(3))
    p = params(batch_size=32, latent_shift_r=1.0, mask_size_up=0.7)  # 96 % pass, as in the demo
    ours = MaskGenerator(ElementwiseGenerator(), direction, p, rng=torch.Generator().manual_seed(4))
    reference = MaskGenerator(ElementwiseGenerator(), direction, p, rng=torch.Generator().manual_seed(4))
    made = []
    make = ours.gen_samples
    ours.gen_samples = lambda z: made.append(len(z)) or make(z)
    generated_before = 0
    for _ in range(5):
        images, masks = ours()
        want_images, want_masks, generated = mask_batch_reference(reference)
        assert torch.equal(images, want_images) and torch.equal(masks, want_masks)
        assert torch.equal(ours.rng.get_state(), reference.rng.get_state())
        generated_before += generated
    assert generated_before > 5 * 32 * 1.5  # the filters drop some samples: attempts are refilled
    assert sum(made) < 0.8 * generated_before
    assert min(made) >= 8  # generator calls stay large enough to be worth making


def test_the_generated_count_follows_the_pass_rate():
    assert expected_need(10, kept=50, generated=100) == 22  # 10 more at 50 %, plus 10 %
    assert expected_need(1, kept=99, generated=100) == 8  # never fewer than 8 at once
    assert expected_need(30, kept=30, generated=30) == 33


def test_generator_names_the_filter_that_rejects_everything(pipeline):
    img, shifted, _ = pipeline
    generator = replay(img, shifted, params(mask_size_up=0.0))
    with pytest.raises(MaskGenerationError, match=r"area filter \(mask_size_up=0.0\) rejected 48"):
        generator(max_retries=3)


def tiny_generator() -> UnconditionalBigGAN:
    config = {**make_biggan_config(128), "G_ch": 4, "resolution": 32, "G_attn": "0"}
    return UnconditionalBigGAN(fill_module(Generator(**config), seed=1)).eval()


def test_generator_uses_the_shifted_latent_and_seeded_noise():
    G = tiny_generator()
    direction = torch.randn(G.dim_z)
    direction /= direction.norm()
    p = params(batch_size=4, mask_size_up=1.0, maxes_filter=False)
    first = MaskGenerator(G, direction, p, rng=torch.Generator().manual_seed(0))
    z = first.make_noise(4)
    img, shifted, mask = first.gen_samples(z)
    torch.testing.assert_close(shifted, G(z + 5.0 * direction))
    assert torch.equal(mask, pair_to_mask(G(z), shifted))
    again = MaskGenerator(G, direction, p, rng=torch.Generator().manual_seed(0))
    assert torch.equal(again.make_noise(4), z)


def test_generator_samples_embeddings_with_noise():
    G = tiny_generator()
    zs = torch.randn(3, G.dim_z)
    generator = MaskGenerator(G, torch.zeros(G.dim_z), params(), zs=zs, z_noise=0.0)
    z = generator.make_noise(10)
    assert all(any(torch.equal(row, e) for e in zs) for row in z)
    noisy = MaskGenerator(G, torch.zeros(G.dim_z), params(), zs=zs, z_noise=0.5).make_noise(10)
    assert not any(torch.equal(row, e) for row in noisy for e in zs)


def test_latents_are_the_seeded_draws_with_and_without_embeddings():
    """N(0, I) from the generator's seed; or seeded rows of the embeddings, plus seeded noise after them."""
    G = tiny_generator()
    zs = torch.randn(5, G.dim_z)

    def latents(**embeddings) -> torch.Tensor:
        rng = torch.Generator().manual_seed(11)
        return MaskGenerator(G, torch.zeros(G.dim_z), params(), rng=rng, **embeddings).make_noise(7)

    g = torch.Generator().manual_seed(11)
    assert torch.equal(latents(), torch.randn(7, G.dim_z, generator=g))
    g = torch.Generator().manual_seed(11)
    rows = torch.randint(0, 5, (7,), generator=g)
    assert torch.equal(latents(zs=zs), zs[rows])
    assert torch.equal(latents(zs=zs, z_noise=0.0), zs[rows])
    noise = torch.randn(7, G.dim_z, generator=g)
    assert torch.equal(latents(zs=zs, z_noise=0.3), zs[rows] + 0.3 * noise)


def test_mean_thr_masks_and_preprocessing_reach_the_masks():
    G = tiny_generator()
    direction = torch.randn(G.dim_z)
    z = torch.randn(3, G.dim_z, generator=torch.Generator().manual_seed(4))
    img, shifted = G(z), G(z + 5.0 * direction)
    mean_thr = MaskGenerator(G, direction, params(synthezing=MaskSynthesizing.MEAN_THR))
    assert torch.equal(mean_thr.gen_samples(z)[2], mean_thr_mask(shifted))

    def negate(images: torch.Tensor) -> torch.Tensor:
        return -images

    negated = MaskGenerator(G, direction, params(), mask_preprocessing=[negate])
    image, image_shifted, mask = negated.gen_samples(z)
    assert torch.equal(mask, pair_to_mask(-img, -shifted))
    assert torch.equal(mask, 1 - pair_to_mask(img, shifted) - (rgb2gray(img) == rgb2gray(shifted)).long())
    assert torch.equal(image, img) and torch.equal(image_shifted, shifted)  # the pair itself is not changed


@pytest.mark.parametrize("background", [True, False])
def test_stream_yields_the_generator_sequence_and_resumes_from_its_state(background):
    G = tiny_generator()
    direction = torch.randn(G.dim_z)
    p = params(batch_size=3, mask_size_up=1.0, maxes_filter=False)

    def generator():
        return MaskGenerator(G, direction, p, rng=torch.Generator().manual_seed(5))

    direct = generator()
    expected = [direct() for _ in range(3)]
    with MaskStream(generator(), background=background) as stream:
        first = next(stream)
        state = stream.rng_state
        rest = [next(stream), next(stream)]
    for got, want in zip([first, *rest], expected, strict=True):
        assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
    resumed = generator()
    resumed.rng.set_state(state)
    assert torch.equal(resumed()[0], expected[1][0])


class BrokenGenerator(nn.Module):
    dim_z = 4

    def forward(self, z):
        raise RuntimeError("generator exploded")


def stream_generator(seed: int = 5) -> MaskGenerator:
    G = tiny_generator()
    direction = torch.randn(G.dim_z, generator=torch.Generator().manual_seed(1))
    p = params(batch_size=2, mask_size_up=1.0, maxes_filter=False)
    return MaskGenerator(G, direction, p, rng=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("background", [True, False])
def test_stream_state_before_any_batch_is_the_generators_start(background):
    """Resuming from a stream that handed out nothing starts the sequence from its beginning."""
    start = stream_generator().rng.get_state()
    with MaskStream(stream_generator(), background=background) as stream:
        assert torch.equal(stream.rng_state, start)


def test_a_slow_consumer_loses_no_batch():
    """The worker waits for room in the queue as long as it takes, not only for one poll interval."""
    direct = stream_generator()
    expected = [direct() for _ in range(3)]
    with MaskStream(stream_generator(), background=True) as stream:
        got = []
        for _ in range(3):
            time.sleep(0.3)  # longer than the worker's 0.1 s poll of a full queue
            got.append(next(stream))
    for (image, mask), (want_image, want_mask) in zip(got, expected, strict=True):
        assert torch.equal(image, want_image) and torch.equal(mask, want_mask)


def test_close_stops_a_worker_blocked_on_a_full_queue():
    stream = MaskStream(stream_generator(), background=True)
    next(stream)
    time.sleep(0.3)  # the worker has made the next batch and waits for room
    stream.close()
    assert not stream.worker.is_alive()


def test_the_stream_works_one_batch_ahead_only():
    """Batches wait in memory (on the GPU) until used: one is queued, one more waits for room."""
    generator = stream_generator()
    calls = []
    make_batch = generator.forward
    generator.forward = lambda: calls.append(1) or make_batch()
    with MaskStream(generator, background=True) as stream:
        next(stream)
        deadline = time.monotonic() + 30
        while len(calls) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)  # room for a fourth call, were there one
        assert len(calls) == 3  # the batch handed out, the queued one, the one waiting for room


def test_an_unclosed_stream_does_not_keep_the_program_alive():
    """The worker is a daemon thread: a script that forgets `close()` still exits."""
    with MaskStream(stream_generator(), background=True) as stream:
        assert stream.worker.daemon


def test_a_cpu_stream_makes_each_batch_when_asked_and_a_cuda_one_in_a_thread(monkeypatch):
    """On CPUs synthesis and training share the cores; on CUDA the worker overlaps them."""
    generator = stream_generator()
    calls = []
    make_batch = generator.forward
    generator.forward = lambda: calls.append(1) or make_batch()
    with MaskStream(generator) as stream:
        time.sleep(0.3)  # a worker would have made a batch by now
        assert stream.worker is None and calls == []
        next(stream)
        assert calls == [1]
    monkeypatch.setattr(MaskGenerator, "device", property(lambda self: torch.device("cuda")))
    monkeypatch.setattr(MaskStream, "_produce", lambda self: None)  # this machine may have no CUDA
    with MaskStream(stream_generator()) as on_cuda:
        assert on_cuda.worker is not None


@pytest.mark.parametrize("background", [True, False])
def test_stream_raises_worker_errors_in_the_consumer(background):
    stream = MaskStream(MaskGenerator(BrokenGenerator(), torch.zeros(4), params()), background=background)
    with pytest.raises(RuntimeError, match="generator exploded"):
        next(stream)
