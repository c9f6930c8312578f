"""Training: config, data, margin-head trainer, optimizers for BNNs, resume."""
