"""The file system as it really is: symlinks, FIFOs, sockets, devices and odd-but-legal names in the data folder;
one image reader (EXIF orientation) for data preparation and the app; reruns that follow the files data
preparation reads (issue #13, items 3 and 6).

A FIFO blocks whoever opens it, so every test here runs under an alarm: a regression fails instead of hanging.
"""
from __future__ import annotations

import logging
import os
import signal
import socket
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from conftest import TINY_CONFIG, snakemake
from fer.app import sources
from fer.data import datasets, images, preprocess
from fer.errors import FERError, ImageReadError
from test_data import class_value, face, fer_log, make_folder, prepare, write_image  # noqa: F401 (fixture)

ODD_NAMES = [  # legal file names that must reach the manifest (and the workflow's input list)
    "S013_001_00000001 with spaces.png",
    "S014_001_ünïcødé_表情.png",
    "S015_001_{x}.png",          # Snakemake would read {x} as a wildcard
    "S016_001_{1,2}.png",        # ... and this as one with a constraint
    "S017_001_{}.png",
    "-S018_001_leading_dash.png",
    "S019_001_new\nline.png",
    "S020_001_" + "l" * 230 + ".png",  # 243 characters: near the 255-byte limit of a name
    "S021_001_case.png",
    "S021_001_CASE.png",         # differs from the previous one only in case
    "S022_001_100%.png",
]


@pytest.fixture(autouse=True)
def _no_hang():
    signal.signal(signal.SIGALRM, lambda *a: pytest.fail("timed out: something opened a FIFO?"))
    signal.alarm(240)
    yield
    signal.alarm(0)


def _hostile_folder(root: Path) -> dict[str, Path]:
    """A CK+-like folder plus every kind of entry that is not a plain image; returns the special entries."""
    make_folder(root, subjects=range(1, 13))
    happy = root / "happy"
    for name in ODD_NAMES:
        write_image(happy / name, face(class_value("happy")))
    outside = write_image(root.parent / "elsewhere" / "S023_001_00000001.png", face(class_value("happy")))
    (happy / "S023_001_00000001.png").symlink_to(outside)  # a symlink to a regular image: read
    special = {
        "loop": happy / "S030_001_loop.png",
        "broken": happy / "S031_001_broken.png",
        "fifo": happy / "S032_001_fifo.png",
        "socket": happy / "S033_001_socket.png",
        "device": happy / "S034_001_null.png",
        "dir_png": happy / "S035_001_dir.png",
        "non_utf8": happy / os.fsdecode(b"S036_001_\xff\xfe.png"),
        "notes": happy / "notes.txt",
        "top_loop": root / "looped",
        "top_broken": root / "gone",
        "top_fifo": root / "pipe",
    }
    special["loop"].symlink_to(special["loop"].name)
    special["broken"].symlink_to("does-not-exist.png")
    os.mkfifo(special["fifo"])
    cwd = os.getcwd()
    os.chdir(happy)  # a socket path must be short: bind the bare name
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.bind(special["socket"].name)
    finally:
        os.chdir(cwd)
    special["device"].symlink_to(os.devnull)
    write_image(special["dir_png"] / "S035_001_00000001.png", face(class_value("happy")))
    write_image(special["non_utf8"], face(class_value("happy")))
    special["notes"].write_text("not an image")
    special["top_loop"].symlink_to("looped")
    special["top_broken"].symlink_to("nowhere")
    os.mkfifo(special["top_fifo"])
    return special


# ------------------------------------------------------------------------------------------------ scan
def test_scan_skips_links_fifos_sockets_devices_and_reads_odd_names(tmp_path, fer_log):  # noqa: F811
    root = tmp_path / "ck"
    special = _hostile_folder(root)
    ds, rows, _ = prepare(tmp_path, root)
    files = {r["file"] for r in rows}
    for name in ODD_NAMES + ["S023_001_00000001.png"]:
        assert str(root / "happy" / name) in files, name
    for case, p in special.items():
        assert not any(f.startswith(str(p)) for f in files), case

    warn = fer_log.text(logging.WARNING)
    shown = images.shown
    expected = {
        "loop": f"skipped {special['loop']}: symlink loop",
        "broken": f"skipped {special['broken']}: broken symlink (its target does-not-exist.png does not exist)",
        "fifo": f"skipped {special['fifo']}: not a regular file (FIFO)",
        "socket": f"skipped {special['socket']}: not a regular file (socket)",
        "device": f"skipped {special['device']}: not a regular file (character device)",
        "dir_png": f"skipped nested folder {special['dir_png']} (images must sit directly in",
        "non_utf8": f"skipped {shown(special['non_utf8'])}: its name is not valid UTF-8; rename it",
        "notes": f"skipped non-image file {special['notes']}",
        "top_loop": f"skipped {special['top_loop']}: symlink loop",
        "top_broken": f"skipped {special['top_broken']}: broken symlink",
        "top_fifo": f"skipped {special['top_fifo']}: not a regular file (FIFO)",
    }
    for case, text in expected.items():
        assert text in warn, (case, warn)
    for line in warn.splitlines():  # one line per message: a line break in a name is escaped
        assert line.startswith(("skipped ", "class folder ")) or "file names carry no CK+ subject id" in line, line
    assert "S019_001_new\\nline.png" not in warn  # a readable image: no line at all
    assert "\udcff" not in warn and "\\udcff" in warn  # the non-UTF-8 name is shown escaped


