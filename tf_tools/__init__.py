"""Conversion of the TF-Hub BigBiGAN generator to `BigGAN.model.BigGAN.Generator` weights.

Two steps, so that only the first needs TensorFlow: `tfhub_to_h5` dumps the module's variables to
HDF5, `bigbigan2biggan` maps them to a state dict with PyTorch and h5py alone.
"""
