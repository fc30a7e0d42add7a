"""``python -m bench ledger|gateway|import|settlement|reconcile|rails|all``, from the root."""

from bench.cli import app

if __name__ == "__main__":
    app()
