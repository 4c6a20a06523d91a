"""TorchRL-compatible environments and transforms backed by numbarl.core."""
