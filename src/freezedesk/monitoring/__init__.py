"""Transaction monitoring: the event model, ingestion and synthetic data (rules and engines follow)."""
