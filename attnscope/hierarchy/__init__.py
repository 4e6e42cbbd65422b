"""Hierarchical sequence models (EEG sleep staging): attention across epochs, across
channels and over time, found in a capture and grouped into (epoch, channel) structure.

Example:
    >>> from attnscope.hierarchy import dashboard
    >>> res = dashboard(model, test_set, "figs", num_samples=2, channel_names=names)
"""

from __future__ import annotations

from attnscope.hierarchy.gather import Hierarchy, collect
from attnscope.hierarchy.levels import Level, find_levels
from attnscope.hierarchy.pages import DashboardResult, dashboard
from attnscope.hierarchy.stored import plot_stored_dashboard, store_levels

__all__ = ["DashboardResult", "Hierarchy", "Level", "collect", "dashboard", "find_levels",
           "plot_stored_dashboard", "store_levels"]
