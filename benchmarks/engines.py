"""Speed and memory of the RTRL engines: the script form of ``rtrl bench``.

Microseconds per real-time step (NumPy reference, compiled kernels, Schmidhuber's hybrid,
epochwise BPTT) at n = 3, 8, 16, 32, 64, 128 with m = 2, each also as a ratio to a plain
NumPy product (n x n) . (n x nK) timed in the same run; batched throughput; compile time
(empty Numba cache, then cached, each in a new process); peak RSS against sequence length
for real-time RTRL (flat) and epochwise BPTT (growing), with a plot. The figures and a
targets table are printed and written to ``--out`` (bench.json, bench.md, memory.png).

Usage::

    python benchmarks/engines.py --quick            # about 1-2 minutes
    python benchmarks/engines.py --out bench-out    # the full run (several minutes)

Timings run in a child process with 1 BLAS thread (``--threads``); see docs/performance.md.
"""

import sys

from rtrl.bench import main

if __name__ == "__main__":
    sys.exit(main())
