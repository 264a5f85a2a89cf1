"""`make bench`: speed and memory of a day's run at N members (see __main__.py and the README)."""
