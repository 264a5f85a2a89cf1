"""Simulated loyalty programs: `generator` (the simulation, canonical files) and `platforms`."""

from . import platforms  # noqa: F401  (registers the Yotpo, LoyaltyLion and Voucherify writers)
