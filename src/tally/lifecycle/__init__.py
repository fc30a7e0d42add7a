"""Data lifecycle: partitions, seals, archives, backups and retention."""
