"""The ape side of the deployment: read the chain into a ChainState, execute a
plan, read every parameter back. Needs a connected ape provider (the
`ape run deploy` command connects one; tests connect programmatically).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from rich.console import Console

from .config import ConfigError, DeployConfig, mock_feed_description, mock_initial_answer, network_issues, to_wad
from .plan import AssetState, Capabilities, ChainState, Plan, RecordStatus, build_plan
from .record import ROOT, AssetRecord, DeploymentRecord, TxRecord, default_record_path, display_path, load_record, save_record
from .render import Check, fmt_usd, human, make_console, print_checks, print_issues, print_plan, short_address

ZERO = "0x" + "00" * 20

_ERC20_ABI = [
    {"name": "decimals", "type": "function", "stateMutability": "view", "inputs": [], "outputs": [{"name": "", "type": "uint8"}]},
]
_FEED_ABI = _ERC20_ABI + [
    {"name": "description", "type": "function", "stateMutability": "view", "inputs": [], "outputs": [{"name": "", "type": "string"}]},
]


class DeployError(Exception):
    """The deployment stopped before sending (bad config, plan problems, declined)."""


@dataclass
class DeployResult:
    record: DeploymentRecord
    record_path: Path | None
    plan: Plan
    sent: int = 0  # transactions sent by this run
    checks: list[Check] = field(default_factory=list)
    dry_run: bool = False

    @property
    def verified(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    @property
    def mismatches(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]


@dataclass
class NetworkInfo:
    choice: str  # ecosystem:network
    ecosystem: str
    name: str
    is_dev: bool
    chain_id: int
    genesis_hash: str


def network_info() -> NetworkInfo:
    from ape import chain, networks

    provider = networks.provider
    network = provider.network
    genesis = provider.web3.eth.get_block(0)["hash"]
    return NetworkInfo(
        choice=f"{network.ecosystem.name}:{network.name}",
        ecosystem=network.ecosystem.name,
        name=network.name,
        is_dev=network.is_dev,
        chain_id=chain.chain_id,
        genesis_hash="0x" + bytes(genesis).hex(),
    )


def _project(project: Any = None) -> Any:
    if project is not None:
        return project
    from ape import Project

    return Project(ROOT)


def _contract_type(project: Any, name: str) -> Any:
    try:
        return project.contracts[name]
    except Exception:  # noqa: BLE001 (not in this project)
        return None


def _abi_item(contract_type: Any, kind: str, name: str | None = None) -> Any:
    for item in contract_type.abi:
        if item.type == kind and (name is None or getattr(item, "name", None) == name):
            return item
    return None


def capabilities(project: Any) -> Capabilities:
    """Reads what the compiled contracts take from their ABIs."""
    engine = _contract_type(project, "MarginEngine")
    extension = _contract_type(project, "MarginEngineExtension")
    configurator = _contract_type(project, "MarginConfigurator")
    ctor = _abi_item(engine, "constructor")
    ext_ctor = _abi_item(extension, "constructor") if extension is not None else None
    list_asset = _abi_item(configurator, "function", "list_asset")
    return Capabilities(
        engine_args=tuple(i.name for i in ctor.inputs),
        extension_args=None if extension is None else tuple(i.name for i in ext_ctor.inputs),
        listing_fields=tuple(c.name for c in list_asset.inputs[2].components),
        has_liquidation_settings=_abi_item(configurator, "function", "set_liquidation_settings") is not None,
    )


def _struct(abi_type: Any, values: dict) -> tuple:
    """Orders nested {field: value} like the ABI tuple type `abi_type`."""
    out = []
    for component in abi_type.components:
        value = values[component.name]
        out.append(_struct(component, value) if component.components else value)
    return tuple(out)


def engine_function(project: Any, engine_address: str, name: str) -> Any:
    """A function of the engine, also one the engine forwards to its
    MarginEngineExtension (called at the engine's address)."""
    engine = project.MarginEngine.at(engine_address)
    if _abi_item(engine.contract_type, "function", name) is not None:
        return getattr(engine, name)
    return getattr(project.MarginEngineExtension.at(engine_address), name)


def listed_assets(project: Any, engine_address: str) -> set[str]:
    engine = project.MarginEngine.at(engine_address)
    return {engine.asset_by_id(i).lower() for i in range(engine.asset_count())}


def _has_code(address: str | None) -> bool:
    from ape import networks

    return bool(address) and len(networks.provider.get_code(address)) > 0


def _web3_call(address: str, abi: list, fn: str) -> Any:
    from ape import networks

    w3 = networks.provider.web3
    try:
        return getattr(w3.eth.contract(address=address, abi=abi).functions, fn)().call()
    except Exception:  # noqa: BLE001 (not a token/feed: reported as unknown)
        return None


def _record_status(record: DeploymentRecord | None, net: NetworkInfo) -> RecordStatus:
    if record is None:
        return RecordStatus.NONE
    if record.chain_id != net.chain_id or record.network != net.choice:
        return RecordStatus.STALE
    if record.genesis_hash and record.genesis_hash.lower() != net.genesis_hash.lower():
        return RecordStatus.STALE
    recorded = [a for a in (record.configurator, record.engine, record.lens) if a]
    if recorded and not any(_has_code(a) for a in recorded):
        return RecordStatus.STALE
    return RecordStatus.CURRENT


def read_state(cfg: DeployConfig, record: DeploymentRecord | None, status: RecordStatus, deployer: str, net: NetworkInfo, project: Any) -> ChainState:
    state = ChainState(
        network=net.choice,
        is_dev=net.is_dev,
        chain_id=net.chain_id,
        deployer=deployer,
        record_status=status,
        caps=capabilities(project),
    )
    state.sequencer_has_code = cfg.sequencer.feed is None or _has_code(cfg.sequencer.feed)
    rec = record if status is RecordStatus.CURRENT else None
    if rec is not None:
        state.record_deployer = rec.deployer
        for name in ("configurator", "extension", "planner", "engine", "lens"):
            address = getattr(rec, name)
            if address and _has_code(address):
                setattr(state, name, address)
            elif address:
                state.recorded_without_code.append(name)
        state.liquidation_settings_done = any(t.step == "set_liquidation_settings" for t in rec.transactions)
    if state.configurator:
        configurator = project.MarginConfigurator.at(state.configurator)
        bound = configurator.engine()
        state.configurator_engine = None if bound == ZERO else bound
        state.configurator_owner = configurator.owner()
        pending = configurator.pending_owner()
        state.configurator_pending_owner = None if pending == ZERO else pending
    listed = listed_assets(project, state.engine) if state.engine else set()
    for a in cfg.assets:
        s = AssetState()
        arec = rec.assets.get(a.symbol) if rec is not None else None
        s.token = a.token.address or (arec.token if arec else None)
        s.feed = a.feed.address or (arec.feed if arec else None)
        s.token_has_code = _has_code(s.token)
        s.feed_has_code = _has_code(s.feed)
        if s.token_has_code:
            s.token_decimals = _web3_call(s.token, _ERC20_ABI, "decimals")
        if s.feed_has_code:
            s.feed_decimals = _web3_call(s.feed, _FEED_ABI, "decimals")
            s.feed_description = _web3_call(s.feed, _FEED_ABI, "description")
        s.listed = s.token_has_code and s.token.lower() in listed
        state.assets[a.symbol] = s
    return state


def _receipt_block(txn_hash: str) -> int | None:
    from ape import networks

    try:
        return networks.provider.get_receipt(txn_hash).block_number
    except Exception:  # noqa: BLE001
        return None


def execute_plan(
    plan: Plan,
    cfg: DeployConfig,
    record: DeploymentRecord,
    record_path: Path | None,
    account: Any,
    project: Any,
    console: Console,
) -> int:
    """Sends the plan's transactions in order; saves the record after each one."""
    sent = 0

    def note(step_name: str, txn_hash: Any, block: int | None) -> None:
        nonlocal sent
        sent += 1
        h = txn_hash if isinstance(txn_hash, str) else txn_hash.hex()
        record.transactions.append(TxRecord(step=step_name, hash=h, block=block))
        if record.deployment_block is None:
            record.deployment_block = block
        if record_path is not None:
            save_record(record, record_path)

    def deploy(container: Any, *args: Any) -> tuple[Any, int | None]:
        instance = container.deploy(*args, sender=account)
        return instance, _receipt_block(instance.txn_hash)

    caps = capabilities(project)
    args: dict[str, Any] = {
        "guardian": plan.guardian,
        "sequencer_feed": cfg.sequencer.feed or ZERO,
        "sequencer_grace_period": cfg.sequencer.grace_period,
        "configurator": record.configurator,
        "extension": record.extension,
        "planner": record.planner,
    }
    list_asset_abi = _abi_item(project.MarginConfigurator.contract_type, "function", "list_asset")
    for step in plan.steps:
        label = step.description
        if step.kind == "deploy_configurator":
            c, block = deploy(project.MarginConfigurator, cfg.maintenance_ramp_duration)
            record.configurator = args["configurator"] = c.address
            note("deploy MarginConfigurator", c.txn_hash, block)
            label = f"MarginConfigurator → {c.address}"
        elif step.kind == "deploy_extension":
            x, block = deploy(project.MarginEngineExtension, *(args[n] for n in caps.extension_args))
            record.extension = x.address
            args["extension"] = x.address
            note("deploy MarginEngineExtension", x.txn_hash, block)
            label = f"MarginEngineExtension → {x.address}"
        elif step.kind == "deploy_planner":
            planner, block = deploy(project.LiquidationPlanner)
            record.planner = args["planner"] = planner.address
            note("deploy LiquidationPlanner", planner.txn_hash, block)
            label = f"LiquidationPlanner → {planner.address}"
        elif step.kind == "deploy_engine":
            e, block = deploy(project.MarginEngine, *(args[n] for n in caps.engine_args))
            record.engine = e.address
            note("deploy MarginEngine", e.txn_hash, block)
            label = f"MarginEngine → {e.address}"
        elif step.kind == "set_liquidation_settings":
            ls = cfg.liquidation_settings
            receipt = project.MarginConfigurator.at(record.configurator).set_liquidation_settings(
                to_wad(ls.dust_threshold), ls.grace_period, sender=account
            )
            note("set_liquidation_settings", receipt.txn_hash, receipt.block_number)
        elif step.kind == "deploy_lens":
            lens, block = deploy(project.MarginLens, record.engine)
            record.lens = lens.address
            note("deploy MarginLens", lens.txn_hash, block)
            label = f"MarginLens → {lens.address}"
        elif step.kind == "set_engine":
            receipt = project.MarginConfigurator.at(record.configurator).set_engine(record.engine, sender=account)
            note("set_engine", receipt.txn_hash, receipt.block_number)
        elif step.kind == "deploy_mock_token":
            a = cfg.asset(step.symbol)
            m = a.token.mock
            token, block = deploy(project.MockERC20, m.name, m.symbol or a.symbol, m.decimals)
            arec = record.assets.setdefault(a.symbol, AssetRecord())
            arec.token, arec.mock_token = token.address, True
            note(f"deploy MockERC20 {a.symbol}", token.txn_hash, block)
            label = f"MockERC20 {a.symbol} → {token.address}"
        elif step.kind == "deploy_mock_feed":
            a = cfg.asset(step.symbol)
            feed, block = deploy(
                project.MockAggregator, a.feed.mock.decimals, mock_feed_description(a), mock_initial_answer(a)
            )
            arec = record.assets.setdefault(a.symbol, AssetRecord())
            arec.feed, arec.mock_feed = feed.address, True
            note(f"deploy MockAggregator {a.symbol}", feed.txn_hash, block)
            label = f"MockAggregator {mock_feed_description(a)} → {feed.address}"
        elif step.kind == "list_asset":
            a = cfg.asset(step.symbol)
            arec = record.assets.setdefault(a.symbol, AssetRecord())
            arec.token = a.token.address or arec.token
            arec.feed = a.feed.address or arec.feed
            configurator = project.MarginConfigurator.at(record.configurator)
            params = _struct(list_asset_abi.inputs[2], plan.listings[a.symbol].struct_values())
            receipt = configurator.list_asset(arec.token, arec.feed, params, sender=account)
            arec.asset_id = project.MarginEngine.at(record.engine).asset_id(arec.token)
            arec.listed_block = receipt.block_number
            note(f"list_asset {a.symbol}", receipt.txn_hash, receipt.block_number)
            label = f"listed {a.symbol} as asset id {arec.asset_id}"
        elif step.kind == "transfer_ownership":
            receipt = project.MarginConfigurator.at(record.configurator).transfer_ownership(plan.owner, sender=account)
            note("transfer_ownership", receipt.txn_hash, receipt.block_number)
        else:  # pragma: no cover
            raise DeployError(f"unknown step {step.kind}")
        console.print(f"  [green]✓[/] {label}", highlight=False)
    return sent


def plan_has_liquidation_settings(project: Any) -> bool:
    return capabilities(project).has_liquidation_settings


def verify(cfg: DeployConfig, record: DeploymentRecord, plan: Plan, project: Any) -> list[Check]:
    """Reads every parameter back (engine/configurator views, lens.asset_config)."""
    checks: list[Check] = []

    def check(scope: str, name: str, expected: Any, actual: Any, display: str | None = None, expected_display: str | None = None, ok: bool | None = None) -> None:
        if ok is None:
            ok = expected == actual if not isinstance(expected, str) else str(actual).lower() == expected.lower()
        checks.append(
            Check(scope, name, expected, actual, ok, str(actual) if display is None else display, expected_display or str(expected))
        )

    configurator = project.MarginConfigurator.at(record.configurator)
    engine = project.MarginEngine.at(record.engine)
    lens = project.MarginLens.at(record.lens)
    check("protocol", "configurator.engine", record.engine, configurator.engine())
    check("protocol", "engine.CONFIGURATOR", record.configurator, engine.CONFIGURATOR())
    check("protocol", "lens.ENGINE", record.engine, lens.ENGINE())
    if record.extension:
        check("protocol", "engine.EXTENSION", record.extension, engine.EXTENSION())
        check(
            "protocol",
            "extension.CONFIGURATOR",
            record.configurator,
            project.MarginEngineExtension.at(record.extension).CONFIGURATOR(),
        )
    if record.planner:
        check("protocol", "engine.PLANNER", record.planner, engine.PLANNER())
    ramp = configurator.maintenance_ramp_duration()
    check("protocol", "maintenance_ramp_duration", cfg.maintenance_ramp_duration, ramp, f"{ramp:,} s")
    check("protocol", "guardian", plan.guardian, engine.guardian())
    check("protocol", "sequencer feed", cfg.sequencer.feed or ZERO, engine.SEQUENCER_FEED())
    grace = engine.SEQUENCER_GRACE_PERIOD()
    check("protocol", "sequencer grace period", cfg.sequencer.grace_period, grace, f"{grace:,} s")
    if cfg.liquidation_settings is not None and plan_has_liquidation_settings(project):
        dust, grace, _paused_until = engine_function(project, record.engine, "liquidation_settings")()
        want = to_wad(cfg.liquidation_settings.dust_threshold)
        check("protocol", "liquidation dust threshold", want, dust, fmt_usd(dust), fmt_usd(want))
        want_grace = cfg.liquidation_settings.grace_period
        check("protocol", "liquidation grace period", want_grace, grace, f"{grace:,} s", f"{want_grace:,} s")
    owner, pending = configurator.owner(), configurator.pending_owner()
    owner_ok = owner.lower() == plan.owner.lower() or pending.lower() == plan.owner.lower()
    shown = owner if owner.lower() == plan.owner.lower() else f"{owner} (pending: {pending})"
    check("protocol", "owner", plan.owner, owner, shown, ok=owner_ok)

    listed = listed_assets(project, record.engine)
    for a in cfg.assets:
        arec = record.assets.get(a.symbol)
        params = plan.listings.get(a.symbol)
        if arec is None or arec.token is None or params is None:
            check(a.symbol, "listed", True, False, "no")
            continue
        if arec.token.lower() not in listed:
            check(a.symbol, "listed", True, False, "no")
            continue
        ac = lens.asset_config(arec.token)
        check(a.symbol, "asset_id", engine.asset_id(arec.token), ac.asset_id)
        check(a.symbol, "token", arec.token, ac.asset, short_address(ac.asset))
        check(a.symbol, "feed", arec.feed, ac.feed, short_address(ac.feed))
        for name, expected in params.expected_readback().items():
            value: Any = ac
            for part in name.split("."):
                value = getattr(value, part)
            if isinstance(expected, bool):
                value = bool(value)
            check(
                a.symbol,
                name,
                expected,
                value,
                human(name, value, params.token_decimals, params.feed_decimals),
                human(name, expected, params.token_decimals, params.feed_decimals),
            )
        paused = ac.paused
        check(a.symbol, "paused", 0, paused, "no" if paused == 0 else f"flags {paused}")
    return checks


def deploy(
    cfg: DeployConfig,
    account: Any,
    *,
    project: Any = None,
    record_path: Path | None = None,
    use_default_record: bool = True,
    dry_run: bool = False,
    confirm: Callable[[str], bool] | None = None,
    console: Console | None = None,
    config_path: str | None = None,
    show_plan: bool = True,
    show_readback: bool = True,
) -> DeployResult:
    """Plans, (unless dry_run) sends, and verifies a deployment on the
    connected network. `record_path` None and use_default_record=True:
    deployments/[local/]<network>.json; use_default_record=False: no file.
    On a non-local network `confirm(question)` must return True before
    anything is sent. Raises DeployError/ConfigError before sending on any
    problem; returns the result (check `.verified`)."""
    console = console or make_console()
    project = _project(project)
    net = network_info()
    issues = network_issues(cfg, net.choice, net.is_dev)
    if issues:
        raise ConfigError(issues, config_path)
    if record_path is None and use_default_record:
        record_path = default_record_path(net.ecosystem, net.name, net.is_dev)
    record = load_record(record_path) if record_path is not None else None
    status = _record_status(record, net)
    deployer = account.address
    console.print(
        f"[bold]xmargin deploy[/] on [bold]{net.choice}[/] (chain id {net.chain_id}) from {deployer}"
        + (f"\n  config: {config_path}" if config_path else "")
        + (f"\n  deployment file: {display_path(record_path)}" if record_path else ""),
        highlight=False,
    )
    state = read_state(cfg, record, status, deployer, net, project)
    plan = build_plan(cfg, state)
    if plan.already_deployed and record is not None:
        console.print(
            f"[green]Already deployed[/]: engine {record.engine}, configurator {record.configurator}, lens {record.lens}",
            highlight=False,
        )
        if plan.to_list:
            console.print(f"Assets in the config not listed yet: [bold]{', '.join(plan.to_list)}[/] (listing only those)")
    if show_plan or dry_run or not plan.ok:
        print_plan(console, plan, cfg, show_params=show_readback or dry_run)
    else:
        for note_text in plan.notes:
            console.print(f"[cyan]•[/] {note_text}")
    if not plan.ok:
        print_issues(console, "Cannot deploy:", plan.issues)
        raise DeployError("; ".join(plan.issues))

    if status is RecordStatus.CURRENT and record is not None:
        active = record
    else:
        active = DeploymentRecord(
            network=net.choice,
            chain_id=net.chain_id,
            genesis_hash=net.genesis_hash,
            deployer=deployer,
            config=config_path,
        )
    result = DeployResult(record=active, record_path=record_path, plan=plan, dry_run=dry_run)
    if dry_run:
        console.print(f"[yellow]Dry run:[/] {plan.transaction_count} transaction(s) planned, nothing sent.")
        return result

    if plan.steps:
        if not net.is_dev:
            question = f"Send {plan.transaction_count} transaction(s) to {net.choice} from {deployer}?"
            if confirm is None or not confirm(question):
                raise DeployError("not confirmed: nothing sent")
        console.print(f"Sending {plan.transaction_count} transaction(s):")
        result.sent = execute_plan(plan, cfg, active, record_path, account, project, console)
    # Record the resolved addresses even when nothing was sent (e.g. a fresh file).
    for a in cfg.assets:
        arec = active.assets.setdefault(a.symbol, AssetRecord())
        arec.token = a.token.address or arec.token
        arec.feed = a.feed.address or arec.feed
        if arec.asset_id is None and arec.token and state.assets[a.symbol].listed:
            arec.asset_id = project.MarginEngine.at(active.engine).asset_id(arec.token)
    if record_path is not None and (result.sent or status is not RecordStatus.CURRENT):
        save_record(active, record_path)

    result.checks = verify(cfg, active, plan, project)
    if show_readback:
        print_checks(console, result.checks, [a.symbol for a in cfg.assets])
    bad = len(result.mismatches)
    total = len(result.checks)
    if bad:
        console.print(
            f"[bold red]Read-back: {bad} of {total} values differ from the config[/] "
            "(this script never changes an existing listing or role; use the configurator's setters)."
        )
    else:
        console.print(f"[green]Read-back: all {total} values match the config.[/]")
    if record_path is not None:
        console.print(f"Deployment file: {display_path(record_path)}", highlight=False)
    console.print(f"Transactions sent: {result.sent}")
    return result


__all__ = ["DeployError", "DeployResult", "capabilities", "deploy", "engine_function", "network_info", "verify"]
