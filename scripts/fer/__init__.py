"""fer: the library behind the FER-Jetson-Nano pipeline.

Models, data preparation, synthetic faces, training, compression, metrics, benchmarks and plots live here;
the rule scripts in ``scripts/`` are thin wrappers around these modules.
"""

CLASSES = ("anger", "contempt", "disgust", "fear", "happy", "sadness", "surprise")
IMAGE_SIZE = 48
