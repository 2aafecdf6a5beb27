"""Write a human-readable report of a search run from the files the search left in its run folder.

The report only *reads* files (``trials.csv``, ``pareto.json``, ``checkpoints/<arch_id>/metrics.json`` and,
for compressed winners, ``checkpoints/<arch_id>/compressed_metrics.json``; the searches' ``.running.*`` markers),
so it can be regenerated at any time, also while a search is still running, and from a run folder it deliberately
imports nothing from the rest of ``nas`` but the file names in ``nas.layout`` and the error classes of ``nas.errors``
(both plain Python; nor torch/optuna): a run folder copied to a laptop is enough. (A damaged ``pareto.json`` is refused naming its rebuild with the settings `nas.rebuild` reads
from the run's config.yaml, which imports nas.config but not torch or Optuna. Its command line also writes
``pareto.csv`` where the folder's files give another one, with `nas.pareto_csv`, which imports only this package,
and writes both under the run folder's lock, `nas.checkpoint.run_folder_lock`, whose module imports numpy, not torch.)

Outputs, all written atomically into the run folder:

* ``report.html`` - one self-contained page (plotly.js embedded once, works offline) with an interactive
  Pareto scatter, latency breakdowns of the front, the mixer chosen per stage, a table of the front and one of
  the compressed files;
* ``report.md`` with ``pareto.png``, ``latency_breakdown.png`` and ``mixers.png`` for places that render
  Markdown (pull requests, wikis) but not JavaScript.

Command line: ``python -m nas.report <run_dir>``, or ``python -m nas.report search.storage=... search.study_name=...``
to rebuild the run folder's files from a study first (that form needs the full toolkit:
`nas.study_export.export_study`).

Modules, each importing only those before it: `values` (one value of a file, parsed and written), `hints` (the
rebuild from the study that refusals name), `markers` (the searches' run markers), `files` (reading the run folder),
`notes` (the report's wording), `compressed` (the compressed table and its notes), `plots`, `render` (report.html and
report.md), `write` (`write_reports`) and `cli` (`main`). This package holds their public names; the
private ones are imported from their modules.
"""

from __future__ import annotations

from nas.report.markers import RUN_MARKER_PREFIX
from nas.report.files import (METRICS_JSON, MISSING_FILE_MARK, PARETO_JSON, PREDICTIONS_CSV, REPORT_FILES, TRIALS_CSV,
                              MissingRunFileError, ReportInputError, read_compressed, read_pareto_json)
from nas.report.notes import training_text
from nas.report.compressed import (drop_text, file_flips_text, file_within_tolerance, flips_as_the_file,
                                   int8_file_tolerance_text, int8_source_text, int8_test_acc_source, logit_diff_text,
                                   predicted_precision_note, scored_images, top1_text)
from nas.report.write import write_reports
from nas.report.cli import main

__all__ = ["ReportInputError", "MissingRunFileError", "write_reports", "predicted_precision_note", "read_pareto_json",
           "training_text", "main", "read_compressed", "int8_test_acc_source", "int8_source_text", "drop_text",
           "scored_images", "logit_diff_text", "top1_text", "flips_as_the_file", "file_flips_text",
           "file_within_tolerance", "int8_file_tolerance_text", "RUN_MARKER_PREFIX", "TRIALS_CSV", "PARETO_JSON",
           "METRICS_JSON", "PREDICTIONS_CSV", "REPORT_FILES", "MISSING_FILE_MARK"]
