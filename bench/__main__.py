"""``python -m bench ledger|gateway|import|settlement|reconcile|lifecycle|all`` (from the
repository's root)."""

from bench.cli import app

if __name__ == "__main__":
    app()
