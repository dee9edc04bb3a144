"""Keeper exceptions and the process exit codes they map to.

Exit codes follow BSD ``sysexits.h`` so that a supervisor (systemd,
Kubernetes) can tell an operator error from a transient outage:

====  =================  ===================================================
code  name               meaning
====  =================  ===================================================
0     OK                 clean stop (signal or ``stop_event``)
1     INTERNAL           unexpected error (a bug: see the log)
2     USAGE              bad command line (click's own usage errors)
65    STARTUP_CHECK      node reachable but wrong: chain id differs from the
                         config, a contract address has no code, the key does
                         not match the configured address
69    NODE_UNREACHABLE   the RPC node did not answer at startup
77    KEY_ERROR          keystore missing/unreadable, password env var unset
                         or wrong, ape alias unknown
78    BAD_CONFIG         config file missing, not TOML, or invalid values
====  =================  ===================================================
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_STARTUP_CHECK = 65
EXIT_NODE_UNREACHABLE = 69
EXIT_KEY_ERROR = 77
EXIT_BAD_CONFIG = 78


class KeeperError(Exception):
    """Base class; ``exit_code`` is the process exit status for the CLI."""

    exit_code = EXIT_INTERNAL


class ConfigError(KeeperError):
    """The configuration is missing or invalid. ``issues``: one line per
    problem, each naming the field (``section.field: message``)."""

    exit_code = EXIT_BAD_CONFIG

    def __init__(self, issues: list[str] | str):
        self.issues = [issues] if isinstance(issues, str) else list(issues)
        super().__init__("; ".join(self.issues))


class KeyLoadError(KeeperError):
    """The signing key could not be loaded (never carries key material)."""

    exit_code = EXIT_KEY_ERROR


class NodeUnreachable(KeeperError):
    """The RPC node did not answer (connection refused, timeout, HTTP error)."""

    exit_code = EXIT_NODE_UNREACHABLE


class StartupCheckFailed(KeeperError):
    """Startup hygiene failed: wrong chain id, contract without code, key and
    address mismatch."""

    exit_code = EXIT_STARTUP_CHECK
