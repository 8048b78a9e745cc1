"""When an impression's label is known: the attribution window.

A click within :data:`ATTRIBUTION_WINDOW` of the impression makes it a positive label, sent at
click time; when the window closes without a click, a negative label is sent at the close. So
every impression has exactly one label, at most half an hour after it, and an impression older
than the window is always labelled.
"""

from __future__ import annotations

from datetime import timedelta

__all__ = ["ATTRIBUTION_WINDOW"]

ATTRIBUTION_WINDOW = timedelta(minutes=30)
"""A click counts for the impression it follows when it comes no later than this after it."""
