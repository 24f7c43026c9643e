"""Every error a user can see: one clear line, no traceback. The message says what to do.

Rule scripts (fer.stages.runner) and the inference app print a :class:`FERError` as one line and exit non-zero;
any other exception is a bug and is logged with its traceback.
"""


class FERError(Exception):
    """A problem the user must fix (bad data, missing weights, bad option); the message says what to do."""


class ConfigError(FERError):
    """A config key with a bad value, a missing or an unknown key (raised before any job runs)."""


class CheckpointError(FERError):
    """A weights file that is missing, damaged, or not what its name says (another variant's weights).
    ``reason`` is the problem alone (the message adds the file and what to do)."""

    def __init__(self, message: str, reason: str = ""):
        super().__init__(message)
        self.reason = reason or message


class DataError(FERError):
    """Unusable data: no class folders, no images, a duplicate across classes, an empty split."""


class ImageReadError(DataError):
    """An image file that cannot be read: a broken symlink or a symlink loop, not a regular file (a FIFO, a
    socket, a device), empty, or not decodable. The message names the file, the problem and what to do; data
    preparation logs it as a skip, the inference app as an error (one image) or a skip (a folder)."""


class BenchmarkError(FERError):
    """A local benchmark cannot run (missing graph, bad settings)."""


class JetsonError(FERError):
    """A Jetson benchmark failure; the message is one line naming the cause."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


class JetsonConfigError(JetsonError):
    """Bad ``jetson:`` settings or inputs (missing key file, bad workdir, no models)."""


class JetsonUnreachable(JetsonError):
    """The host cannot be reached (refused, timed out, unknown name, no route)."""


class JetsonAuthError(JetsonError):
    """The host refused the login (wrong user or key)."""


class JetsonHostKeyError(JetsonError):
    """The host key differs from the one recorded in ``jetson.known_hosts``."""


class JetsonRuntimeMissing(JetsonError):
    """The device has no usable runtime (onnxruntime not importable and no trtexec)."""


class JetsonTimeout(JetsonError):
    """A step on the device took longer than ``jetson.timeout``."""


class JetsonDeviceError(JetsonError):
    """The device script failed for another reason (python missing or too old, every model failed ...)."""


class BusyError(FERError):
    """Another process writes the same output (e.g. a job left running by a Snakemake that was killed)."""


class OrphanedError(FERError):
    """The Snakemake that started a job is gone: the job stops, its per-epoch checkpoint kept for the rerun."""
