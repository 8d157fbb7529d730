"""empirical: the measured half (spectral-injection diagnostic)."""
