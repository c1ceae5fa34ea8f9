"""`contactpoint assure`: the whole assessment in one command, one verdict per rollout wave.

It runs the security scenarios, the static checks, a compressed national-rollout load with
hidden adversaries, the audit log's verification, a backup and restore drill and retention on a
controlled clock, by calling each part's own Python API, then judges the results against the
declared criteria (`criteria.yaml`) and writes `report.json`, `junit.xml` and `report.html`.
"""
