"""The whole method in one command (``synthpt run``) and experiment grids (``synthpt experiment``)."""
