#!/usr/bin/env python3
"""Facial expression recognition on a camera, video, image or folder: face detection + a pipeline variant.

    python inference.py --model kd                                   # camera 0 (CSI camera on a Jetson)
    python inference.py --model kd --source clip.mp4 --no-display --output annotated.mp4
    python inference.py --model pr_kd --pr-level high --source photo.jpg --no-display --output out.png
    python inference.py --model ptq_kd --quantize-bits 8 --runtime onnx --source faces/ --no-display --json
    python inference.py --model kd --source clip.mp4 --no-display --evaluate   # -> results/inference/kd.csv

Weights come from the pipeline (`snakemake --cores all weights/<variant>.pt`); see `--help` and README.md.
"""
import os
import sys

# Idle OpenMP workers sleep instead of spinning: on a small shared CPU (2-core runner, Jetson Nano) spinning
# workers fight the camera, the detector and other processes; measured on a busy 2-core machine, a
# 2-thread KD-student forward took 177 ms with spinning and 4 ms without. Must be set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from fer.app import cli  # noqa: E402 (after OMP_WAIT_POLICY: the app loads torch)

if __name__ == "__main__":
    sys.exit(cli.main())
