"""Training speed: images/s of the teacher and student training loops, and the time of the whole recipe.

    .venv/bin/python bench/training_speed.py [--dataset results/data/dataset.pt] [--epochs 3] [--threads 2]
                                             [--config override.yaml] [--full]

The data are a prepared dataset (``results/data/dataset.pt`` from ``snakemake data``) or, by default, a
CK+-sized synthetic set made in memory (118 subjects, about 975 images, the size of the Kaggle CK+48 copy). For
each model it runs :func:`fer.models.training.fit` — the loop the training rules use, with augmentation,
per-epoch validation and checkpointing — for ``--epochs`` epochs with the config's ``models``, ``train``,
``augment`` and ``kd`` sections, and reports the loop's images/s (the ``images_per_s`` of the training history,
validation not included) and the wall time per epoch. It also times the model math alone (forward + backward +
optimizer step on a fixed batch, no data handling) as the ceiling. The KD student learns from the teacher just
trained here.

The config is config/config.yaml with ``--config`` (an override file, as ``--configfile``) merged over it.
``--full`` runs the configured recipe (teacher, KD student, scratch student with their configured epochs) and
prints its total wall time. On a shared machine the figures are only as good as the machine was idle: the
1-minute load average is printed with them.
"""
import argparse
import dataclasses
import logging
import os
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml

from fer import config as fer_config
from fer.data import datasets, synthetic
from fer.models import nets, training
from fer.settings import KD, Arch, Augment, TrainHP


def load(args):
    if args.dataset:
        ds = datasets.load_prepared(args.dataset)
        return datasets.subset(ds, "train") + datasets.subset(ds, "val")
    imgs, labels, _ = synthetic.load_arrays(n_subjects=118, seed=0)
    imgs, labels = torch.from_numpy(imgs[:981]), torch.from_numpy(labels[:981]).long()
    n_train = int(0.85 * len(imgs))
    return imgs[:n_train], labels[:n_train], imgs[n_train:], labels[n_train:]


def frozen(model):
    """The trained teacher as the KD runs use it: eval mode, parameters frozen."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def model_math(arch, batch, threads, steps=8):
    torch.set_num_threads(threads)
    m = nets.FERNet(**arch).to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(m.parameters(), 1e-3)
    x = torch.randn(batch, 1, 48, 48).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 7, (batch,))
    times = []
    for _ in range(steps + 2):
        t = time.perf_counter()
        loss = F.cross_entropy(m(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t)
    times = sorted(times[2:])
    return batch / times[len(times) // 2]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", help="a prepared dataset.pt (default: CK+-sized synthetic set in memory)")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--config", help="a config override file merged over config/config.yaml")
    ap.add_argument("--full", action="store_true", help="also time the whole configured recipe")
    ap.add_argument("--precisions", help="comma-separated, e.g. fp32,bf16: each model trained in each precision, "
                                         "side by side in this run (default: the config's train.precision)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    cfg = fer_config.load(yaml.safe_load(Path(args.config).read_text()) if args.config else None,
                          base_dir=fer_config.REPO)
    augment, kd = Augment.of(cfg["augment"]), KD.of(cfg["kd"])
    device = training.resolve_device(cfg["train"]["device"])
    torch.set_num_threads(args.threads)
    tx, ty, vx, vy = load(args)
    print(f"data: {len(tx)} train / {len(vx)} val images; threads {args.threads}; "
          f"load average {os.getloadavg()[0]:.2f}")
    rows = []
    precisions = [training.resolve_precision(p, device) for p in
                  (args.precisions.split(",") if args.precisions else [cfg["train"]["precision"]])]
    with tempfile.TemporaryDirectory() as tmp:
        for precision in precisions:  # one block per precision, the models in order inside
            teacher_model = None
            for name, role, distil in (("teacher", "teacher", False), ("kd", "student", True),
                                       ("scratch", "student", False)):
                arch = Arch.of(cfg["models"][role])
                hp = TrainHP.of(cfg["train"][role])
                if not args.full:
                    hp = dataclasses.replace(hp, epochs=args.epochs)
                training.set_seed(0)
                m = nets.FERNet(channels=arch.channels, hidden=arch.hidden, dropout=arch.dropout)
                t0 = time.perf_counter()
                res = training.fit(m, tx, ty, vx, vy, hp=hp, augment_cfg=augment, seed=0,
                                   teacher=teacher_model if distil else None, kd=kd if distil else None,
                                   checkpoint=Path(tmp) / f"{name}_{precision}.pt", desc=name, data_key="bench",
                                   progress=False, precision=precision, device=device)
                wall = time.perf_counter() - t0
                if name == "teacher":
                    teacher_model = frozen(m)
                ips = sorted(h["images_per_s"] for h in res["history"])
                rows.append((name, precision, hp.epochs, ips[len(ips) // 2], wall / hp.epochs, wall,
                             res["best_val_acc"], model_math(arch.as_dict(), hp.batch_size, args.threads)))
    print(f"{'model':8} {'prec':>5} {'epochs':>6} {'loop img/s (median)':>20} {'s/epoch':>8} {'wall s':>8} "
          f"{'best val acc':>12} {'model math img/s (fp32)':>24}")
    for r in rows:
        print(f"{r[0]:8} {r[1]:>5} {r[2]:>6} {r[3]:>20.0f} {r[4]:>8.2f} {r[5]:>8.1f} {r[6]:>12.3f} {r[7]:>24.0f}")
    label = "whole configured recipe" if args.full else f"{args.epochs} epochs each"
    for precision in precisions:
        total = sum(r[5] for r in rows if r[1] == precision)
        print(f"total {precision} ({label}): {total:.1f} s")
    if len(precisions) > 1:
        base = precisions[0]
        for r in rows:
            if r[1] != base:
                ref = next(q for q in rows if q[0] == r[0] and q[1] == base)
                print(f"{r[0]}: {r[1]} loop {r[3] / ref[3]:.2f}x the images/s of {base}, wall {ref[5] / r[5]:.2f}x "
                      f"faster, best val acc {100 * (r[6] - ref[6]):+.1f} points")
    print(f"load average now {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
