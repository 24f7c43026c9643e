"""The inference app (inference.py / fer.app): a real photograph, a synthetic video, and every bad input.

The photograph is scikit-image's astronaut portrait (shipped with the package, no download). Weights are a
tiny FERNet saved in a temporary project folder (--root), so the tests need neither the dataset nor trained
weights; labels are whatever that model says, the tests check that a label is produced and drawn.
"""
from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from conftest import REPO

from fer import CLASSES, checkpoints, files, variants
from fer.app import classifiers, cli, facedetect, output, sample_media, sources
from fer.compression import quantize
from fer.data import datasets, preprocess
from fer.errors import FERError
from fer.models import nets

TINY = {"channels": [4, 8, 8], "hidden": 16, "dropout": 0.3}


# ------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """A project folder with tiny kd weights and their ONNX export."""
    root = tmp_path_factory.mktemp("root")
    torch.manual_seed(0)
    model = nets.FERNet(**TINY).eval()
    checkpoints.save_checkpoint(variants.weights_path("kd", root), "kd", model.arch, model.state_dict())
    onnx = variants.onnx_path("kd", root)
    onnx.parent.mkdir(parents=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(model, torch.zeros(1, 1, 48, 48), str(onnx), dynamo=False, opset_version=13,
                          input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    _sidecar(onnx, "kd")
    return root


def _sidecar(onnx: Path, variant: str) -> None:
    """The part of export_onnx's sidecar that readers check: the variant, the graph's SHA-256 and its classes."""
    onnx.with_suffix(".json").write_text(json.dumps({"variant": variant, "classes": list(CLASSES),
                                                     "onnx_sha256": files.file_digest(onnx, full=True)}))


def test_an_onnx_graph_that_is_not_the_exported_one_is_refused(root, tmp_path, astronaut, capsys):
    """A graph changed after its export, one copied over another variant's, or one without its export record:
    one line naming the file and the target to rebuild, before any frame is processed."""
    other = tmp_path / "root"
    shutil.copytree(root, other)
    onnx = variants.onnx_path("kd", other)
    with open(onnx, "ab") as fh:
        fh.write(b"\0")  # changed after the export
    rc, out, err = run_app(capsys, *base(other, "--source", astronaut, "--runtime", "onnx"))
    assert_clean_error(rc, err, "kd.onnx", "SHA-256 differs", "snakemake --cores all results/onnx/kd.onnx")
    shutil.copy(variants.onnx_path("kd", root), onnx)
    _sidecar(onnx, "teacher")  # the teacher's graph copied over kd's
    rc, out, err = run_app(capsys, *base(other, "--source", astronaut, "--runtime", "onnx"))
    assert_clean_error(rc, err, "recorded as the graph of 'teacher', not of 'kd'")
    onnx.with_suffix(".json").unlink()
    rc, out, err = run_app(capsys, *base(other, "--source", astronaut, "--runtime", "onnx"))
    assert_clean_error(rc, err, "has no readable export record kd.json")


@pytest.fixture(scope="module")
def astronaut(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("img") / "astronaut.png"
    cv2.imwrite(str(path), sample_media.astronaut_bgr())
    return path


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    """12 frames of 640x480 with the astronaut's face moving; returns (path, true boxes)."""
    path = tmp_path_factory.mktemp("vid") / "face.mp4"
    truth = sample_media.write_video(path, n=12)
    return path, truth


def run_app(capsys, *args):
    rc = cli.main([str(a) for a in args])
    out = capsys.readouterr()
    return rc, out.out, out.err


def base(root, *args):
    return ["--model", "kd", "--root", root, "--no-display", *args]


def assert_clean_error(rc, err, *needles):
    assert rc != 0
    assert "Traceback" not in err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for needle in needles:
        assert needle in lines[0], lines[0]


# ------------------------------------------------------------------------------------------ real photograph
def test_astronaut_face_found_labelled_and_drawn(root, astronaut, tmp_path, capsys):
    out_png = tmp_path / "annotated" / "astronaut.png"
    rc, out, err = run_app(capsys, *base(root, "--source", astronaut, "--output", out_png))
    assert rc == 0, err
    face_lines = [line for line in out.splitlines() if " face " in line and "box" in line]
    assert len(face_lines) == 1
    assert any(f": {c} " in face_lines[0] for c in CLASSES)
    assert "1 frames (1 with a face, 1 faces)" in out
    assert "frames per second" in out and "detect" in out and "classify" in out

    annotated = cv2.imread(str(out_png))
    original = cv2.imread(str(astronaut))
    assert annotated is not None and annotated.shape == original.shape
    changed = np.any(annotated != original, axis=2)
    ys, xs = np.nonzero(changed)
    # the drawing (box + label) sits around the astronaut's face, nowhere else
    x, y, w, h = sample_media.ASTRONAUT_FACE
    assert changed.sum() > 4 * w
    assert xs.min() >= x - w and xs.max() <= x + 2 * w and ys.min() >= y - h and ys.max() <= y + 2 * h
    assert (annotated[changed] == output.COLOR).all(axis=1).mean() > 0.5  # mostly the green box and text


def test_json_lines_onnx_runtime(root, astronaut, capsys):
    rc, out, err = run_app(capsys, *base(root, "--source", astronaut, "--json", "--runtime", "onnx"))
    assert rc == 0, err
    objs = [json.loads(line) for line in out.splitlines()]
    faces = [o for o in objs if o["type"] == "face"]
    assert len(faces) == 1 and faces[0]["label"] in CLASSES
    assert abs(sum(faces[0]["probs"].values()) - 1) < 1e-3
    assert faces[0]["confidence"] == max(faces[0]["probs"].values())
    x, y, w, h = faces[0]["box"]
    assert facedetect.iou((x, y, w, h), sample_media.ASTRONAUT_FACE) > 0.7
    summary = objs[-1]
    assert summary["type"] == "summary" and summary["runtime"] == "onnx" and summary["faces"] == 1


def test_torch_and_onnx_agree(root, astronaut, capsys):
    probs = {}
    for rt in ("torch", "onnx"):
        rc, out, err = run_app(capsys, *base(root, "--source", astronaut, "--json", "--runtime", rt))
        assert rc == 0, err
        probs[rt] = json.loads(out.splitlines()[0])["probs"]
    assert probs["torch"] == pytest.approx(probs["onnx"], abs=2e-4)


def test_app_crop_and_training_reader_give_identical_tensors(astronaut, tmp_path):
    """A face crop through the app's path == the same crop saved as PNG and read by fer.data's reader."""
    frame = cv2.imread(str(astronaut))
    detector = facedetect.FaceDetector()
    boxes = detector.detect(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY), track=False)
    assert len(boxes) == 1
    # also a box clipped by the frame edge, and an off-square one
    for k, box in enumerate([boxes[0], (-20, -10, 90, 90), (400, 300, 140, 100)]):
        app_tensor = preprocess.to_tensor(classifiers.face_input(frame, box))
        crop_png = tmp_path / f"crop{k}.png"
        assert cv2.imwrite(str(crop_png), facedetect.crop(frame, box))
        img, size, mode = datasets._read_image(crop_png)
        data_tensor = preprocess.to_tensor(img)
        assert app_tensor.shape == data_tensor.shape == (1, 1, 48, 48)
        assert torch.equal(app_tensor, data_tensor)


def test_crop_is_the_square_box_clipped_to_the_frame():
    assert facedetect.CROP_MARGIN == 0.0
    assert facedetect.crop_box((480, 640), (100, 50, 80, 80)) == (100, 50, 80, 80)
    assert facedetect.crop_box((480, 640), (100, 50, 80, 60)) == (100, 40, 80, 80)
    assert facedetect.crop_box((480, 640), (600, 440, 80, 80)) == (600, 440, 40, 40)
    assert facedetect.crop_box((480, 640), (100, 100, 50, 50), margin=0.1) == (95, 95, 60, 60)


# ------------------------------------------------------------------------------------------ video
def test_synthetic_video_end_to_end(root, video, tmp_path, capsys):
    path, truth = video
    out_mp4 = tmp_path / "out" / "annotated.mp4"
    rc, out, err = run_app(capsys, *base(root, "--source", path, "--output", out_mp4, "--json"))
    assert rc == 0, err
    objs = [json.loads(line) for line in out.splitlines()]
    faces = [o for o in objs if o["type"] == "face"]
    summary = objs[-1]
    assert summary["frames"] == len(truth) and summary["frames_with_face"] == len(truth)
    assert summary["fps"] > 0 and summary["detect_roi"] > 0  # tracked between full-frame searches
    for f in faces:
        assert facedetect.iou(f["box"], truth[int(f["frame"].split()[-1])]) >= 0.5
    cap = cv2.VideoCapture(str(out_mp4))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    assert n == len(truth)
    assert not [p for p in out_mp4.parent.iterdir() if p.name.startswith(".")]  # no temp file left behind


def test_no_track_searches_every_frame(root, video, capsys):
    path, truth = video
    rc, out, err = run_app(capsys, *base(root, "--source", path, "--json", "--no-track", "--max-frames", 4))
    assert rc == 0, err
    summary = json.loads(out.splitlines()[-1])
    assert summary["frames"] == summary["frames_with_face"] == summary["detect_full"] == 4
    assert summary["detect_roi"] == 0


def test_tracker_keeps_the_face(video):
    path, truth = video
    det = facedetect.FaceDetector(facedetect.DetectorSettings(redetect_every=5))
    for frame, box in sample_media.face_frames(len(truth)):
        found = det.detect(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY))
        assert len(found) == 1 and facedetect.iou(found[0], box) >= 0.5
    assert det.stats.roi > det.stats.full >= 2


def test_folder_source_writes_one_image_each_and_warns_on_no_face(root, astronaut, tmp_path, capsys):
    folder = tmp_path / "faces"
    folder.mkdir()
    (folder / "a_astronaut.png").write_bytes(astronaut.read_bytes())
    cv2.imwrite(str(folder / "b_blank.png"), np.full((120, 160, 3), 127, np.uint8))
    (folder / "notes.txt").write_text("not an image")
    rc, out, err = run_app(capsys, *base(root, "--source", folder, "--output", tmp_path / "annotated"))
    assert rc == 0, err
    assert "a_astronaut.png  face 1:" in out
    assert "warning: no face found in b_blank.png" in err
    assert sorted(p.name for p in (tmp_path / "annotated").iterdir()) == ["a_astronaut.png", "b_blank.png"]


def test_inputs_sharing_a_stem_get_one_result_file_each(root, astronaut, tmp_path, capsys):
    """a.png and a.jpg (and a.PNG) would both become a.png: every input gets its own result, none overwritten,
    and the summary counts what is on disk."""
    folder = tmp_path / "faces"
    folder.mkdir()
    img = cv2.imread(str(astronaut))
    for name in ("a.png", "a.jpg", "a.jpeg"):
        cv2.imwrite(str(folder / name), img)
    rc, out, err = run_app(capsys, *base(root, "--source", folder, "--output", tmp_path / "annotated", "--json"))
    assert rc == 0, err
    names = sorted(p.name for p in (tmp_path / "annotated").iterdir())
    assert names == ["a.png", "a_jpg.png", "a_png.png"]  # in input order: a.jpeg, a.jpg, a.png
    summary = [json.loads(line) for line in out.splitlines() if '"summary"' in line][0]
    assert summary["frames"] == len(names)


def test_evaluate_writes_csv_per_runtime(root, astronaut, capsys):
    for rt in ("torch", "onnx"):
        rc, out, err = run_app(capsys, *base(root, "--source", astronaut, "--runtime", rt, "--evaluate"))
        assert rc == 0, err
    path = root / "results" / "inference" / "kd.csv"
    rows = list(csv.DictReader(open(path)))
    assert [r["runtime"] for r in rows] == ["torch", "onnx"]
    ref = nets.FERNet(**TINY)
    for r in rows:
        assert r["variant"] == "kd" and r["method"] == "distillation"
        assert int(r["params"]) == sum(p.numel() for p in ref.parameters())
        assert int(r["macs"]) > 0 and int(r["size_bytes"]) > 0 and int(r["file_size_bytes"]) > 0
        for k in ("model_ms", "detect_ms", "classify_ms", "fps"):
            assert float(r[k]) > 0
    assert int(rows[1]["onnx_size_bytes"]) > 0
    # a rerun replaces its own row instead of adding one
    rc, _, _ = run_app(capsys, *base(root, "--source", astronaut, "--evaluate"))
    assert [r["runtime"] for r in csv.DictReader(open(path))] == ["onnx", "torch"]


# ------------------------------------------------------------------------------------------ bad input
def test_missing_file(root, capsys):
    rc, out, err = run_app(capsys, *base(root, "--source", "no/such/clip.mp4"))
    assert_clean_error(rc, err, "no/such/clip.mp4", "no such file")


def test_empty_video(root, tmp_path, capsys):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    rc, out, err = run_app(capsys, *base(root, "--source", empty))
    assert_clean_error(rc, err, "empty.mp4", "empty")


def test_video_without_frames(root, tmp_path, capsys):
    path = tmp_path / "noframes.avi"
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, (64, 48))
    vw.release()
    rc, out, err = run_app(capsys, *base(root, "--source", path))
    assert_clean_error(rc, err, "noframes.avi")


