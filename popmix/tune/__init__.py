"""The Ray Tune layer: one trainable for every method, the population's searchers
(:mod:`popmix.tune.searchers`), one way to run a Tuner (:mod:`popmix.tune.runner`), and the
commands that run Tuners: ``popmix search`` (:mod:`popmix.tune.search`), ``calibrate`` and
``confirm``."""
