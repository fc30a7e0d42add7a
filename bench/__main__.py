"""``python -m bench ledger|gateway|import|settlement|all`` from the repository's root."""

from bench.cli import app

if __name__ == "__main__":
    app()
