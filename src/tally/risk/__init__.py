"""Risk watch: detectors, forecasts, alerts and the playbooks that answer them."""
