"""Where the gas of a measured transaction goes (`run_gas --trace`).

Replays each measured transaction with anvil's `debug_traceTransaction`
(default struct logger; anvil must run with --steps-tracing) and breaks its
gasUsed down into intrinsic gas (21,000 + calldata), execution per contract
(exclusive of the frames it calls) and per kind (storage reads, storage
writes, account access / call overhead, events, the rest = computation and
memory), minus the refund. Every SLOAD/SSTORE is labelled with the storage
variable and key it touches (slots are matched against keccak(slot . key)
of the compiled storage layouts and the scenario's ids, accounts and
rounds), every call with its target and whether the account was cold.
"""

from __future__ import annotations

import bisect
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from eth_utils import keccak, to_checksum_address

CALL_OPS = {"CALL", "STATICCALL", "DELEGATECALL", "CALLCODE"}
ADDRESS_OPS = {"EXTCODESIZE", "EXTCODEHASH", "BALANCE", "EXTCODECOPY"}
PRECOMPILES = {i for i in range(1, 0x12)}  # prague: 0x01..0x11


def _word(x: int) -> bytes:
    return x.to_bytes(32, "big")


def _int(h: str) -> int:
    return int(h, 16)


def _addr(h: str) -> str:
    return to_checksum_address("0x" + f"{_int(h) & (2**160 - 1):040x}")


# ---------------------------------------------------------------------------
# Storage labels
# ---------------------------------------------------------------------------


def _leaves(layout: dict, prefix: str = "") -> list[tuple[str, dict]]:
    out = []
    for name, v in layout.items():
        if isinstance(v, dict) and "slot" in v and "type" in v:
            out.append((prefix + name, v))
        elif isinstance(v, dict):
            out.extend(_leaves(v, prefix + name + "."))
    return out


def _hashmap_key_types(type_str: str) -> list[str]:
    keys = []
    s = type_str.replace(" ", "")
    while s.startswith("HashMap["):
        inner = s[len("HashMap[") : -1]
        depth = 0
        for i, ch in enumerate(inner):
            if ch == "[":
                depth += 1
            elif ch == "]":
                depth -= 1
            elif ch == "," and depth == 0:
                keys.append(inner[:i])
                s = inner[i + 1 :]
                break
        else:
            break
    return keys


class SlotLabels:
    """slot (int) -> label, per storage address."""

    def __init__(self, scenario):
        self.by_address: dict[str, dict[int, str]] = {}
        self.names: dict[str, str] = {}
        sc = scenario
        for actor, a in sc.addr.items():
            self.names[a] = actor
        for kind, a in sc.contracts.items():
            self.names[a] = kind
        for sym, a in sc.tokens.items():
            self.names[a] = f"{sym} token"
        for sym, a in sc.feeds.items():
            self.names[a] = f"{sym} feed"
        ids = {i: s for i, s in enumerate(sc.tokens)}  # listing order = asset id
        addresses = {a: n.replace(" token", "") for a, n in self.names.items()}
        uint_keys: dict[int, str] = {}
        for i, sym in ids.items():
            uint_keys[i] = sym
        for actor, a in sc.addr.items():
            key = int(a, 16) << 8
            uint_keys[key] = actor
            for i, sym in ids.items():
                uint_keys[key << 8 | i] = f"{actor}·{sym}"
        round_keys = {(1 << 64) | n: f"round {n}" for n in range(1, 16)}
        candidates = {"address": {int(a, 16): n for a, n in addresses.items()}, "uint256": uint_keys, "uint80": round_keys}

        def build(layout: dict) -> dict[int, str]:
            table: dict[int, str] = {}
            for name, v in _leaves(layout):
                short = name.split(".")[-1]
                slot = v["slot"]
                keys = _hashmap_key_types(v["type"])
                if not keys:
                    for j in range(v.get("n_slots", 1)):
                        table[slot + j] = short if j == 0 else f"{short}+{j}"
                    continue
                level = {slot: short}
                for kt in keys:
                    cands = candidates.get(kt, candidates["uint256"])
                    nxt = {}
                    for base, label in level.items():
                        for k, klabel in cands.items():
                            nxt[int.from_bytes(keccak(_word(base) + _word(k)), "big")] = f"{label}[{klabel}]"
                    level = nxt
                table.update(level)
            return table

        engine_table = build(sc.art["engine"]["layout"]["storage_layout"])
        self.by_address[sc.contracts["engine"]] = engine_table
        token_table = build(sc.art["erc20"]["layout"]["storage_layout"])
        feed_table = build(sc.art["feed"]["layout"]["storage_layout"])
        for a in sc.tokens.values():
            self.by_address[a] = token_table
        for a in sc.feeds.values():
            self.by_address[a] = feed_table

    def name(self, address: str) -> str:
        return self.names.get(address, address)

    def slot(self, address: str, slot: int) -> str:
        return self.by_address.get(address, {}).get(slot, f"0x{slot:x}")


