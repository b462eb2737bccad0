"""The advisor: interview, data audit, ranking, quotes, plans, the runner and the apps.

The core imports neither torch nor textual; only ``tunewise.advisor.tui`` imports textual.
"""
