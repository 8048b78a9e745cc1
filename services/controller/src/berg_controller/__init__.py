"""Berg retraining controller: turns alerts, schedules and data volume into exactly one pipeline run."""
