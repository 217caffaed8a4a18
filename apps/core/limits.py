"""Bounds shared by several apps' forms and APIs (a larger value is a mistake, and overflows a date or a column)."""

MAX_TTL_HOURS = 24 * 365 * 10  # a workspace's time to live, a cluster's running hours
