"""A titanoboa EVM backend on revm (pyrevm), for the invariant machines' volume.

titanoboa executes contracts on py-evm, an interpreter written in Python:
about 80% of an invariant-machine step is py-evm running the engine. This
module swaps a boa ``Env``'s EVM for revm (the Rust EVM of reth, foundry and
anvil, through its Python binding ``pyrevm``) while boa keeps doing
everything else: compiling, ABI encoding and decoding, contract objects,
``boa.reverts(reason)``, events, ``prank``, ``anchor``, ``time_travel``.

    env = revm_env()                 # a boa.Env whose EVM is revm
    with boa.swap_env(env): ...

What boa gives up on revm (only used where the machines do not need it):
source-level stack traces (a revert shows its reason string, not the Vyper
line), coverage, gas profiling, forking, and call traces of child calls.
Coverage and the fork run therefore stay on py-evm.
"""

from __future__ import annotations

import contextlib

import boa
from eth.exceptions import Revert, VMError
from eth_utils import to_canonical_address
from pyrevm import EVM, BlockEnv

from boa.util.abi import Address
from boa.vm.gas_meters import GasMeter

# A fixed, far-off start (boa's py-evm genesis starts at the wall clock; any
# value works as long as the block clock only moves forward).
GENESIS_TIMESTAMP = 1_700_000_000
GENESIS_BLOCK = 1
BLOCK_GAS_LIMIT = 2**63 - 1
SPEC = "CANCUN"  # transient storage (Vyper 0.4 re-entrancy locks), PUSH0, MCOPY


class _Code:
    """boa reads ``computation.code._trace`` (the executed pcs) to map a revert
    to a source line; revm keeps no pc trace."""

    _trace: tuple = ()


class _Message:
    def __init__(self, sender: bytes, to: bytes, data: bytes, is_create: bool = False):
        self.sender = sender
        self.code_address = to
        self.storage_address = to
        self.data = data
        self.is_create = is_create
        self.depth = 0


class RevmComputation:
    """The slice of py-evm's computation API that boa reads after a call."""

    _gas_meter_class = GasMeter
    _contract_repr_before_revert = None
    beneficiaries: tuple = ()
    children: tuple = ()
    code = _Code()

    def __init__(self, msg: _Message, output: bytes, error: VMError | None, gas_used: int, logs: list):
        self.msg = msg
        self.output = output
        self.error = error
        self.is_error = error is not None
        self._gas_used = gas_used
        self._logs = logs

    def get_gas_used(self) -> int:
        return self._gas_used

    @property
    def net_gas_used(self) -> int:
        return self._gas_used

    def get_raw_log_entries(self):
        """(log index, address, topics, data) as py-evm gives them (pyrevm's
        ``Log``: hex address, hex topics, ``data`` = (topics, data bytes))."""
        return [
            (i, to_canonical_address(log.address), [int(t, 16) for t in log.topics], bytes(log.data[1]))
            for i, log in enumerate(self._logs)
        ]

    @property
    def _log_entries(self):
        return self.get_raw_log_entries()

    @property
    def call_trace(self):
        from boa.contracts.call_trace import TraceFrame

        contract = boa.env._lookup_contract_fast(self.msg.code_address)
        source = contract.trace_source(self) if contract is not None and hasattr(contract, "trace_source") else None
        return TraceFrame(self, source, 0, [])


class _BlockPatch:
    """boa's ``evm.patch``: the block fields a contract can read."""

    def __init__(self, backend: "RevmEVM"):
        object.__setattr__(self, "_backend", backend)
        object.__setattr__(self, "_fields", {"timestamp": GENESIS_TIMESTAMP, "block_number": GENESIS_BLOCK, "chain_id": 1})

    def __getattr__(self, name):
        fields = object.__getattribute__(self, "_fields")
        if name in fields:
            return fields[name]
        raise AttributeError(f"revm backend: block field {name!r} is not supported")

    def __setattr__(self, name, value):
        fields = object.__getattribute__(self, "_fields")
        if name not in fields:
            raise AttributeError(f"revm backend: block field {name!r} is not supported")
        fields[name] = value
        object.__getattribute__(self, "_backend")._block_dirty = True

    @contextlib.contextmanager
    def anchor(self):
        fields = object.__getattribute__(self, "_fields")
        saved = dict(fields)
        try:
            yield
        finally:
            fields.update(saved)
            object.__getattribute__(self, "_backend")._block_dirty = True


