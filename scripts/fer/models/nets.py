"""Teacher and student CNNs for 48x48 grayscale faces.

Both are the same family: three Conv->BN->ReLU->MaxPool blocks and a two-layer classifier. The order
Conv->BN->ReLU lets BN fold into the conv before quantization. Layer names (``features.conv1`` ...,
``classifier.fc1``, ``classifier.fc2``) are stable: pruning ratios and quantization refer to them.

A pruned model is again an :class:`FERNet`, only narrower, so every float variant is described by its
``arch`` dict and a plain ``state_dict``. ``batchnorm=False`` (arch key ``"batchnorm": false``) is the same
network with BN folded into the convs (each conv then has a bias): the fp16_* variants are stored that way.
"""
from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from fer import CLASSES, IMAGE_SIZE

class FERNet(nn.Module):
    # widths come from the config (models.teacher / models.student in config/config.yaml), never from here
    def __init__(self, channels, hidden, dropout, num_classes=len(CLASSES),
                 in_size=IMAGE_SIZE, in_channels=1, batchnorm=True):
        super().__init__()
        self.arch = {"channels": [int(c) for c in channels], "hidden": int(hidden), "dropout": float(dropout),
                     "num_classes": int(num_classes), "in_size": int(in_size), "in_channels": int(in_channels)}
        if not batchnorm:  # BN folded into the convs (fp16_* variants); the key appears only then
            self.arch["batchnorm"] = False
        layers = OrderedDict()
        prev = in_channels
        size = in_size
        for i, c in enumerate(channels, start=1):
            layers[f"conv{i}"] = nn.Conv2d(prev, c, kernel_size=3, padding=1, bias=not batchnorm)
            if batchnorm:
                layers[f"bn{i}"] = nn.BatchNorm2d(c)
            layers[f"relu{i}"] = nn.ReLU(inplace=True)
            layers[f"pool{i}"] = nn.MaxPool2d(2)
            prev = c
            size //= 2
        self.features = nn.Sequential(layers)
        self.classifier = nn.Sequential(OrderedDict([
            ("flatten", nn.Flatten()),
            ("fc1", nn.Linear(prev * size * size, hidden)),
            ("relu", nn.ReLU(inplace=True)),
            ("dropout", nn.Dropout(dropout)),
            ("fc2", nn.Linear(hidden, num_classes)),
        ]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def build(arch: dict) -> FERNet:
    """An :class:`FERNet` from an ``arch`` dict (as saved in every checkpoint)."""
    keys = ("channels", "hidden", "dropout", "num_classes", "in_size", "in_channels", "batchnorm")
    return FERNet(**{k: arch[k] for k in keys if k in arch})


def current_arch(model: FERNet) -> dict:
    """The arch dict of a (possibly pruned) FERNet, read from its layers rather than from its constructor."""
    convs = [m for n, m in model.features.named_children() if n.startswith("conv")]
    arch = dict(model.arch)
    arch["channels"] = [m.out_channels for m in convs]
    arch["hidden"] = model.classifier.fc1.out_features
    arch["num_classes"] = model.classifier.fc2.out_features
    return arch
