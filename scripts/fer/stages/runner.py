"""How a rule script runs its stage: logging to the rule's log file and the terminal, the job's thread count,
one-line errors, and the job record behind results/provenance.json."""
from __future__ import annotations

import os
import sys
import traceback

from fer import logs
from fer.errors import FERError
from fer.report import provenance


def run(snakemake, main) -> None:
    """Call ``main(snakemake, logger)`` with logging to ``snakemake.log[0]`` and the terminal.

    The log keeps the lines of an earlier, unfinished run of the job (fer.logs). A :class:`FERError` ends the job with its one-line message (and exit code 1); any other exception is
    logged with its traceback in the log file, since it is a bug rather than a user error.
    """
    log_path = snakemake.log[0] if len(snakemake.log) else None
    logger = logs.setup(log_path)
    try:
        set_threads(max(1, int(snakemake.threads)))
        main(snakemake, logger)
        record_provenance(snakemake, logger)
        if log_path:
            logs.finished(log_path)
    except FERError as exc:
        logger.error("%s", exc)
        sys.exit(1)
    except Exception:
        logger.error("unexpected error:\n%s", traceback.format_exc())
        sys.exit(1)


def set_threads(n: int) -> None:
    """Let torch use ``n`` threads: directly when the stage module imported it, else through OMP_NUM_THREADS,
    which torch reads when the stage imports it later. The report rules never import torch: importing it only
    to set its threads would be most of their run time."""
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(n)
    else:
        os.environ["OMP_NUM_THREADS"] = str(n)


def record_provenance(snakemake, logger) -> None:
    """The job record behind results/provenance.json (fer.report.provenance); never fails the job."""
    try:
        provenance.record_job(snakemake)
    except Exception as exc:  # provenance is bookkeeping: a failure is logged, the outputs stay valid
        logger.warning("could not record provenance: %s: %s", type(exc).__name__, exc)