def test_the_listing_is_what_data_preparation_reads(tmp_path):
    """rule prepare_data's input list (images.list_files): class folders and image suffixes only."""
    root = tmp_path / "ck"
    special = _hostile_folder(root)
    write_image(root / "neutral" / "S040_001_00000001.png", face(200))
    write_image(root / "S041_001_00000001.png", face(200))
    broken = root / "fear" / "S042_001_00000001.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n damaged")  # read (and skipped) by scan, so it is listed
    used = images.list_files(root).used()
    assert broken in used and root / "happy" / "S023_001_00000001.png" in used
    for name in ODD_NAMES:
        assert root / "happy" / name in used, name
    assert all(p.parent.parent == root and p.parent.name in datasets.CLASSES for p in used)
    assert not set(special.values()) & set(used)
    before = len(used)
    new = write_image(root / "happy" / "S043_001_00000001.png", face(class_value("happy")))
    (root / "neutral" / "notes.txt").write_text("x")
    after = images.list_files(root).used()
    assert new in after and len(after) == before + 1


# ---------------------------------------------------------------------------------------- one reader
EXIF_ORIENTATION = 0x0112
UPRIGHT = {1: lambda a: a, 3: lambda a: np.rot90(a, 2), 6: lambda a: np.rot90(a, -1), 8: lambda a: np.rot90(a, 1)}


@pytest.mark.parametrize("orientation", sorted(UPRIGHT))
def test_training_and_app_read_an_exif_rotated_jpeg_identically(tmp_path, orientation):
    """Same file -> the same 48x48 array in data preparation and in the app, turned upright as EXIF says."""
    rng = np.random.default_rng(orientation)
    stored = np.zeros((40, 96, 3), np.uint8)  # wide and asymmetric, so every rotation looks different
    stored[:, :, 0] = np.linspace(0, 255, 96, dtype=np.uint8)
    stored[:10, :30] = 255
    stored += rng.integers(0, 20, stored.shape, dtype=np.uint8)
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = orientation
    path = tmp_path / f"S001_001_o{orientation}.jpg"
    Image.fromarray(stored).save(path, quality=95, exif=exif.tobytes())

    train_img, size, mode = datasets._read_image(path)
    app_img = preprocess.to_model_image(sources.read_image(path), "BGR")
    assert train_img.shape == app_img.shape == (48, 48)
    assert np.array_equal(train_img, app_img)

    with Image.open(path) as im:  # the decoded pixels as stored, not turned
        decoded = np.asarray(im.convert("RGB"))
    upright = UPRIGHT[orientation](decoded)
    assert np.array_equal(train_img, preprocess.to_model_image(upright, "RGB"))
    assert size == f"{upright.shape[1]}x{upright.shape[0]}"
    if orientation != 1:
        assert not np.array_equal(train_img, preprocess.to_model_image(decoded, "RGB"))


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA", "P", "I;16", "1"])
def test_training_and_app_agree_for_every_colour_mode(tmp_path, mode):
    rng = np.random.default_rng(len(mode))
    rgb = Image.fromarray(rng.integers(0, 255, (37, 53, 3), dtype=np.uint8))
    im = {"P": lambda: rgb.convert("P"), "I;16": lambda: Image.fromarray(
        rng.integers(0, 65535, (37, 53), dtype=np.uint16))}.get(mode, lambda: rgb.convert(mode))()
    path = tmp_path / "S001_001_x.png"
    im.save(path)
    train_img = datasets._read_image(path)[0]
    assert np.array_equal(train_img, preprocess.to_model_image(sources.read_image(path), "BGR"))


