"""Tables, statistics and charts computed from a run's records (never the model)."""
