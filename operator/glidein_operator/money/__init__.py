"""Money: what pilots cost (accounting) and what the budget allows (the gate, the kill switch).

Pure code, time and prices passed in, so a simulated month runs in seconds.
"""
