"""Edge-aware refinement of a probability map: the fast bilateral solver (Barron & Poole, "The Fast
Bilateral Solver", ECCV 2016), or a fully connected CRF (Kraehenbuehl & Koltun, NeurIPS 2011) through
the optional `pydensecrf2`. Opt-in (`--refine bilateral|crf`); the unrefined map stays the default.

The solver finds the map `x` closest to the U-Net's map `t` where the U-Net is confident, and smooth
where the image is: it minimises `lam/2 sum_ij W_ij (x_i - x_j)^2 + sum_i c_i (x_i - t_i)^2`, with
`W` a bilateral affinity (pixels near in position and colour). In a bilateral grid (each pixel splatted
to the vertex of its cell in (x, y, luma, chroma) space) and after bistochastising the grid's blur,
that is the sparse linear system `(lam (D_m - D_n B D_n) + diag(S c)) y = S (c * t)` over the grid's
vertices, solved by preconditioned conjugate gradients; a pixel's refined value is its vertex's.
"""

from dataclasses import dataclass

import numpy as np
import scipy.sparse
import scipy.sparse.linalg
import torch

from utils.checks import one_of
from utils.errors import InputError
from utils.flags import flag

GRID_DIMENSIONS = 5  # x, y, luma, two chroma
BISTOCHASTIC_ITERATIONS = 10
# RGB -> YUV (JPEG's YCbCr without the offset), on 0..255 values.
RGB_TO_YUV = np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])


@dataclass(frozen=True)
class BilateralSolverConfig:
    """Cell sizes of the grid and the smoothness weight, chosen on the demo's validation range
    (docs/beyond.md). The spatial cell is a fraction of the image's shorter side, so that the choice
    carries over to images of other sizes; colour cells are in 0..255 levels."""

    spatial_fraction: float = 0.125
    sigma_luma: float = 32.0
    sigma_chroma: float = 32.0
    lam: float = 64.0
    cg_iterations: int = 30

    def sigma_spatial(self, height: int, width: int) -> float:
        return max(1.0, self.spatial_fraction * min(height, width))


class BilateralGrid:
    """The pixels of one image splatted to the vertices of a 5-d grid, and the grid's [1 2 1] blur."""

    def __init__(self, rgb: np.ndarray, config: BilateralSolverConfig):
        height, width = rgb.shape[:2]
        yuv = rgb.reshape(-1, 3).astype(np.float64) @ RGB_TO_YUV.T
        rows, columns = np.mgrid[:height, :width]
        position = np.stack([columns.ravel(), rows.ravel()], 1) / config.sigma_spatial(height, width)
        colour = yuv / np.array([config.sigma_luma, config.sigma_chroma, config.sigma_chroma])
        cells = np.floor(np.concatenate([position, colour], 1)).astype(np.int64)
        cells -= cells.min(0) - 1  # from 1, so that the neighbours at -1 stay non-negative
        self._base = int(cells.max()) + 2
        keys, self.vertex_of_pixel = np.unique(self._key(cells), return_inverse=True)
        self.vertex_of_pixel = self.vertex_of_pixel.ravel()
        self.size = len(keys)
        pixels = np.arange(len(cells))
        self.splat_matrix = scipy.sparse.csr_matrix(
            (np.ones(len(cells)), (self.vertex_of_pixel, pixels)), shape=(self.size, len(cells))
        )
        vertex_cells = np.zeros((self.size, GRID_DIMENSIONS), np.int64)
        vertex_cells[self.vertex_of_pixel] = cells
        # The [1 2 1] blur along every dimension: 2 * dims * the centre, plus the neighbours.
        self.blur_matrix = 2 * GRID_DIMENSIONS * scipy.sparse.identity(
            self.size, format="csr"
        ) + self._neighbour_matrix(keys, vertex_cells)

    def _key(self, cells: np.ndarray) -> np.ndarray:
        return cells @ (self._base ** np.arange(GRID_DIMENSIONS, dtype=np.int64))

    def _neighbour_matrix(self, keys: np.ndarray, vertex_cells: np.ndarray) -> scipy.sparse.csr_matrix:
        """Sum over the dimensions of the adjacency to the two vertices one cell away, where present."""
        sources, targets = [], []
        for dimension in range(GRID_DIMENSIONS):
            for step in (-1, 1):
                moved = vertex_cells.copy()
                moved[:, dimension] += step
                wanted = self._key(moved)
                found = np.minimum(np.searchsorted(keys, wanted), self.size - 1)
                present = keys[found] == wanted
                sources.append(np.flatnonzero(present))
                targets.append(found[present])
        sources, targets = np.concatenate(sources), np.concatenate(targets)
        return scipy.sparse.csr_matrix(
            (np.ones(len(sources)), (sources, targets)), shape=(self.size, self.size)
        )

    def splat(self, values: np.ndarray) -> np.ndarray:
        return self.splat_matrix @ values

    def blur(self, values: np.ndarray) -> np.ndarray:
        return self.blur_matrix @ values

    def slice(self, vertex_values: np.ndarray) -> np.ndarray:
        return vertex_values[self.vertex_of_pixel]


def bistochastic_normalisers(grid: BilateralGrid) -> tuple[np.ndarray, np.ndarray]:
    """`(m, n)` with `diag(n) B diag(n) 1 = m`: the blur normalised so that every pixel counts once."""
    counts = grid.splat(np.ones(grid.splat_matrix.shape[1]))
    n = np.ones(grid.size)
    for _ in range(BISTOCHASTIC_ITERATIONS):
        n = np.sqrt(n * counts / grid.blur(n))
    return n * grid.blur(n), n


