"""popmix: find how to mix training data from many domains.

Layers, top to bottom; each imports only those below it (siblings joined by ``|`` import
neither each other), as import-linter checks (``lint-imports``; the contract is in
``pyproject.toml``, the reasons in ``docs/explanation/design.md``):

- ``popmix.cli``: the ``popmix`` command;
- ``popmix.reporting`` | ``popmix.export``: a finished run as an HTML page | a mixture in a
  trainer's format;
- ``popmix.tune``: Ray Tune: the trainable, the searchers (``popmix.tune.searchers``), the
  runner, a search's outputs;
- ``popmix.analysis``: the swarm's fitted surface and its figures, the Lie bracket;
- ``popmix.train``: the proxy model and the one training loop;
- ``popmix.data`` | ``popmix.records``: domains and the mixture sampler | the files popmix
  writes and reads back (weights, surfaces, trial specs, ``summary.json``);
- ``popmix.config``: the experiment and search-space settings;
- ``popmix.policies``: mixing methods, pure NumPy, one interface;
- ``popmix._util``: leaf utilities (atomic writes, the simplex, statistics, a progress bar).
"""

__version__ = "0.1.0"
