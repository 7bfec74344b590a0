"""riskstream: the command line and the local stack that wire the parts together.

Nothing imports this package; it imports the others and hands them plain parameters.
"""

__version__ = "0.1.0"
