"""`python -m kaib.sandbox.runtime forward '<routes json>'`: the forwarder process (see forwarder.py)."""

import sys

from kaib.sandbox.runtime.forwarder import main

if len(sys.argv) != 3 or sys.argv[1] != "forward":
    sys.exit("usage: python -m kaib.sandbox.runtime forward '<routes json>'")
sys.exit(main(sys.argv[2:]))
