"""Where the vault's state lives: a declared interface and the backends behind it.

``interface`` holds the Protocols every service and front is written against
(``Store``, ``Transaction``, ``Table``, the audit reader and writer, and the
seq-based ``AuditCursor``). ``files`` is the file backend (vault.json, shards,
audit.jsonl); a second backend implements the same Protocols and passes the
same contract suite (tests/test_storage_contract.py).
"""
