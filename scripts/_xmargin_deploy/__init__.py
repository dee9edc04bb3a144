"""xmargin deployment library, shared by `ape run deploy`, `ape run demo` and
the integration tests.

  config  YAML -> validated pydantic models -> exact on-chain integers (pure)
  plan    what to send, from the config and a ChainState snapshot (pure)
  record  deployments/[local/]<network>.json (pure)
  render  rich tables and human formatting (pure)
  chain   reads the chain, executes a plan, reads every parameter back (ape)

The folder name starts with "_" so `ape run` does not list it as a script
group; import it as `scripts._xmargin_deploy`.
"""

from .config import ConfigError, DeployConfig, ListingParams, load_config, parse_config
from .plan import ChainState, Plan, RecordStatus, build_plan
from .record import DeploymentRecord, default_record_path, load_record

__all__ = [
    "ChainState",
    "ConfigError",
    "DeployConfig",
    "DeploymentRecord",
    "ListingParams",
    "Plan",
    "RecordStatus",
    "build_plan",
    "default_record_path",
    "load_config",
    "load_record",
    "parse_config",
]
