"""Shared test configuration: hypothesis profiles (dev, ci derandomized, thorough), and Ctrl-C."""

import os
import signal

from hypothesis import HealthCheck, settings

settings.register_profile("dev", max_examples=60, deadline=None)
settings.register_profile(
    "ci",
    max_examples=120,
    deadline=None,
    derandomize=True,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("thorough", max_examples=2000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))

# A shell's background job (`pytest ... &` without job control, as under nohup or a runner)
# starts with SIGINT ignored, and Python then installs no KeyboardInterrupt handler: the tests
# that interrupt a run with SIGINT (and the CLI subprocess one, which inherits the disposition)
# would wait for a signal that never comes. Restore Python's default.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
