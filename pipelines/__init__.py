"""How the assay graph runs: definitions, jobs, sensors, schedules, partitions, profiles."""

import warnings

import dagster as dg

# Data versions on Output and partitioned asset checks are deliberate choices (docs/decisions.md);
# their beta / preview notices would otherwise print on every load and every step.
warnings.filterwarnings("ignore", category=dg.BetaWarning)
warnings.filterwarnings("ignore", category=dg.PreviewWarning)
