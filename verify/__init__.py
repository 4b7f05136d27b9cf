"""Verification of a deployed release: the checks of the original QoS process that are code.

`python -m verify <check> --run-dir DIR` runs one check with the settings playbooks/verify.yml
wrote to DIR/config.json and leaves DIR/<check>.json; `python -m verify report` turns every
result of the run into the reports (JSON, JUnit XML, CSV, summary). See verify/README.md.
"""