class RevmEVM:
    """Implements what ``boa.Env`` calls on its ``evm`` (boa/vm/py_evm.py
    ``PyEVM``) on top of ``pyrevm.EVM``."""

    is_forked = False

    def __init__(self, env):
        self.env = env
        self.revm = EVM(spec_id=SPEC, gas_limit=BLOCK_GAS_LIMIT)
        self.patch = _BlockPatch(self)
        self._block_dirty = True
        self._gas_meter_class = GasMeter

    # -- block environment ---------------------------------------------------
    def _sync_block(self) -> None:
        if self._block_dirty:
            self.revm.set_block_env(
                BlockEnv(
                    number=self.patch.block_number,
                    timestamp=self.patch.timestamp,
                    gas_limit=BLOCK_GAS_LIMIT,
                    basefee=0,
                )
            )
            self._block_dirty = False

    # -- accounts --------------------------------------------------------------
    @staticmethod
    def _hex(address) -> str:
        """0x-hex for pyrevm (boa's Address is one already, cached)."""
        return str.__str__(Address(address))

    def get_balance(self, address: Address) -> int:
        return self.revm.get_balance(self._hex(address))

    def set_balance(self, address: Address, value: int) -> None:
        self.revm.set_balance(self._hex(address), value)

    def get_code(self, address: Address) -> bytes:
        return bytes(self.revm.get_code(self._hex(address)) or b"")

    def set_code(self, address: Address, code: bytes) -> None:
        raise NotImplementedError("revm backend: set_code is not supported")

    def get_storage(self, address: Address, slot: int) -> int:
        return self.revm.storage(self._hex(address), slot)

    def get_storage_slot(self, address: Address, slot: int) -> bytes:
        return self.get_storage(address, slot).to_bytes(32, "big")

    def set_storage(self, address: Address, slot: int, value: int) -> None:
        self.revm.insert_account_storage(self._hex(address), slot, value)

    def get_gas_limit(self) -> int:
        return BLOCK_GAS_LIMIT

    def get_gas_meter_class(self):
        return self._gas_meter_class

    def set_gas_meter_class(self, cls) -> None:
        self._gas_meter_class = cls

    def reset_access_counters(self) -> None:
        pass

    def enable_fast_mode(self, flag: bool = True) -> None:
        pass

    # -- snapshots -------------------------------------------------------------
    def snapshot(self):
        return self.revm.snapshot()

    def revert(self, snapshot_id) -> None:
        self.revm.revert(snapshot_id)

    # -- execution -------------------------------------------------------------
    def generate_create_address(self, sender: Address) -> Address:
        from eth._utils.address import generate_contract_address

        nonce = self.revm.basic(self._hex(sender)).nonce
        return Address(generate_contract_address(Address(sender).canonical_address, nonce))

    def deploy_code(self, sender, origin, target_address, gas, gas_price, value, bytecode):
        self._sync_block()
        msg = _Message(Address(sender).canonical_address, Address(target_address).canonical_address, b"", is_create=True)
        try:
            created = self.revm.deploy(self._hex(sender), bytecode, value or None, gas)
        except RuntimeError as e:
            return RevmComputation(msg, b"", Revert(_revert_data(e)), 0, [])
        assert to_canonical_address(created) == msg.code_address, (created, target_address)
        result = self.revm.result
        return RevmComputation(msg, self.get_code(target_address), None, result.gas_used, list(result.logs))

    def execute_code(self, sender, to, gas, gas_price, value, bytecode, data, is_static, fake_codesize, start_pc, ir_executor, contract):
        if fake_codesize is not None or start_pc or ir_executor is not None:
            raise NotImplementedError("revm backend: injected code and the IR executor are not supported")
        self._sync_block()
        msg = _Message(Address(sender).canonical_address, Address(to).canonical_address, data)
        try:
            output = self.revm.message_call(self._hex(sender), self._hex(to), data, value or None, gas, None, is_static)
        except RuntimeError as e:
            return RevmComputation(msg, _revert_data(e), Revert(_revert_data(e)), 0, [])
        result = self.revm.result
        return RevmComputation(msg, bytes(output), None, result.gas_used, list(result.logs))


def _revert_data(error: RuntimeError) -> bytes:
    """The revert data of a failed pyrevm call (pyrevm puts revm's
    ``Revert { output: Bytes(0x..) }`` in the exception text)."""
    text = str(error)
    marker = "output: 0x"
    if marker not in text:
        marker = "Bytes(0x"
    if marker in text:
        start = text.index(marker) + len(marker)
        end = start
        while end < len(text) and text[end] in "0123456789abcdefABCDEF":
            end += 1
        return bytes.fromhex(text[start:end])
    return text.encode()


def revm_env() -> boa.Env:
    """A fresh ``boa.Env`` executing on revm."""
    env = boa.Env()
    env.evm = RevmEVM(env)
    return env
