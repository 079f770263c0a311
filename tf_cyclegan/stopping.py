"""Ctrl-C and SIGTERM as a request to stop after the current step."""

import signal


class StopSignals:
    """While active, SIGINT/SIGTERM set a flag the training loop checks between steps.

    An exception raised at an arbitrary point can be swallowed (e.g. inside a finalizer)
    and the run would go on, so the first signal only asks. A second SIGINT stops at once
    (KeyboardInterrupt). The previous handlers are restored on exit.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.received = []
        self._previous = {}

    def __bool__(self):
        return bool(self.received)

    def _handle(self, signum, frame):
        if self.received and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.received.append(signum)

    def __enter__(self):
        self._previous = {sig: signal.getsignal(sig) for sig in self.SIGNALS}
        for sig in self.SIGNALS:
            signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        return False
