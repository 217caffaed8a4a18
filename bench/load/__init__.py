"""`make load`: see __main__.py."""
