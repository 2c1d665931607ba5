"""Reads: queries the views, API and services share."""