# ---------------------------------------------------------------------------
# Trace analysis
# ---------------------------------------------------------------------------


class PcFunctions:
    """pc -> source function. The compiler's map has an entry where the
    source position changes; a pc without one belongs to the nearest mapped
    pc below it (code of a function is contiguous)."""

    def __init__(self, pcs: dict[str, str]):
        items = sorted((int(pc), fn) for pc, fn in pcs.items())
        self.pcs = [pc for pc, _ in items]
        self.fns = [fn for _, fn in items]

    def function(self, pc: int) -> str:
        i = bisect.bisect_right(self.pcs, pc) - 1
        return self.fns[i] if i >= 0 else "(dispatch)"



@dataclass
class Frame:
    code: str
    storage: str
    depth: int
    start_gas: int
    caller_gas_before: int = 0
    caller_fn: str | None = None  # function of the calling frame that made the call


@dataclass
class Breakdown:
    op_id: str
    label: str
    gas_used: int
    intrinsic: int = 0
    calldata_bytes: int = 0
    calldata_zero: int = 0
    execution: int = 0
    refund: int = 0
    by_contract: dict = field(default_factory=dict)  # contract -> exclusive gas
    by_kind: dict = field(default_factory=dict)  # kind -> gas
    by_function: dict = field(default_factory=dict)  # engine/extension source function -> gas (incl. its external calls)
    sloads: list = field(default_factory=list)  # (contract, label, cold, cost)
    sstores: list = field(default_factory=list)  # (contract, label, cost, new value is zero)
    calls: list = field(default_factory=list)  # (op, caller, target, cold, overhead)
    logs: list = field(default_factory=list)  # (contract, op, cost)
    transient: Counter = field(default_factory=Counter)
    steps: int = 0

    def as_dict(self) -> dict:
        return {
            "op_id": self.op_id,
            "label": self.label,
            "gas_used": self.gas_used,
            "intrinsic": self.intrinsic,
            "calldata_bytes": self.calldata_bytes,
            "calldata_zero_bytes": self.calldata_zero,
            "execution": self.execution,
            "refund": self.refund,
            "by_contract": self.by_contract,
            "by_kind": self.by_kind,
            "by_function": self.by_function,
            "sload": {
                "cold": sum(1 for s in self.sloads if s[2]),
                "warm": sum(1 for s in self.sloads if not s[2]),
                "items": [{"contract": c, "slot": l, "cold": cold, "gas": g} for c, l, cold, g in self.sloads],
            },
            "sstore": [{"contract": c, "slot": l, "gas": g, "to_zero": z} for c, l, g, z in self.sstores],
            "calls": [{"op": o, "from": f, "to": t, "cold": cold, "overhead": g} for o, f, t, cold, g in self.calls],
            "logs": [{"contract": c, "op": o, "gas": g} for c, o, g in self.logs],
            "transient": dict(self.transient),
            "steps": self.steps,
        }


