"""Documentation of the auth options every library/pve_* module takes (module_utils/pve_api.py)."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  api_host:
    description:
      - Host name or address of the PVE API.
      - Falls back to the E(PROXMOX_HOST) environment variable.
    type: str
    required: true
  api_port:
    description:
      - PVE API port. Falls back to E(PROXMOX_PORT).
    type: int
    default: 8006
  api_user:
    description:
      - User for password authentication, as C(user@realm). Falls back to E(PROXMOX_USER).
      - With O(api_token_id) given as C(user@realm!name) it may be left out.
    type: str
  api_password:
    description:
      - Password of O(api_user). Falls back to E(PROXMOX_PASSWORD). Never logged.
    type: str
  api_token_id:
    description:
      - API token, as C(user@realm!name). Falls back to E(PROXMOX_TOKEN_ID).
    type: str
  api_token_secret:
    description:
      - Secret of O(api_token_id). Falls back to E(PROXMOX_TOKEN_SECRET). Never logged.
    type: str
  validate_certs:
    description:
      - Verify the API's TLS certificate. Falls back to E(PROXMOX_VALIDATE_CERTS).
    type: bool
    default: true
  ca_path:
    description:
      - CA bundle to verify the API's certificate with. Falls back to E(PROXMOX_CA_PATH).
    type: path
  api_timeout:
    description:
      - Seconds to wait for one HTTP request.
    type: int
    default: 30
  api_retries:
    description:
      - Retries, with backoff, of requests that failed transiently (connection errors,
        502/503/504, C(locked) or lock timeouts). Validation errors (4xx) are never retried.
    type: int
    default: 4
requirements:
  - proxmoxer >= 2.0
  - requests
"""
