"""Paved's command line (`paved`) and Python client (`from paved.client import Paved`), over the REST API only."""
