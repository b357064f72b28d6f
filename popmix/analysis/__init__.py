"""Analyses on top of the training loop: the Lie bracket of domains' gradient fields."""
