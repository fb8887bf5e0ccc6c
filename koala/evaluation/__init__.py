"""Measuring colorizations: the papers' metrics, `koala evaluate` and its figures, the
independent classifier judge."""