def analyse(chain, labels: SlotLabels, op, pc_maps: dict[str, dict] | None = None) -> Breakdown:
    """pc_maps: code address -> {pc: "module.function"} for the contracts
    whose gas is broken down by source function."""
    pc_maps = pc_maps or {}
    w3 = chain.w3
    tx = w3.eth.get_transaction(op.tx_hash)
    receipt = w3.eth.get_transaction_receipt(op.tx_hash)
    trace = chain.rpc(
        "debug_traceTransaction",
        [op.tx_hash, {"disableStorage": True, "enableMemory": False, "disableStack": False, "enableReturnData": False}],
    )
    logs = trace["structLogs"]
    if not logs:
        raise RuntimeError("empty struct logs: start anvil with --steps-tracing")
    data = bytes(tx["input"])
    b = Breakdown(op.id, op.label, receipt["gasUsed"])
    b.calldata_bytes = len(data)
    b.calldata_zero = data.count(0)
    b.intrinsic = 21000 + 4 * b.calldata_zero + 16 * (len(data) - b.calldata_zero)
    b.steps = len(logs)
    sender, to = tx["from"], tx["to"]
    warm_accounts = {sender, to} | {to_checksum_address(f"0x{i:040x}") for i in PRECOMPILES}
    warm_slots: set = set()
    frames = [Frame(code=to, storage=to, depth=logs[0]["depth"], start_gas=logs[0]["gas"])]
    excl: dict[str, int] = defaultdict(int)
    kinds: dict[str, int] = defaultdict(int)
    funcs: dict[str, int] = defaultdict(int)
    name = labels.name

    for i, step in enumerate(logs):
        opname = step["op"]
        depth = step["depth"]
        frame = frames[-1]
        assert frame.depth == depth, (i, opname, frame.depth, depth)
        nxt = logs[i + 1] if i + 1 < len(logs) else None
        stack = step.get("stack") or []
        me = name(frame.code)
        pc_map = pc_maps.get(frame.code)
        fn = pc_map.function(step["pc"]) if pc_map is not None else None

        if opname in CALL_OPS:
            target = _addr(stack[-2])
            cold = target not in warm_accounts
            warm_accounts.add(target)
            if nxt is not None and nxt["depth"] == depth + 1:
                storage = frame.storage if opname in ("DELEGATECALL", "CALLCODE") else target
                frames.append(
                    Frame(code=target, storage=storage, depth=depth + 1, start_gas=nxt["gas"], caller_gas_before=step["gas"], caller_fn=fn)
                )
                b.calls.append([opname, me, name(target), cold, None])
            else:  # precompile, no code, or failed before entering
                cost = step["gas"] - nxt["gas"] if nxt is not None else step["gasCost"]
                excl[me] += cost
                kinds["account access / call overhead"] += cost
                if fn is not None:
                    funcs[fn] += cost
                b.calls.append([opname, me, name(target), cold, cost])
            continue

        if nxt is not None and nxt["depth"] == depth:
            cost = step["gas"] - nxt["gas"]
        else:
            cost = step["gasCost"]

        if opname == "SLOAD":
            slot = _int(stack[-1])
            cold = (frame.storage, slot) not in warm_slots
            warm_slots.add((frame.storage, slot))
            b.sloads.append((name(frame.storage), labels.slot(frame.storage, slot), cold, cost))
            kinds["storage reads (SLOAD)"] += cost
        elif opname == "SSTORE":
            slot = _int(stack[-1])
            warm_slots.add((frame.storage, slot))
            b.sstores.append((name(frame.storage), labels.slot(frame.storage, slot), cost, _int(stack[-2]) == 0))
            kinds["storage writes (SSTORE)"] += cost
        elif opname in ADDRESS_OPS:
            target = _addr(stack[-1])
            warm_accounts.add(target)
            kinds["account access / call overhead"] += cost
        elif opname.startswith("LOG"):
            b.logs.append((name(frame.storage), opname, cost))
            kinds["events (LOG)"] += cost
        elif opname in ("TLOAD", "TSTORE"):
            b.transient[opname] += 1
            kinds["transient storage (lock)"] += cost
        else:
            kinds["computation and memory"] += cost
        excl[me] += cost
        if fn is not None:
            funcs[fn] += cost

        if nxt is None or nxt["depth"] < depth:  # this frame ends here
            if len(frames) > 1:
                callee = frames.pop()
                callee_used = callee.start_gas - (step["gas"] - cost)
                total = callee.caller_gas_before - nxt["gas"]
                overhead = total - callee_used
                parent = frames[-1]
                excl[name(parent.code)] += overhead
                kinds["account access / call overhead"] += overhead
                if callee.caller_fn is not None:  # the call, callee included, counts to the caller's function
                    funcs[callee.caller_fn] += total
                for c in reversed(b.calls):  # the call that opened this frame
                    if c[4] is None and c[2] == name(callee.code):
                        c[4] = overhead
                        break

    b.execution = sum(excl.values())
    last = logs[-1]
    consumed = logs[0]["gas"] - (last["gas"] - last["gasCost"])  # the top frame's own counter
    if consumed != b.execution:
        raise RuntimeError(f"{op.id}: trace accounting is off by {b.execution - consumed} gas")
    b.refund = b.intrinsic + b.execution - b.gas_used
    b.by_contract = dict(sorted(excl.items(), key=lambda kv: -kv[1]))
    b.by_kind = dict(sorted(kinds.items(), key=lambda kv: -kv[1]))
    b.by_function = dict(sorted(funcs.items(), key=lambda kv: -kv[1]))
    b.calls = [tuple(c) for c in b.calls]
    return b


