"""Launchers: how a recorded run becomes a pipeline run (a detached local process, or a Kubeflow run)."""

from berg_controller.launchers.base import Launcher, LaunchError, LaunchUnavailable, Progress, RecordStarted

__all__ = ["LaunchError", "LaunchUnavailable", "Launcher", "Progress", "RecordStarted"]
