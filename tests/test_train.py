"""Training: the KD loss against a hand computation, determinism, and resume from a per-epoch checkpoint."""
from __future__ import annotations

import math
import shutil

import pytest
import torch

from fer import config as fer_config
from fer import files, settings
from fer.models import nets, training

TINY = {"channels": [4, 8, 8], "hidden": 16, "dropout": 0.2}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models: a second intra-op thread only adds waiting on a busy machine (and the rule jobs run with
    ``threads`` from the config anyway)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

# ------------------------------------------------------------------------------------------------ KD loss
STUDENT = [[1.0, 2.0, 0.5], [0.2, -0.3, 1.5]]
TEACHER = [[2.0, 1.0, 0.1], [0.0, 0.5, 2.5]]
TARGETS = [1, 2]


def _softmax(v):
    e = [math.exp(x) for x in v]
    return [x / sum(e) for x in e]


def test_kd_loss_matches_hand_computation():
    """alpha * T^2 * mean_i KL(p_i || q_i) + (1 - alpha) * mean_i CE, with p = softmax(t/T), q = softmax(s/T)."""
    T, alpha = 2.0, 0.7
    kl = 0.0
    for s, t in zip(STUDENT, TEACHER):
        p = _softmax([x / T for x in t])
        q = _softmax([x / T for x in s])
        kl += sum(pj * (math.log(pj) - math.log(qj)) for pj, qj in zip(p, q))
    kl /= len(STUDENT)  # "batchmean": sum over classes, mean over samples
    ce = sum(-math.log(_softmax(s)[y]) for s, y in zip(STUDENT, TARGETS)) / len(STUDENT)
    expected = alpha * T * T * kl + (1 - alpha) * ce
    assert expected == pytest.approx(0.3049836837, abs=1e-9)  # the same numbers, written down once
    got = training.kd_loss(torch.tensor(STUDENT), torch.tensor(TEACHER), torch.tensor(TARGETS), T, alpha)
    assert float(got) == pytest.approx(expected, rel=1e-6)


def test_kd_loss_limits():
    s, t, y = torch.tensor(STUDENT), torch.tensor(TEACHER), torch.tensor(TARGETS)
    ce = torch.nn.functional.cross_entropy(s, y)
    assert float(training.kd_loss(s, t, y, 3.0, 0.0)) == pytest.approx(float(ce), rel=1e-6)
    # a student that already matches the teacher pays only the hard-label part
    assert float(training.kd_loss(s, s.clone(), y, 4.0, 0.7)) == pytest.approx(0.3 * float(ce), rel=1e-5)


# ---------------------------------------------------------------------------------------------- fitting
def _data(n_train=48, n_val=16, seed=0):
    """Learnable toy data: class c is a bright square at one of 7 positions on a noisy background."""
    g = torch.Generator().manual_seed(seed)
    n = n_train + n_val
    y = torch.arange(n) % 7
    x = torch.randint(0, 60, (n, 48, 48), generator=g, dtype=torch.uint8)
    for i, c in enumerate(y.tolist()):
        r, col = 4 + 6 * c, 4 + 5 * c
        x[i, r:r + 10, col:col + 10] = 220
    return x[:n_train], y[:n_train], x[n_train:], y[n_train:]


AUGMENT = settings.Augment.of(fer_config.defaults()["augment"])


def _fit(seed=0, init_seed=0, teacher=None, checkpoint=None, epochs=2, weight_decay=1e-4, data_key="",
         precision="fp32", mixup=0.0, ema=0.0, device="cpu", class_balance=0.0, n_train=48, draws_before=0):
    training.set_seed(init_seed)
    model = nets.FERNet(**TINY)
    torch.rand(draws_before)  # what a caller may draw before fit(), e.g. building a teacher after the student
    tx, ty, vx, vy = _data(n_train=n_train)
    hp = settings.TrainHP(epochs=epochs, lr=0.01, batch_size=16, weight_decay=weight_decay, label_smoothing=0.0,
                          warmup_epochs=1, mixup=mixup, ema=ema, class_balance=class_balance)
    kd = settings.KD(temperature=2.0, alpha=0.7) if teacher is not None else None
    result = training.fit(model, tx, ty, vx, vy, hp=hp, augment_cfg=AUGMENT, seed=seed, teacher=teacher, kd=kd,
                          checkpoint=checkpoint, desc="train", data_key=data_key, progress=False,
                          precision=precision, device=device)
    return model, result


