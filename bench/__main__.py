"""``python -m bench <name>|all`` from the repository's root; ``python -m bench --help``
lists the benchmarks."""

from bench.cli import app

if __name__ == "__main__":
    app()
