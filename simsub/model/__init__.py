"""The discrete-event model: it only simulates and reports to a recorder."""
