"""Payouts: paying what closed periods left owed, as a saga over two-phase transfers."""
