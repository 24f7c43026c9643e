"""The inference app behind ``inference.py``: camera, video, image or folder in; faces, labels and timing out.

Per frame: decode (:mod:`.sources`) -> Haar face detection (:mod:`.facedetect`) -> each face crop through the
one preprocessing path of the training data (:func:`fer.data.preprocess.to_model_image` with
``channel_order="BGR"``, then :func:`fer.data.preprocess.to_tensor`) -> the chosen variant, PyTorch or ONNX
Runtime (:mod:`.classifiers`) -> boxes, labels and confidences drawn on the frame -> display and/or
``--output`` file (:mod:`.output`). The loop and its per-stage timing are :mod:`.loop`; options, the run and
its exit codes are :mod:`.cli` (``python inference.py`` calls :func:`fer.app.cli.main`). Test and benchmark
media (a real face photo, a synthetic moving-face video) are :mod:`.sample_media`.

Every user mistake (missing file, unreadable or empty video, no face in an image, no camera, no display,
weights not built) ends in one ``error: ...`` line and a non-zero exit code, never a traceback.
"""
import os

# FFmpeg's own console messages ("moov atom not found" ...) would precede our one-line error; quiet them
# unless the user asks for them. OpenCV reads this when it first opens a video, so it is set as soon as any
# part of the app is imported.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
