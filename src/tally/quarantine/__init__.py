"""The quarantine: refused inputs kept with their reason, to inspect, fix and re-drive."""
