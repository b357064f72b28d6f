"""popmix: find how to mix training data from many domains.

Layers, each importing only the ones before it:

- ``popmix.data``: domains (brown16, synthetic, your files) and the mixture sampler;
- ``popmix.policies``: mixing methods, pure NumPy, one interface;
- ``popmix.train``: the proxy model and the one training loop;
- ``popmix.tune``: Ray Tune trainables and searchers;
- ``popmix.cli``: the ``popmix`` command.
"""

__version__ = "0.1.0"
