"""The Ray Tune layer: one trainable for every method, population-only schedulers, the driver."""
