"""The log read back: recovery at open (`recovery`: a hunt from its newest snapshot and
the events after it) and offline replay (`replay`: state and leaderboard as of any
event, checked against every snapshot). Neither uses trio; both only read the store
and fold events with the domain's `evolve`, so they stay exact together.
"""
