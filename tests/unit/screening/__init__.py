"""Screening unit tests: pure file parsing and matching, no database."""
