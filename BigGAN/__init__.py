"""BigGAN generator port (BigGAN-PyTorch layout), weight loading and latent shifting."""
