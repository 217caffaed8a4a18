"""Writes of the costs app, one module per concern: rollups (daily tables and shared-cost splits), and the
sources that fill the line items (CUR import, metering, Cost Explorer), budgets and waste checks."""
