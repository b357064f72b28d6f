"""The shipped experiment and search-space files (package data, so an installed popmix finds
them from any folder). The repository's top-level ``experiments/`` and ``search_spaces/`` are
links to these folders."""
