"""Leaf utilities every layer may use: atomic JSON writes, simplex projections, small-sample
statistics, a progress bar, and matplotlib for files. They import nothing of popmix's."""
