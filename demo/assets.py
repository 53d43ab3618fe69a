"""Where the demo's generator, direction and trained U-Net live, and the configuration that rebuilds the
generator."""

from pathlib import Path

ASSETS_DIR = Path(__file__).parent / "assets"
DEMO_GENERATOR_PATH = ASSETS_DIR / "generator.pth"
DEMO_GENERATOR_CONFIG_PATH = ASSETS_DIR / "generator_config.json"
DEMO_DIRECTION_PATH = ASSETS_DIR / "bg_direction.pth"
DEMO_UNET_PATH = ASSETS_DIR / "unet.pth"  # the README demo run's U-Net, for the web demo and torch.hub
DEMO_PROVENANCE_PATH = ASSETS_DIR / "PROVENANCE.md"

# Keyword arguments of BigGAN.model.BigGAN.Generator. The 32-px BigGAN layout at width 12 (G 12*4 = 48
# channels per block) was the widest that trained in minutes on one CPU core; hier splits dim_z 120
# into 4 chunks of 30. With a single class the shared embedding is a learnt constant, so 32 dims suffice.
DEMO_GENERATOR_CONFIG = {
    "G_ch": 12,
    "dim_z": 120,
    "bottom_width": 4,
    "resolution": 32,
    "G_attn": "0",
    "n_classes": 1,
    "G_shared": True,
    "shared_dim": 32,
    "hier": True,
    "BN_eps": 1e-5,
    "SN_eps": 1e-6,
    "num_G_SVs": 1,
    "num_G_SV_itrs": 1,
    "G_activation": "relu",
    "norm_style": "bn",
}
