#!/usr/bin/env bash
# Downloads the published BigBiGAN weights, its background direction and the latent embeddings of the
# training datasets into the folders train_segmentation.py looks in. Safe to rerun: finished files are
# kept, interrupted ones are resumed.
set -euo pipefail
cd "$(dirname "$0")"

fetch() {  # fetch URL DEST
    local url=$1 dest=$2
    if [ -s "$dest" ]; then echo "have $dest"; return; fi
    mkdir -p "$(dirname "$dest")"
    echo "downloading $dest"
    if command -v wget >/dev/null; then
        wget -q --show-progress -c -O "$dest.part" "$url"
    else
        curl -L --fail -C - -o "$dest.part" "$url"
    fi
    mv "$dest.part" "$dest"
}

# BigBiGAN generator converted to the BigGAN-PyTorch layout, and the background-darkening direction.
fetch https://www.dropbox.com/s/9w2i45h455k3b4p/BigBiGAN_x1.pth BigGAN/weights/BigBiGAN_x1.pth
fetch https://www.dropbox.com/s/np74kmkohkbx76t/bg_direction.pth BigGAN/weights/bg_direction.pth

# BigBiGAN encoder embeddings of the training images (latents to sample from with --z).
fetch https://www.dropbox.com/s/y5qr9wwtop7ot6b/BigBiGAN_ImageNet_z.npy embeddings/BigBiGAN_ImageNet_z.npy
fetch https://www.dropbox.com/s/b77in0vuc8jy1yf/BigBiGAN_DUTS-TR_z.npy embeddings/BigBiGAN_DUTS-TR_z.npy
fetch https://www.dropbox.com/s/qgacaoo7urh35j9/BigBiGAN_CUB_train_z.npy embeddings/BigBiGAN_CUB_train_z.npy
fetch https://www.dropbox.com/s/fmw2g54xqli59ck/BigBiGAN_Flowers_train_z.npy embeddings/BigBiGAN_Flowers_train_z.npy
