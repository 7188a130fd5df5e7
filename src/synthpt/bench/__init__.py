"""``synthpt bench``: every benchmark figure in one place (``benchmarks/README.md`` says how
each is measured). Each figure prints a ratio against a reference measured in the same process."""
