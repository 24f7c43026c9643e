"""The CNNs (teacher and student family) and the training loop (cross-entropy and distillation)."""
