"""The embedded demo world: procedural single-object images with exact masks, a small BigGAN trained on
them, and the background direction found in it, so the whole method can be run and scored on a CPU
without downloading anything.
"""
