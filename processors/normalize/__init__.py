"""Normalizers: raw store notifications to canonical events. Pure, like the folds."""
