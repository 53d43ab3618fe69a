"""Helpers shared by the scripts: devices, strict weight loading, run bookkeeping."""
