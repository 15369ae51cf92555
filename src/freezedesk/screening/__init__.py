"""Sanctions and wallet screening: official lists, multilingual name matching, address matching."""
