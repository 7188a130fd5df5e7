"""``python -m synthpt`` is the CLI (needed by ``accelerate launch -m synthpt``)."""

from synthpt.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
