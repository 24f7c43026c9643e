"""Deployment: ONNX export, onnxruntime sessions, local latency benchmarks and the Jetson over SSH."""
