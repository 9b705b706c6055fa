"""HTCondor I/O: idle jobs from schedds, registered pilots from the user pool's collector.

Only this package (and clouds/ for HTCondor-G) talks to HTCondor. The bindings' calls
block and hold the GIL for their whole length, so the operator runs them in a worker
process per pool with a deadline (``isolated.py``); ``reader.py`` awaits those without
blocking the event loop, and sends any other Pool through ``asyncio.to_thread``.
"""
