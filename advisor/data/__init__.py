"""Data files of the advisor (the hardware catalogue); no code."""
