"""Results: classification metrics, the summary table, plots, the HTML table and provenance."""
