"""qosd: the QoS daemon. Probes the service, repairs what it can, never loops, exports metrics.

Layout (each module small and injected into the next, so tests run on a fake clock):
`config` (JSON file -> validated dataclasses), `clock`, `probes` (HTTP, systemd unit, TCP,
log rate, config files), `actions` (sudo systemctl / nginx -t), `guard` (loop protection),
`state` (pause and escalation files shared by the CLI and the daemon), `engine` (one check
cycle: thresholds, grace, dependencies, interventions), `metrics`, `notify` (sd_notify),
`daemon` (the loop), `unit` (systemd unit and sudoers text), `cli` (`python -m qosd`).
"""

__version__ = "1.0.0"
