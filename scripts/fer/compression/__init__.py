"""Compression of a trained student: structured pruning (torch-pruning), quantization (brevitas), size."""
