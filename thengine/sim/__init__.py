"""Simulated players: the workload generator and `thengine bench` (`bench`), and the
guided `thengine demo` (`demo`). They drive a real engine through its public API, as a
game server would; nothing in the engine depends on them.
"""
