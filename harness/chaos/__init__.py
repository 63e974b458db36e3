"""Fault-injection scenarios on the real processes (``streamrec chaos``)."""
