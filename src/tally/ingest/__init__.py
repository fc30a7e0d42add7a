"""Bulk ways in: providers' batch files and operators' partner feeds."""
