"""Local stand-ins of the loyalty platforms' APIs (real HTTP on 127.0.0.1), for the pull's tests and
`make demo PULL=1`: each serves the vendors' published objects with the platform's documented pagination,
authentication and error bodies, plus faults (server.py). Never imported by the pipeline.
"""

from .loyaltylion import LoyaltyLionStandIn
from .server import StandIn
from .voucherify import VoucherifyStandIn

__all__ = ["LoyaltyLionStandIn", "StandIn", "VoucherifyStandIn"]
