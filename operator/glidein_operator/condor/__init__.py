"""HTCondor I/O: idle jobs from schedds, registered pilots from the user pool's collector.

Only this package (and clouds/ for HTCondor-G) talks to HTCondor. Every call here blocks;
callers on the event loop go through ``asyncio.to_thread`` (see ``reader.py``).
"""
