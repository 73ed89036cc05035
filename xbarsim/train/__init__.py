"""Hardware-aware training (PyTorch)."""
