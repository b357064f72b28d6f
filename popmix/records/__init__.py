"""The documents popmix writes and reads back, each with one writer and one reader.

- :mod:`popmix.records.weights`: the weights-schedule format (``popmix-weights/1``):
  ``weights.json``, ``best_schedule.json``, a checkpoint's ``schedule.json``, ...;
- :mod:`popmix.records.surface`: the swarm's fitted surface (``popmix-surface/1``);
- :mod:`popmix.records.trial`: a trial's spec, as Tune stores it in every trial's config;
- :mod:`popmix.records.summary`: ``summary.json`` (``popmix-summary/1``) and its typed reader;
- :mod:`popmix.records.table`: the summary as the printed table (the same text in the
  terminal, TensorBoard and the HTML report).

Below the layers that train and search (data, train, analysis, tune), above config and the
policies (a trial's spec names a policy and builds it through the registry). No torch, no Ray.
"""
