"""Encrypted, integrity-checked backups of the registry, their restore, and the restore drill.

`contactpoint backup` reads every registry table in one consistent snapshot and streams it, in a
form neither SQLite nor PostgreSQL owns, into an age file (age-encryption.org/v1) sealed to the
recipients' age public keys (`reference_app.kit.agefile`): the machine that makes a backup cannot
read it back, and the standard `age` tool opens it with the identity. A
manifest inside gives each table's row count and a SHA-256 over its rows in primary-key order,
so the same data gives the same checksum on either backend. `contactpoint restore` loads a
backup into an empty database in one transaction and commits only once every table's count and
checksum, recomputed from the database, match the manifest; the restore drill does the same
into a scratch database and compares it with the live source too.
"""
