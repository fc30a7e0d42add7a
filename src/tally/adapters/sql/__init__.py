"""SQL written once for both databases: SQLite and PostgreSQL subclass or call it.

The shared stores (back office, quarantine, reconciliation), row <-> domain mapping and
the migration runner; each database's package supplies placeholders, timestamps and
transactions.
"""
