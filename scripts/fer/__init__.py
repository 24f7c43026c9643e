"""fer: the library behind the FER-Jetson-Nano pipeline.

Models, data preparation, synthetic faces, training, compression, metrics, benchmarks and plots live here;
each rule script in ``scripts/`` calls one stage function of its name in :mod:`fer.stages`, which orchestrates these modules.
"""

CLASSES = ("anger", "contempt", "disgust", "fear", "happy", "sadness", "surprise")
IMAGE_SIZE = 48
