"""Run one measurement in this process: ``python -m benchmarks.worker STEP`` (JSON on stdin).

The result is printed as one JSON line on stdout; progress goes to stderr.
Each step runs in its own process so that its peak memory is its own.
"""

from __future__ import annotations

import json
import sys

from benchmarks.common import peak_rss_mib


def main() -> None:
    name = sys.argv[1]
    args = json.loads(sys.stdin.read() or "{}")
    from benchmarks import steps

    result = steps.main(name, args)
    result.setdefault("peak_rss_mib", peak_rss_mib())
    sys.stdout.write("\n" + json.dumps(result, default=str) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
