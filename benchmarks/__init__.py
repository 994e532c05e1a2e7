"""glasskey benchmarks: `python -m benchmarks.run` (``make bench``) writes BENCHMARKS.md.

Modules:

* ``common``   scales, timing statistics, operator fixtures, peak-memory helpers;
* ``instrument`` per-component timing of the core's storage and crypto calls;
* ``world``    building vaults (10,000 credentials x 25 operators, 1,000,000
  signed audit entries, checkout history) and caching them under ``.cache/``;
* ``steps``    the measurements, each run by ``benchmarks.worker`` in its own
  process so that peak memory (``ru_maxrss``) is per step;
* ``kdbx``     a minimal KDBX 4 writer, so the KeePassXC peer database uses
  Argon2id at the same parameters as the vault;
* ``peer``     the keepassxc-cli comparison;
* ``experiments`` prototypes of proposed core changes, measured on the same vault;
* ``team``     team mode (issue 13): the PostgreSQL backend beside the file backend,
  with its client processes in ``team_clients`` and its report section in
  ``team_report``;
* ``report``   the stdout table and BENCHMARKS.md (``analysis.md`` is the
  hand-written analysis, its ``{{fmt:path}}`` placeholders filled from the run).
"""
