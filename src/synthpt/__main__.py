"""``python -m synthpt`` is the CLI (needed by ``accelerate launch -m synthpt``)."""

import sys

from synthpt.core.distributed import maybe_relaunch_multi_cpu

if __name__ == "__main__":
    maybe_relaunch_multi_cpu(sys.argv[1:])  # `accelerate launch --cpu --num_processes N -m synthpt`
    from synthpt.cli import main

    raise SystemExit(main())
