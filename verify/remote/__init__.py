"""Code shipped to the hosts by playbooks/verify.yml (run there, not imported here)."""
