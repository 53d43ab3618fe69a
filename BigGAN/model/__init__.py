"""The BigGAN generator and its layers, in the BigGAN-PyTorch state-dict layout."""
