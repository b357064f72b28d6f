"""Analyses on top of the training loop: the swarm's fitted surface and its figures, and the Lie
bracket of domains' gradient fields (``popmix bracket``)."""