def test_unreadable_video(root, tmp_path, capsys):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"this is not a video " * 200)
    rc, out, err = run_app(capsys, *base(root, "--source", bad))
    assert_clean_error(rc, err, "broken.mp4", "could not read video")


def test_unreadable_image(root, tmp_path, capsys):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8 truncated")
    rc, out, err = run_app(capsys, *base(root, "--source", bad))
    assert_clean_error(rc, err, "broken.jpg", "could not read image")


def test_image_without_face(root, tmp_path, capsys):
    blank = tmp_path / "wall.png"
    cv2.imwrite(str(blank), np.full((240, 320, 3), 90, np.uint8))
    out_png = tmp_path / "wall_annotated.png"
    rc, out, err = run_app(capsys, *base(root, "--source", blank, "--output", out_png))
    assert_clean_error(rc, err, "no face found", "wall.png")
    assert not out_png.exists()


def test_no_camera(root, capsys, monkeypatch):
    monkeypatch.setattr(sources, "is_jetson", lambda *a, **k: False)
    rc, out, err = run_app(capsys, *base(root, "--source", "99"))
    assert_clean_error(rc, err, "camera 99", "--source")


def test_display_requested_without_display(root, astronaut, capsys, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr(output.platform, "system", lambda: "Linux")
    rc, out, err = run_app(capsys, "--model", "kd", "--root", root, "--source", astronaut)
    assert_clean_error(rc, err, "no display", "--no-display", "--output")


def test_display_requested_with_headless_opencv(root, astronaut, capsys, monkeypatch):
    monkeypatch.setenv("DISPLAY", ":99")
    monkeypatch.setattr(output, "gui_available", lambda: False)
    rc, out, err = run_app(capsys, "--model", "kd", "--root", root, "--source", astronaut)
    assert_clean_error(rc, err, "no GUI", "--no-display")


def test_gui_check_matches_this_opencv():
    """opencv-python-headless (what requirements.txt installs) has no GUI: the check must say so."""
    info = cv2.getBuildInformation()
    gui = info.split("GUI:", 1)[1].split("\n\n", 1)[0] if "GUI:" in info else ""
    if "NONE" in gui or not gui.strip():
        assert output.gui_available() is False


@pytest.mark.parametrize("args,target", [
    (["--model", "kd"], "weights/kd.pt"),
    (["--model", "pr_kd", "--pr-level", "high"], "weights/pr_kd_high.pt"),
    (["--model", "ptq_kd", "--quantize-bits", "4"], "weights/ptq_kd_4.pt"),
    (["--model", "kd", "--runtime", "onnx"], "results/onnx/kd.onnx"),
])
def test_weights_not_built_names_the_snakemake_target(tmp_path, astronaut, capsys, args, target):
    rc, out, err = run_app(capsys, *args, "--root", tmp_path, "--no-display", "--source", astronaut)
    assert_clean_error(rc, err, "not built yet", f"`snakemake --cores all {target}`")


def test_a_cross_validated_study_serves_fold_0s_model(root, tmp_path, astronaut, capsys):
    """With data.split.folds the weights live under results/folds/<f>/weights/: the app uses fold 0's (the model
    exported to ONNX) and says so; without any, the hint names both targets."""
    rc, out, err = run_app(capsys, "--model", "kd", "--root", tmp_path, "--no-display", "--source", astronaut)
    assert_clean_error(rc, err, "`snakemake --cores all weights/kd.pt` (single split",
                       "`snakemake --cores all results/folds/0/weights/kd.pt` (cross-validation)")
    fold0 = variants.fold0_weights_path("kd", tmp_path)
    fold0.parent.mkdir(parents=True)
    fold0.write_bytes(variants.weights_path("kd", root).read_bytes())
    rc, out, err = run_app(capsys, "--model", "kd", "--root", tmp_path, "--no-display", "--source", astronaut)
    assert rc == 0, err
    assert "using results/folds/0/weights/kd.pt (cross-validation fold 0's model" in err and "face 1:" in out


def test_damaged_weights(tmp_path, astronaut, capsys):
    w = variants.weights_path("kd", tmp_path)
    w.parent.mkdir(parents=True)
    w.write_bytes(b"garbage")
    rc, out, err = run_app(capsys, *base(tmp_path, "--source", astronaut))
    assert_clean_error(rc, err, "could not load", "snakemake --cores all weights/kd.pt")


def test_image_output_for_a_video_is_refused(root, video, tmp_path, capsys):
    rc, out, err = run_app(capsys, *base(root, "--source", video[0], "--output", tmp_path / "x.png"))
    assert_clean_error(rc, err, "--output", ".mp4")


def test_entry_point_has_no_traceback(tmp_path, astronaut):
    """The real script, as a user runs it: weights missing -> one line on stderr, exit code 2."""
    proc = subprocess.run([sys.executable, str(REPO / "inference.py"), "--model", "kd", "--root", str(tmp_path),
                           "--no-display", "--source", str(astronaut)], capture_output=True, text=True, timeout=120)
    assert_clean_error(proc.returncode, proc.stderr, "snakemake --cores all weights/kd.pt")


# ------------------------------------------------------------------------------------------ options, platform
def test_options_map_to_variant_names():
    p = cli.build_parser()

    def v(*a):
        return cli.variant_name(p.parse_args(["--model", *a]))

    assert v("teacher") == "teacher" and v("kd") == "kd" and v("scratch") == "scratch"
    assert v("pr_kd") == "pr_kd_medium" and v("pr_kd", "--pr-level", "low") == "pr_kd_low"
    assert v("ptq_kd") == "ptq_kd_8" and v("ptq_kd", "--quantize-bits", "6") == "ptq_kd_6"
    assert v("ptq_kd", "--quantize-bits", "4", "--pr-level", "high") == "ptq_pr_kd_high_4"
    for bad in (["--model", "kd", "--quantize-bits", "5"], ["--model", "big"], ["--model", "kd", "--runtime", "trt"]):
        with pytest.raises(SystemExit) as exc:
            p.parse_args(bad)
        assert exc.value.code == 2


@pytest.mark.parametrize("opt", ["--threads", "--max-frames", "--detect-width", "--min-face", "--min-neighbors",
                                 "--redetect-every"])
def test_integer_options_accept_the_usual_spellings(opt):
    p = cli.build_parser()
    dest = opt[2:].replace("-", "_")
    for text, value in (("4", 4), (" 4 ", 4), ("+4", 4), ("4.0", 4), ("1e1", 10), ("1_0", 10)):
        assert getattr(p.parse_args(["--model", "kd", opt, text]), dest) == value


@pytest.mark.parametrize("args, needle", [
    (["--threads", "1000000"], "--threads must be between 0 and 256, not 1000000"),
    (["--threads", "-1"], "--threads must be between 0 and 256"),
    (["--max-frames", "1e12"], "--max-frames must be between 0 and 1000000000"),
    (["--detect-width", "100000"], "--detect-width must be between 0 and 16384"),
    (["--min-face", "0"], "--min-face must be between 1 and 16384"),
    (["--min-neighbors", "1000"], "--min-neighbors must be between 0 and 100"),
    (["--redetect-every", "-3"], "--redetect-every must be between 0 and 1000000"),
    (["--scale-factor", "1"], "--scale-factor must be > 1 and <= 10"),
    (["--scale-factor", "50"], "--scale-factor must be > 1 and <= 10"),
    (["--quantize-bits", "8"], "--quantize-bits is for --model ptq_kd; --model kd is not quantized"),
    (["--pr-level", "high"], "--pr-level is for --model pr_kd"),
])
def test_out_of_range_or_ignored_options_are_refused_before_anything_loads(capsys, tmp_path, args, needle):
    """One line naming the option and its bounds (or why it would be ignored), exit 2, before any model or
    source is opened (the root here holds no weights at all)."""
    rc, out, err = run_app(capsys, *base(tmp_path, "--source", tmp_path / "missing.png", *args))
    assert rc == 2 and "Traceback" not in err and needle in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("args", [["--threads", "nan"], ["--threads", "2.5"], ["--scale-factor", "inf"],
                                  ["--scale-factor", "nan"], ["--max-frames", "lots"], ["--quantize-bits", "5"]])
def test_non_numbers_are_refused_by_the_parser(args):
    with pytest.raises(SystemExit) as exc:
        cli.build_parser().parse_args(["--model", "ptq_kd", *args])
    assert exc.value.code == 2


def test_pr_level_with_ptq_kd_is_the_combined_variant_not_refused():
    args = cli.build_parser().parse_args(["--model", "ptq_kd", "--pr-level", "low", "--quantize-bits", "4"])
    cli.check_args(args)
    assert cli.variant_name(args) == "ptq_pr_kd_low_4"


def test_gstreamer_pipeline_string():
    assert sources.gstreamer_pipeline() == (
        "nvarguscamerasrc ! video/x-raw(memory:NVMM), width=(int)640, height=(int)480, "
        "format=(string)NV12, framerate=(fraction)15/1 ! nvvidconv flip-method=0 ! "
        "video/x-raw, width=(int)640, height=(int)480, format=(string)BGRx ! videoconvert ! "
        "video/x-raw, format=(string)BGR ! appsink")
    s = sources.gstreamer_pipeline(sensor_id=1, framerate=30, flip_method=2)
    assert s.startswith("nvarguscamerasrc sensor-id=1 ! ") and "framerate=(fraction)30/1" in s
    assert "flip-method=2" in s


def test_jetson_detection(tmp_path):
    none = tmp_path / "missing"
    assert sources.is_jetson(none, none) is False
    release = tmp_path / "nv_tegra_release"
    release.write_text("# R32 (release), REVISION: 7.1\n")
    assert sources.is_jetson(release, none) is True
    model = tmp_path / "model"
    model.write_bytes(b"NVIDIA Jetson Nano Developer Kit\x00")
    assert sources.is_jetson(none, model) is True
    model.write_bytes(b"Raspberry Pi 4 Model B\x00")
    assert sources.is_jetson(none, model) is False


def test_jetson_camera_uses_the_csi_pipeline(monkeypatch):
    opened = {}

    class FakeCap:
        def __init__(self, *args):
            opened["args"] = args

        def isOpened(self):
            return False

        def release(self):
            pass

    monkeypatch.setattr(sources.cv2, "VideoCapture", FakeCap)
    with pytest.raises(FERError, match="CSI camera 0"):
        sources.open_camera(0, jetson=True)
    assert opened["args"] == (sources.gstreamer_pipeline(), cv2.CAP_GSTREAMER)
    with pytest.raises(FERError, match="camera 2"):
        sources.open_camera(2, jetson=False)
    assert opened["args"] == (2,)


def test_display_problem():
    assert "DISPLAY" in output.display_problem(env={}, system="Linux")
    assert output.display_problem(env={"WAYLAND_DISPLAY": "wayland-0"}, system="Linux") in (None, *[
        m for m in [output.display_problem(env={"DISPLAY": ":0"}, system="Linux")] if m and "no GUI" in m])
    mac = output.display_problem(env={}, system="Darwin")  # no DISPLAY variable needed there
    assert mac is None or "no GUI" in mac


def test_quantized_variant_runs_and_evaluates(tmp_path, astronaut, capsys):
    """--model ptq_kd --quantize-bits 8 loads the brevitas model through checkpoints.load_model (fer.compression.quantize)."""
    torch.manual_seed(0)
    model = nets.FERNet(**TINY).eval()
    calib = torch.randint(0, 256, (32, 48, 48), dtype=torch.uint8)
    q = quantize.ptq(model, calib, weight_bits=8, act_bits=8, batches=2, batch_size=16)
    checkpoints.save_checkpoint(variants.weights_path("ptq_kd_8", tmp_path), "ptq_kd_8", nets.current_arch(model),
                                q.state_dict(), quant=quantize.quant_info(8, 8, "ptq"))
    rc, out, err = run_app(capsys, "--model", "ptq_kd", "--root", tmp_path, "--no-display", "--source", astronaut,
                           "--evaluate")
    assert rc == 0, err
    assert "ptq_kd_8 (torch" in out and " face 1: " in out
    row = next(csv.DictReader(open(tmp_path / "results" / "inference" / "ptq_kd_8.csv")))
    assert row["bits"] == "8" and row["method"] == "quantization"
    assert int(row["size_bytes"]) < 4 * int(row["params"])  # bit-packed, not fp32


# ------------------------------------------------------------------------------- never destroy the input
@pytest.mark.parametrize("where", ["same-file", "same-folder-as-image", "folder-onto-itself"])
def test_output_never_overwrites_the_input(root, astronaut, tmp_path, capsys, where):
    src = tmp_path / "in"
    src.mkdir()
    image = src / "face.png"
    shutil.copy(astronaut, image)
    before = image.read_bytes()
    source, out = {"same-file": (image, image), "same-folder-as-image": (image, src),
                   "folder-onto-itself": (src, src)}[where]
    rc, _, err = run_app(capsys, *base(root, "--source", source, "--output", out))
    assert rc == 2 and err.startswith("error: --output") and "overwrite" in err and "Traceback" not in err
    assert image.read_bytes() == before and sorted(p.name for p in src.iterdir()) == ["face.png"]


def test_another_variants_weights_are_refused_by_the_app(root, astronaut, tmp_path, capsys):
    other = tmp_path / "root"
    shutil.copytree(root, other)
    ck = torch.load(variants.weights_path("kd", other), weights_only=True)
    ck["variant"] = "teacher"  # the teacher's weights under the KD student's name
    torch.save(ck, variants.weights_path("kd", other))
    rc, _, err = run_app(capsys, *base(other, "--source", astronaut))
    assert rc == 2 and "holds the weights of 'teacher', not of 'kd'" in err and "Traceback" not in err