def analyse_all(scenario) -> dict:
    labels = SlotLabels(scenario)
    pc_maps = {}
    for kind in ("engine", "extension"):
        pcs = scenario.art[kind].get("pc_functions")
        if pcs:
            pc_maps[scenario.contracts[kind]] = PcFunctions(pcs)
    return {op_id: analyse(scenario.chain, labels, op, pc_maps).as_dict() for op_id, op in scenario.ops.items()}


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------


def _compact(items: list[str]) -> str:
    counts = Counter(items)
    return ", ".join(f"{k} ×{n}" if n > 1 else k for k, n in counts.items())


def render(t: dict) -> str:
    lines = [f"### {t['op_id']}: {t['label']}", ""]
    lines.append(
        f"gasUsed **{t['gas_used']:,}** = intrinsic {t['intrinsic']:,} (21,000 + calldata {t['calldata_bytes']} bytes, "
        f"{t['calldata_zero_bytes']} zero) + execution {t['execution']:,} − refund {t['refund']:,}"
    )
    lines.append("")
    lines.append("| execution by kind | gas |")
    lines.append("|---|---:|")
    for k, v in t["by_kind"].items():
        lines.append(f"| {k} | {v:,} |")
    lines.append("")
    lines.append("| execution by contract (exclusive) | gas |")
    lines.append("|---|---:|")
    for k, v in t["by_contract"].items():
        lines.append(f"| {k} | {v:,} |")
    lines.append("")
    if t.get("by_function"):
        lines.append("| engine code by source function (own opcodes + external calls it makes, callees' gas included; internal calls excluded) | gas |")
        lines.append("|---|---:|")
        for k, v in t["by_function"].items():
            lines.append(f"| {k} | {v:,} |")
        lines.append("")
    sl = t["sload"]
    cold = [f"{i['contract']}:{i['slot']}" for i in sl["items"] if i["cold"]]
    warm = [f"{i['contract']}:{i['slot']}" for i in sl["items"] if not i["cold"]]
    lines.append(f"- SLOAD: {sl['cold']} cold ({sl['cold'] * 2100:,} gas), {sl['warm']} warm ({sl['warm'] * 100:,} gas)")
    lines.append(f"  - cold: {_compact(cold)}")
    if warm:
        lines.append(f"  - warm re-reads: {_compact(warm)}")
    ss = t["sstore"]
    lines.append(f"- SSTORE: {len(ss)} ({sum(s['gas'] for s in ss):,} gas)")
    for s in ss:
        lines.append(f"  - {s['contract']}:{s['slot']} {s['gas']:,}{' (to zero: refund)' if s['to_zero'] else ''}")
    calls = t["calls"]
    lines.append(f"- calls: {len(calls)} ({sum(1 for c in calls if c['cold'])} to cold accounts)")
    for c in calls:
        lines.append(f"  - {c['op']} {c['from']} → {c['to']} ({'cold' if c['cold'] else 'warm'}, overhead {c['overhead'] if c['overhead'] is not None else '?'})")
    lines.append(f"- events: {len(t['logs'])} ({sum(l['gas'] for l in t['logs']):,} gas): {_compact([l['contract'] + ' ' + l['op'] for l in t['logs']])}")
    if t["transient"]:
        lines.append(f"- transient: {dict(t['transient'])}")
    lines.append("")
    return "\n".join(lines)


def write_traces(traces: dict, path: Path, meta: dict | None = None) -> None:
    meta = meta or {}
    parts = [
        "# Gas breakdown per measured transaction",
        "",
        f"Code: git commit `{(meta.get('git') or {}).get('commit')}`"
        f"{' (contracts/ with uncommitted changes)' if (meta.get('git') or {}).get('dirty') else ''}, "
        f"contracts fingerprint `{meta.get('contracts_fingerprint')}`, generated {meta.get('generated_utc')}.",
        "",
        "Generated by `python -m benchmarks.gas.run_gas --trace` (anvil `debug_traceTransaction`,",
        "default struct logger). Exclusive gas per contract excludes the frames it calls; call",
        "overhead (account access, memory for arguments) is charged to the caller. Token",
        "`transfer`/`transferFrom` and feed `latestRoundData` are the token and feed rows.",
        "",
    ]
    for t in traces.values():
        parts.append(render(t))
    path.write_text("\n".join(parts))
