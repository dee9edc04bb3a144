"""Deploys (or completes) an xmargin deployment from a YAML config.

    ape run deploy --network ethereum:local:foundry --config deployments/config/local.yaml
    ape run deploy --network ethereum:sepolia:<provider> --config deployments/config/sepolia.yaml \
        --account <alias> --dry-run

Order: MarginConfigurator(ramp) -> MarginEngineExtension(configurator,
guardian, sequencer feed, grace) -> LiquidationPlanner() ->
MarginEngine(same, extension, planner) ->
MarginLens(engine) -> configurator.set_engine -> set_liquidation_settings ->
configurator.list_asset per asset [-> transfer_ownership]; the constructor
arguments and the listing struct follow the compiled ABIs. The config is
validated before anything is sent; addresses land in
deployments/<network>.json (deployments/local/ for local chains and forks,
git-ignored). Re-running against an existing deployment lists only the
assets not listed yet and changes nothing else. Every parameter is read
back and compared with the config at the end (exit 1 on a mismatch).
The logic lives in scripts/_xmargin_deploy/ (importable without ape).
"""

from pathlib import Path

import click
from ape.cli import ConnectedProviderCommand, account_option, ape_cli_context


def _load_config(ctx, param, value):
    # Runs while parsing the command line: a bad config fails before any
    # network connection, let alone a transaction.
    from scripts._xmargin_deploy import ConfigError, load_config

    ctx.meta["xmargin_config_path"] = value
    try:
        return load_config(value)
    except ConfigError as err:
        raise click.BadParameter("\n" + str(err), ctx=ctx, param=param) from None


@click.command(cls=ConnectedProviderCommand, short_help="Deploy xmargin from a YAML config")
@ape_cli_context()
@account_option(prompt=False)
@click.option(
    "--config",
    "config",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    callback=_load_config,
    help="Deployment config (YAML), e.g. deployments/config/local.yaml.",
)
@click.option("--dry-run", is_flag=True, help="Print the plan and the converted parameters; send nothing.")
@click.option(
    "--deployment-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Override the deployment record path (default deployments/[local/]<network>.json).",
)
def cli(cli_ctx, network, account, config, dry_run, deployment_file):
    from scripts._xmargin_deploy import ConfigError
    from scripts._xmargin_deploy.chain import DeployError, deploy
    from scripts._xmargin_deploy.record import display_path
    from scripts._xmargin_deploy.render import make_console

    if account is None:
        if network.is_dev:
            # Local chains: anvil's first funded test account.
            account = cli_ctx.account_manager.test_accounts[0]
        else:
            from ape.cli import select_account

            account = select_account("Select the deployer account")

    config_path = click.get_current_context().meta.get("xmargin_config_path")
    try:
        result = deploy(
            config,
            account,
            project=cli_ctx.local_project,
            record_path=deployment_file,
            dry_run=dry_run,
            confirm=lambda question: click.confirm(question, default=False),
            console=make_console(),
            config_path=display_path(config_path) if config_path else None,
        )
    except ConfigError as err:
        raise click.ClickException(str(err)) from None
    except DeployError as err:
        raise click.ClickException(f"deployment stopped before sending: {err}") from None
    if not dry_run and not result.verified:
        raise click.ClickException("read-back does not match the config (see above)")