def _same_weights(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _without_timing(history):
    return [{k: v for k, v in row.items() if k not in ("seconds", "images_per_s")} for row in history]


def test_fit_is_deterministic_for_a_seed():
    m1, r1 = _fit()
    m2, r2 = _fit()
    assert _same_weights(m1, m2)
    assert _without_timing(r1["history"]) == _without_timing(r2["history"])
    m3, _ = _fit(seed=1, init_seed=1)
    assert not _same_weights(m1, m3)


def test_fit_does_not_depend_on_what_the_caller_drew_before():
    """Dropout uses torch's global generator: fit() seeds it, so building a teacher (or anything that draws)
    between the student's initialisation and fit() leaves the run unchanged. Without that seeding the KD stage
    (teacher built after the student) and the tuning harness (teacher built first) trained different students."""
    m1, r1 = _fit()
    m2, r2 = _fit(draws_before=1000)
    assert _same_weights(m1, m2)
    assert _without_timing(r1["history"]) == _without_timing(r2["history"])


def test_bf16_training_is_deterministic_and_differs_from_fp32():
    """train.precision bf16: autocast in the training steps only; the same seed gives the same weights again,
    other weights than fp32 (the steps really ran in bf16), and the weights stay fp32 tensors."""
    b1, r1 = _fit(precision="bf16")
    b2, _ = _fit(precision="bf16")
    f32, _ = _fit(precision="fp32")
    assert _same_weights(b1, b2)
    assert not _same_weights(b1, f32)
    assert all(v.dtype in (torch.float32, torch.int64) for v in b1.state_dict().values())
    assert all(math.isfinite(h["train_loss"]) for h in r1["history"])


def test_precision_auto_follows_the_cpu(monkeypatch):
    monkeypatch.setattr(training, "cpu_has_amx_bf16", lambda: True)
    assert training.resolve_precision("auto", "cpu") == "bf16"
    monkeypatch.setattr(training, "cpu_has_amx_bf16", lambda: False)
    assert training.resolve_precision("auto", "cpu") == "fp32"
    assert training.resolve_precision("bf16", "cpu") == "bf16" and training.resolve_precision("fp32", "cpu") == "fp32"
    with pytest.raises(ValueError, match="precision"):
        training.resolve_precision("fp8", "cpu")
    with pytest.raises(ValueError, match="fp16 needs train.device cuda"):
        training.resolve_precision("fp16", "cpu")
    with pytest.raises(ValueError, match="resolve 'auto' first"):
        training.resolve_precision("fp32", "auto")
    with pytest.raises(ValueError, match="resolve 'auto' first"):
        _fit(precision="auto")


def test_device_auto_follows_cuda_and_cuda_without_a_gpu_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert training.resolve_device("auto") == "cpu" and training.resolve_device("cpu") == "cpu"
    with pytest.raises(ValueError, match=r"train.device is cuda but .*torch.cuda.is_available\(\) is False"):
        training.resolve_device("cuda")
    with pytest.raises(ValueError, match="train.device must be one of"):
        training.resolve_device("gpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert training.resolve_device("auto") == "cuda"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert training.resolve_precision("auto", "cuda") == "fp16"  # loss-scaled fp16 where bf16 is missing
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert training.resolve_precision("auto", "cuda") == "bf16"
    with pytest.raises(ValueError, match="device must be cpu or cuda"):
        _fit(precision="fp32", device="auto")


def test_mixup_batch_mixes_pairs_with_one_lambda():
    g = torch.Generator().manual_seed(3)
    x = torch.arange(4 * 2, dtype=torch.float32).reshape(4, 1, 1, 2)
    mixed, lam, perm = training.mixup_batch(x, 0.4, g)
    assert 0.0 <= lam <= 1.0 and sorted(perm.tolist()) == [0, 1, 2, 3]
    assert torch.allclose(mixed, lam * x + (1 - lam) * x[perm])
    again = training.mixup_batch(x, 0.4, torch.Generator().manual_seed(3))
    assert again[1] == lam and torch.equal(again[2], perm)  # drawn from the generator: reproducible
    logits, y = torch.tensor(STUDENT), torch.tensor(TARGETS)
    y2 = torch.tensor([0, 1])
    ce = torch.nn.functional.cross_entropy
    assert float(training.mixed_ce(logits, y, 0.0, (0.3, y2))) == pytest.approx(
        0.3 * float(ce(logits, y)) + 0.7 * float(ce(logits, y2)), rel=1e-6)


def test_mixup_changes_training_and_stays_deterministic():
    m1, _ = _fit(mixup=0.4)
    m2, _ = _fit(mixup=0.4)
    plain, _ = _fit()
    assert _same_weights(m1, m2) and not _same_weights(m1, plain)


def test_ema_update_is_the_moving_average_of_the_float_state():
    model = torch.nn.BatchNorm1d(2)
    ema = training.ema_init(model)
    before = {k: v.clone() for k, v in ema.items()}
    with torch.no_grad():
        model.weight.fill_(3.0)
        model.running_mean.fill_(-1.0)
    model.num_batches_tracked.fill_(5)
    training.ema_update(ema, model, 0.75)
    assert torch.allclose(ema["weight"], 0.75 * before["weight"] + 0.25 * 3.0)
    assert torch.allclose(ema["running_mean"], 0.75 * before["running_mean"] + 0.25 * -1.0)
    assert int(ema["num_batches_tracked"]) == 5  # integers are copied, not averaged


def test_ema_selects_averaged_weights_and_stays_deterministic():
    m1, r1 = _fit(ema=0.9, epochs=3)
    m2, _ = _fit(ema=0.9, epochs=3)
    plain, r0 = _fit(epochs=3)
    assert _same_weights(m1, m2) and not _same_weights(m1, plain)
    assert [h["train_loss"] for h in r1["history"]] == [h["train_loss"] for h in r0["history"]]  # same raw steps
    assert [h["val_acc"] for h in r1["history"]] != [h["val_acc"] for h in r0["history"]] or \
        [h["val_loss"] for h in r1["history"]] != [h["val_loss"] for h in r0["history"]]  # validated: the average


def test_class_weights_are_inverse_frequency_with_mean_one():
    y = torch.tensor([0] * 6 + [1] * 3 + [2] * 1 + [4] * 2)  # class 3 has no image
    w = training.class_weights(y, 5, 1.0)
    assert w[3] == 0
    counts = torch.bincount(y, minlength=5).float()
    assert torch.allclose((w * counts).sum() / counts.sum(), torch.tensor(1.0))  # mean weight per image 1
    assert torch.allclose(w[0] * 6, w[1] * 3) and torch.allclose(w[1] * 3, w[2] * 1)  # each class weighs the same
    assert torch.allclose(training.class_weights(y, 5, 0.0)[[0, 1, 2, 4]], torch.ones(4))
    half = training.class_weights(y, 5, 0.5)
    assert w[2] / w[0] > half[2] / half[0] > 1  # the power interpolates
    logits = torch.randn(12, 5, generator=torch.Generator().manual_seed(0))
    manual = -(w[y] * logits.log_softmax(1)[torch.arange(12), y]).sum() / w[y].sum()
    assert torch.allclose(training.mixed_ce(logits, y, 0.0, None, w), manual)


def test_class_balance_changes_training_and_stays_deterministic():
    # 41 training images: class 6 has 5, the others 6 (the toy data cycles the classes)
    m1, r1 = _fit(class_balance=1.0, epochs=2, n_train=41)
    m2, _ = _fit(class_balance=1.0, epochs=2, n_train=41)
    plain, r0 = _fit(epochs=2, n_train=41)
    assert _same_weights(m1, m2) and not _same_weights(m1, plain)
    assert [h["train_loss"] for h in r1["history"]] != [h["train_loss"] for h in r0["history"]]


def test_fit_returns_best_validation_epoch():
    model, r = _fit(epochs=3)
    accs = [h["val_acc"] for h in r["history"]]
    assert len(r["history"]) == 3 and [h["epoch"] for h in r["history"]] == [1, 2, 3]
    assert r["best_val_acc"] == max(accs)
    assert r["history"][r["best_epoch"] - 1]["val_acc"] == max(accs)
    assert not model.training
    _, _, vx, vy = _data()
    acc = float((training.predict_logits(model, vx).argmax(1) == vy).float().mean())
    assert acc == pytest.approx(r["best_val_acc"])  # the model holds the best epoch's weights


class _Interrupt(Exception):
    pass


@pytest.mark.parametrize("kd,ema", [(False, 0.0), (True, 0.0), (False, 0.9)], ids=["ce", "kd", "ce-ema"])
def test_resume_after_interruption_gives_the_same_weights(tmp_path, monkeypatch, kd, ema):
    teacher = None
    if kd:
        training.set_seed(7)
        teacher = nets.FERNet(channels=[8, 8, 8], hidden=16, dropout=0.3).eval()
    full, r_full = _fit(teacher=teacher, epochs=4, ema=ema)

    ck = tmp_path / "ck.pt"
    save = files.save_torch

    def save_then_crash(path, obj):  # the job dies right after the checkpoint of epoch 2 was written
        save(path, obj)
        if obj.get("epoch") == 1:
            raise _Interrupt

    monkeypatch.setattr(files, "save_torch", save_then_crash)
    with pytest.raises(_Interrupt):
        _fit(teacher=teacher, epochs=4, checkpoint=ck, ema=ema)
    monkeypatch.setattr(files, "save_torch", save)
    assert torch.load(ck, weights_only=True)["epoch"] == 1
    kept = tmp_path / "ck_after_epoch2.pt"
    shutil.copy(ck, kept)

    # a new process with another initialisation: only a restored checkpoint can give the same weights
    resumed, r_res = _fit(teacher=teacher, epochs=4, checkpoint=ck, init_seed=99, ema=ema)
    assert _same_weights(full, resumed)
    assert _without_timing(r_full["history"]) == _without_timing(r_res["history"])
    assert r_full["best_epoch"] == r_res["best_epoch"]

    # a checkpoint written with other settings is not used: the run starts from scratch
    other, _ = _fit(teacher=teacher, epochs=4, checkpoint=kept, init_seed=0, weight_decay=0.01)
    fresh, _ = _fit(teacher=teacher, epochs=4, init_seed=0, weight_decay=0.01)
    assert _same_weights(other, fresh)


def test_checkpoint_of_other_data_is_ignored(tmp_path):
    ck = tmp_path / "ck.pt"
    _fit(checkpoint=ck, data_key="aaaa")
    assert ck.exists()
    a, r = _fit(checkpoint=ck, data_key="bbbb")
    b, _ = _fit()
    assert len(r["history"]) == 2 and _same_weights(a, b)


def test_predict_logits_shape_and_empty_input():
    model = nets.FERNet(**TINY)
    x = torch.randint(0, 255, (5, 48, 48), dtype=torch.uint8)
    assert training.predict_logits(model, x, batch_size=2).shape == (5, 7)
    assert training.predict_logits(model, x[:0]).shape == (0, 7)


# ----------------------------------------------------------------------------- recorded teacher logits
def _kd_fit(teacher, *, epochs=3, batch_size=16, init_seed=0, lr=0.01, record=False, recorded=None, checkpoint=None,
            source="data+teacher", precision="fp32", teacher_precision=None):
    training.set_seed(init_seed)
    model = nets.FERNet(**TINY)
    tx, ty, vx, vy = _data()
    hp = settings.TrainHP(epochs=epochs, lr=lr, batch_size=batch_size, weight_decay=1e-4, label_smoothing=0.0,
                          warmup_epochs=1, mixup=0.0, ema=0.0, class_balance=0.0)
    result = training.fit(model, tx, ty, vx, vy, hp=hp, augment_cfg=AUGMENT, seed=0, teacher=teacher,
                          kd=settings.KD(temperature=2.0, alpha=0.7), checkpoint=checkpoint, desc="kd", data_key="",
                          progress=False, precision=precision, device="cpu", teacher_logits=recorded,
                          teacher_source=source, record_teacher=record, teacher_precision=teacher_precision)
    return model, result


class _Counting(torch.nn.Module):
    """The teacher, counting its forward passes."""

    def __init__(self):
        super().__init__()
        training.set_seed(7)
        self.net = nets.FERNet(channels=[8, 8, 8], hidden=16, dropout=0.3).eval()
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return self.net(x)


def test_recorded_teacher_logits_give_the_same_student_without_the_teachers_forward_passes():
    """The KD student's run records the teacher's logits; a fine-tune of the same batch stream (another
    student, learning rate and fewer epochs, as the pruning fine-tune) reads them: the same weights, and the
    teacher runs only for the two checks (first batch of its first and last epoch) instead of on all 6 batches."""
    teacher = _Counting()
    _, kd_run = _kd_fit(teacher, epochs=3, record=True)
    rec = kd_run["teacher_logits"]
    assert rec["logits"].shape == (3, 48, 7) and teacher.calls == 9
    teacher.calls = 0
    live, r_live = _kd_fit(teacher, epochs=2, init_seed=5, lr=0.003)
    assert teacher.calls == 6
    teacher.calls = 0
    reused, r_reused = _kd_fit(teacher, epochs=2, init_seed=5, lr=0.003, recorded=rec)
    assert teacher.calls == 2
    assert _same_weights(live, reused)
    assert _without_timing(r_live["history"]) == _without_timing(r_reused["history"])
    # more epochs than recorded: the recorded ones are read, the teacher runs on the rest (3 batches each)
    teacher.calls = 0
    longer, _ = _kd_fit(teacher, epochs=4, init_seed=5, recorded=rec)
    assert teacher.calls == 2 + 3
    teacher.calls = 0
    longer_live, _ = _kd_fit(teacher, epochs=4, init_seed=5)
    assert _same_weights(longer, longer_live)


@pytest.mark.parametrize("change", ["batch_size", "source"])
def test_teacher_logits_of_another_batch_stream_are_not_used(change, caplog):
    teacher = _Counting()
    _, kd_run = _kd_fit(teacher, epochs=2, record=True)
    kw = {"batch_size": 12} if change == "batch_size" else {"source": "other data or teacher"}
    live, _ = _kd_fit(teacher, epochs=2, init_seed=5, **kw)
    teacher.calls = 0
    with caplog.at_level("INFO", logger="fer"):
        other, _ = _kd_fit(teacher, epochs=2, init_seed=5, recorded=kd_run["teacher_logits"], **kw)
    assert teacher.calls == (8 if change == "batch_size" else 6)  # every batch
    assert _same_weights(live, other)
    assert "another batch stream" in caplog.text


def test_teacher_logits_that_differ_from_the_teacher_are_dropped_with_a_warning(caplog):
    teacher = _Counting()
    _, kd_run = _kd_fit(teacher, epochs=2, record=True)
    tampered = {**kd_run["teacher_logits"], "logits": kd_run["teacher_logits"]["logits"] + 1.0}
    live, _ = _kd_fit(teacher, epochs=2, init_seed=5)
    with caplog.at_level("WARNING", logger="fer"):
        checked, _ = _kd_fit(teacher, epochs=2, init_seed=5, recorded=tampered)
    assert _same_weights(live, checked)
    assert "differ from the teacher's at epoch 1" in caplog.text


def test_a_resumed_kd_run_records_the_same_teacher_logits(tmp_path, monkeypatch):
    teacher = _Counting()
    _, whole = _kd_fit(teacher, epochs=3, record=True)
    ck = tmp_path / "ck.pt"
    save = files.save_torch

    def save_then_crash(path, obj):
        save(path, obj)
        if obj.get("epoch") == 1:
            raise _Interrupt

    monkeypatch.setattr(files, "save_torch", save_then_crash)
    with pytest.raises(_Interrupt):
        _kd_fit(teacher, epochs=3, record=True, checkpoint=ck)
    monkeypatch.setattr(files, "save_torch", save)
    _, resumed = _kd_fit(teacher, epochs=3, record=True, checkpoint=ck)
    assert torch.equal(whole["teacher_logits"]["logits"], resumed["teacher_logits"]["logits"])
    assert whole["teacher_logits"]["key"] == resumed["teacher_logits"]["key"]


def test_teacher_logits_round_trip_through_their_file(tmp_path):
    _, kd_run = _kd_fit(_Counting(), epochs=1, record=True)
    path = tmp_path / "teacher_logits.pt"
    files.save_torch(path, kd_run["teacher_logits"])
    back = training.load_teacher_logits(path)
    assert torch.equal(back["logits"], kd_run["teacher_logits"]["logits"]) and back["key"] == kd_run["teacher_logits"]["key"]
    assert training.load_teacher_logits(None) is None
    files.save_torch(path, {"format": 0, "logits": torch.zeros(1)})
    with pytest.raises(ValueError, match="not a teacher-logits file"):
        training.load_teacher_logits(path)


def test_an_fp32_student_reads_the_logits_of_a_bf16_teacher_run():
    """QAT trains the fake-quantized student in fp32 with the teacher in the KD student's precision (bf16 on an
    AMX CPU): the logits the bf16 KD run recorded serve it; a teacher in fp32 is another stream."""
    teacher = _Counting()
    _, kd_run = _kd_fit(teacher, epochs=2, record=True, precision="bf16")
    assert kd_run["teacher_logits"]["logits"].dtype == torch.bfloat16
    live, _ = _kd_fit(teacher, epochs=2, init_seed=5, teacher_precision="bf16")
    teacher.calls = 0
    reused, _ = _kd_fit(teacher, epochs=2, init_seed=5, teacher_precision="bf16", recorded=kd_run["teacher_logits"])
    assert teacher.calls == 2 and _same_weights(live, reused)
    fp32_teacher, _ = _kd_fit(teacher, epochs=2, init_seed=5)
    assert not _same_weights(live, fp32_teacher)  # the bf16 teacher's logits did reach the loss
    teacher.calls = 0
    _kd_fit(teacher, epochs=2, init_seed=5, recorded=kd_run["teacher_logits"])
    assert teacher.calls == 6
