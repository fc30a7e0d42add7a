"""The risk watch's detectors: pure functions of the event stream and the clock."""
