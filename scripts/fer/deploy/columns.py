"""Columns of a latency row, shared by the local benchmark (fer.deploy.latency) and the Jetson path
(fer.deploy.jetson), so both kinds of rows land in the same tables."""

ROW_COLUMNS = ["variant", "runtime", "device", "precision", "latency_ms_p50", "latency_ms_p90", "latency_ms_mean",
               "latency_ms_std", "runs", "warmup", "threads", "note"]
# where the figures were measured
MACHINE_COLUMNS = ["machine", "machine_cpu", "machine_cores", "machine_arch", "machine_os", "python",
                   "runtime_version"]
# max_abs_diff, cpu_affinity, load_avg_1m, cpu_ms_* and scheduling stay empty for device rows
EXTRA_COLUMNS = ["latency_ms_min", "latency_ms_max", "p90_over_p50", "executed", "max_abs_diff", "cpu_affinity",
                 "export_format", "load_avg_1m", "cpu_ms_p50", "cpu_ms_p90", "scheduling"]
COLUMNS = ROW_COLUMNS + MACHINE_COLUMNS + EXTRA_COLUMNS
