"""``python -m nnc.sweep SPEC.toml ...``: the same as ``nnc sweep SPEC.toml ...``."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
