"""The PBX simulator: a faithful test double of Asterisk for tests, the demo and benchmarks.

Nothing in callcore's runtime path imports this package.
"""
