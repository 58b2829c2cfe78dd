"""The stages a frame goes through, shared by the worker, ``commands.analyze`` and the benches:
detect (``detectors``), frame (``framing``), classify (``classifier``, ``litert``,
``batching``), track (``tracker``), and draw (``render``); ``faces`` strings them together
for one frame. Nothing here opens a socket or reads a process's settings file: processes wire
these to their sockets and loops."""
