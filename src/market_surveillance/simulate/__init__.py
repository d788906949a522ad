"""Synthetic exchange with labelled manipulation scenarios."""