def bilateral_solve(
    rgb: np.ndarray, target: np.ndarray, confidence: np.ndarray, config: BilateralSolverConfig
) -> np.ndarray:
    """The solver's output `[H, W]` for a target map and its per-pixel confidence, on `rgb` `[H, W, 3]`
    (0..255)."""
    grid = BilateralGrid(rgb, config)
    m, n = bistochastic_normalisers(grid)
    normaliser = scipy.sparse.diags(n)
    smoothness = scipy.sparse.diags(m) - normaliser @ grid.blur_matrix @ normaliser
    vertex_confidence = grid.splat(confidence.ravel())
    system = config.lam * smoothness + scipy.sparse.diags(vertex_confidence)
    right_side = grid.splat((confidence * target).ravel())
    start = right_side / np.maximum(vertex_confidence, 1e-8)
    jacobi = scipy.sparse.diags(1 / np.maximum(system.diagonal(), 1e-8))
    solution, _ = scipy.sparse.linalg.cg(system, right_side, x0=start, M=jacobi, maxiter=config.cg_iterations)
    return grid.slice(solution).reshape(target.shape)


class BilateralRefiner:
    """`refine(image [3, H, W] in [-1, 1], probability [H, W]) -> refined probability [H, W]`: the
    U-Net's map as target, its margin `|2p - 1|` as confidence (sure pixels stay, unsure ones follow the
    image's edges)."""

    def __init__(self, config: BilateralSolverConfig = BilateralSolverConfig()):
        self.config = config

    def __call__(self, image: torch.Tensor, probability: torch.Tensor) -> torch.Tensor:
        rgb = ((image.detach().float().cpu().permute(1, 2, 0) + 1) * 127.5).clamp(0, 255).numpy()
        target = probability.detach().float().cpu().numpy().astype(np.float64)
        confidence = np.abs(2 * target - 1)
        refined = bilateral_solve(rgb, target, confidence, self.config)
        return torch.from_numpy(np.clip(refined, 0, 1)).to(probability)


@dataclass(frozen=True)
class DenseCrfConfig:
    """The CRF's two Potts kernels and its mean-field steps, chosen on the demo's validation range
    (docs/beyond.md). Spatial widths are fractions of the image's shorter side, as the solver's cell."""

    bilateral_fraction: float = 0.25
    sigma_rgb: float = 32.0
    bilateral_weight: float = 80.0
    smoothness_fraction: float = 0.03
    smoothness_weight: float = 0.0  # the position-only kernel; 0: left out (as chosen)
    iterations: int = 5


class DenseCrfRefiner:
    """`refine(image, probability) -> refined probability`, as `BilateralRefiner`: the U-Net's map as
    the unary term, the mean-field marginal of the foreground as the output."""

    def __init__(self, config: DenseCrfConfig = DenseCrfConfig()):
        try:
            import pydensecrf.densecrf as densecrf
        except ImportError as error:
            raise InputError(
                "--refine crf needs pydensecrf2, which is not installed: "
                "pip install -r requirements-crf.txt (it builds with a C++ compiler)"
            ) from error
        self.densecrf, self.config = densecrf, config

    def __call__(self, image: torch.Tensor, probability: torch.Tensor) -> torch.Tensor:
        config = self.config
        rgb = ((image.detach().float().cpu().permute(1, 2, 0) + 1) * 127.5).clamp(0, 255)
        rgb = np.ascontiguousarray(rgb.round().numpy().astype(np.uint8))
        p = probability.detach().float().cpu().numpy().clip(1e-5, 1 - 1e-5)
        height, width = p.shape
        side = min(height, width)
        crf = self.densecrf.DenseCRF2D(width, height, 2)
        crf.setUnaryEnergy(np.ascontiguousarray(-np.log(np.stack([1 - p, p]).reshape(2, -1))))
        if config.smoothness_weight:
            smoothness_sxy = max(1.0, config.smoothness_fraction * side)
            crf.addPairwiseGaussian(sxy=smoothness_sxy, compat=config.smoothness_weight)
        crf.addPairwiseBilateral(
            sxy=max(1.0, config.bilateral_fraction * side),
            srgb=config.sigma_rgb,
            rgbim=rgb,
            compat=config.bilateral_weight,
        )
        marginals = np.array(crf.inference(config.iterations)).reshape(2, height, width)
        return torch.from_numpy(marginals[1].astype(np.float32)).to(probability)


REFINERS = {"bilateral": BilateralRefiner, "crf": DenseCrfRefiner}
REFINE_CHOICES = ("none", *REFINERS)


def refine_flag():
    """`--refine`, the same in train_segmentation.py (final scores), evaluate.py, segment.py and
    self_train.py."""
    return flag(
        "none",
        "refine the probability map before its threshold: none (the paper's), bilateral (the fast "
        "bilateral solver) or crf (a dense CRF, needs requirements-crf.txt); docs/beyond.md",
        parse=str,
        check=one_of(REFINE_CHOICES),
        metavar="{none,bilateral,crf}",
    )


def make_refiner(
    name: str, config: BilateralSolverConfig | DenseCrfConfig | None = None
) -> BilateralRefiner | DenseCrfRefiner | None:
    """The refiner a `--refine` value names (None for `none`), with its default parameters unless
    `config` is given."""
    if name == "none":
        return None
    refiner = REFINERS[name]
    return refiner(config) if config is not None else refiner()
