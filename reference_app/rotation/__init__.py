"""Field-key rotation after the new key is current: which rows each key still seals, the pass
that re-encrypts them under the current key, and retiring a key nothing rewritable uses.

`deploy/ansible/rotate_keys.yml` makes a new field key current online; rows written before keep
their old key until rewritten. `contactpoint-registry keys reencrypt` rewrites them (every
personal field and sealed flag), so an old key, a suspected compromised one above all, can be
retired. Text sealed into the audit trail cannot be rewritten: the trail is hash-chained, and
its events are evidence kept as written. A key such text uses stays as long as those events.
"""