def test_the_reader_names_the_file_and_never_opens_a_fifo(tmp_path):
    fifo = tmp_path / "camera.png"
    os.mkfifo(fifo)
    with pytest.raises(ImageReadError, match=r"camera\.png: not a regular file \(FIFO\)"):
        images.read_image(fifo)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(ImageReadError, match=r"empty \(0-byte\) file .*empty\.png"):
        images.read_image(empty)
    loop = tmp_path / "loop.jpg"
    loop.symlink_to("loop.jpg")
    with pytest.raises(ImageReadError, match=r"loop\.jpg: symlink loop"):
        images.read_image(loop)
    # the app: --source FIFO.png is one error line, not a hang
    source = sources.open_source(str(fifo))
    with pytest.raises(FERError) as err:
        list(source)
    msg = str(err.value)
    assert "could not read image" in msg and "camera.png" in msg and "FIFO" in msg and "\n" not in msg


# --------------------------------------------------------------------------------- through Snakemake
def _configfile(tmp_path: Path, data_path: str) -> Path:
    cfg = yaml.safe_load(TINY_CONFIG.read_text())
    cfg["data"].update(source="folder", path=data_path)
    out = tmp_path / "config.yaml"
    out.write_text(yaml.safe_dump(cfg, allow_unicode=True))
    return out


def _out(proc) -> str:
    return proc.stdout + proc.stderr


def test_workflow_takes_odd_names_and_reruns_only_for_files_it_reads(workflow, tmp_path):
    special = _hostile_folder(workflow / "ck+")
    cfg = _configfile(tmp_path, "ck+")
    target = "results/data/manifest.csv"
    proc = snakemake(workflow, target, configfile=cfg)
    assert proc.returncode == 0, _out(proc)[-4000:]
    assert "line break" not in _out(proc)  # Snakemake's warning: such a name is no input path (see common.smk)
    rows = (workflow / target).read_text()
    for name in ODD_NAMES:
        assert name in rows, name
    log = (workflow / "results" / "logs" / "prepare_data.log").read_text()
    assert f"skipped {special['fifo'].relative_to(workflow)}: not a regular file (FIFO)" in log
    assert "Traceback" not in log

    # files data preparation ignores: nothing to do
    (workflow / "ck+" / "happy" / "notes2.txt").write_text("x")
    write_image(workflow / "ck+" / "neutral" / "S050_001_00000001.png", face(200))
    write_image(workflow / "ck+" / "S051_001_00000001.png", face(200))
    proc = snakemake(workflow, "-n", target, configfile=cfg)
    assert proc.returncode == 0 and "Nothing to be done" in _out(proc), _out(proc)[-4000:]

    # a new image in a class folder: rerun, through the input files
    new = write_image(workflow / "ck+" / "happy" / "S052_001_00000001.png", face(class_value("happy")))
    proc = snakemake(workflow, "-n", target, configfile=cfg)
    assert proc.returncode == 0 and "rule prepare_data" in proc.stdout, _out(proc)[-4000:]
    assert "Updated input files: ck+/happy/S052_001_00000001.png" in proc.stdout
    assert "Params have changed" not in proc.stdout
    new.unlink()

    # a changed image whose name Snakemake cannot take as an input path ({x}): rerun, through the params
    brace = workflow / "ck+" / "happy" / "S015_001_{x}.png"
    write_image(brace, face(class_value("happy")))
    proc = snakemake(workflow, "-n", target, configfile=cfg)
    assert proc.returncode == 0 and "rule prepare_data" in proc.stdout, _out(proc)[-4000:]
    assert "Params have changed" in proc.stdout and "input files" not in proc.stdout

    # a used image removed: rerun
    next((workflow / "ck+" / "anger").glob("S0*.png")).unlink()
    proc = snakemake(workflow, "-n", target, configfile=cfg)
    assert proc.returncode == 0 and "Set of input files has changed" in proc.stdout, _out(proc)[-4000:]


def test_dry_run_with_braces_and_spaces_in_the_data_path(workflow, tmp_path):
    root = workflow / "my {data} x"
    make_folder(root, subjects=range(1, 13))
    write_image(root / "happy" / "S013_001_{y}.png", face(class_value("happy")))
    proc = snakemake(workflow, "-n", configfile=_configfile(tmp_path, "my {data} x"))
    assert proc.returncode == 0, _out(proc)[-4000:]
    assert "rule prepare_data" in proc.stdout and "Traceback" not in _out(proc)
