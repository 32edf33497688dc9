"""Contracts: the models carried on every topic and API. Validation only, no logic."""
