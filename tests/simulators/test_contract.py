"""The simulator → agent contract (docs/architecture.md), over real sockets with real clients."""

from __future__ import annotations

import asyncio
import math
import struct
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from asyncua import Client, ua
from pymodbus.client import AsyncModbusTcpClient

from tests.fixtures.simulators import RunningSimulator

VARIABLES = ["bore_diameter", "surface_roughness", "spindle_temp"]


async def read_modbus_floats(port: int, count: int = 3, unit: int = 1) -> list[float]:
    client = AsyncModbusTcpClient("127.0.0.1", port=port)
    await client.connect()
    try:
        rr = await client.read_holding_registers(0, count=2 * count, device_id=unit)
        assert not rr.isError(), rr
        regs = rr.registers
    finally:
        client.close()
    return [
        struct.unpack(">f", struct.pack(">HH", regs[2 * i], regs[2 * i + 1]))[0]
        for i in range(count)
    ]


async def read_opcua(endpoint: str, names: list[str]) -> list[ua.DataValue]:
    async with Client(endpoint, timeout=10) as client:
        nodes = [client.get_node(f"ns=2;s=Line1.CNC1.{n}") for n in names]
        return await client.read_attributes(nodes, ua.AttributeIds.Value)


async def modbus_value_when(port: int, accept, timeout: float = 10.0) -> float:
    """The first bore_diameter read over Modbus that `accept`s, polled until `timeout`."""
    deadline = time.monotonic() + timeout
    value = math.nan
    while time.monotonic() < deadline:
        (value, *_) = await read_modbus_floats(port)
        if accept(value):
            return value
        await asyncio.sleep(0.05)
    raise AssertionError(f"last value {value} still not accepted after {timeout} s")


def wait_for(probe, timeout: float = 10.0, interval: float = 0.05):
    """The first truthy result of `probe()`, polled until `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := probe():
            return result
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")


def stuck_state(sim: RunningSimulator):
    state = sim.state()
    (d,) = state["disturbances"]
    return state if d["state"] == "active" and d["samples_affected"] >= 1 else None


def f32(x: float) -> float:
    return struct.unpack(">f", struct.pack(">f", x))[0]


async def test_opcua_and_modbus_serve_the_same_sample(simulator_factory):
    # One sample every 2 s: read both protocols between two samples (retry if one slipped by).
    sim: RunningSimulator = simulator_factory(rate=0.5)
    for _ in range(5):
        before = sim.value("bore_diameter")["index"]
        dvs = await read_opcua(sim.opcua_endpoint, VARIABLES)
        floats = await read_modbus_floats(sim.modbus_port)
        if sim.value("bore_diameter")["index"] == before:
            break
    else:
        pytest.fail("the sample kept changing between reads")
    opc_values = [dv.Value.Value for dv in dvs]
    assert [f32(v) for v in opc_values] == floats
    assert all(dv.StatusCode.is_good() for dv in dvs)
    assert all(dv.SourceTimestamp is not None for dv in dvs)
    # Plausible process values around the configured means.
    for value, mean, sigma in zip(opc_values, [25.0, 0.8, 45.0], [0.005, 0.05, 0.5], strict=True):
        assert abs(value - mean) < 6 * sigma


async def test_opcua_address_space_is_shaped_like_the_contract(shared_simulator: RunningSimulator):
    async with Client(shared_simulator.opcua_endpoint, timeout=10) as client:
        assert await client.get_namespace_index("urn:shopfloor-spc:simulator") == 2
        node = await client.nodes.objects.get_child(["2:Line1", "2:CNC1", "2:bore_diameter"])
        assert node.nodeid == ua.NodeId("Line1.CNC1.bore_diameter", 2)
        assert await node.read_type_definition() == ua.NodeId(ua.ObjectIds.AnalogItemType)
        assert await node.read_data_type() == ua.NodeId(ua.ObjectIds.Double)
        eu = await (await node.get_child("0:EngineeringUnits")).read_value()
        assert eu.DisplayName.Text == "mm"
        eu_range = await (await node.get_child("0:EURange")).read_value()
        assert (eu_range.Low, eu_range.High) == (24.9, 25.1)
        machine = await client.nodes.objects.get_child(["2:Line1", "2:CNC1"])
        children = await machine.get_children()
        names = {(await c.read_browse_name()).Name for c in children}
        assert names == {*VARIABLES, "defectives"}  # + the attribute stream


async def test_mbpoll_reads_the_same_float_as_pymodbus(shared_simulator: RunningSimulator):
    # Freeze the sensor so independent reads see one value.
    shared_simulator.inject("bore_diameter", "stuck")
    state = wait_for(lambda: stuck_state(shared_simulator), timeout=10)
    frozen = state["machines"][0]["variables"]["bore_diameter"]["value"]
    out = subprocess.run(
        ["mbpoll", "-m", "tcp", "-p", str(shared_simulator.modbus_port), "-a", "1", "-0", "-r", "0",
         "-c", "1", "-t", "4:float", "-B", "-1", "127.0.0.1"],
        capture_output=True, text=True, timeout=20, check=True,
    ).stdout
    line = next(ln for ln in out.splitlines() if ln.startswith("[0]:"))
    mbpoll_value = float(line.split(":", 1)[1])
    (pymodbus_value, *_) = await read_modbus_floats(shared_simulator.modbus_port)
    assert pymodbus_value == f32(frozen)
    # mbpoll prints 6 significant digits.
    assert mbpoll_value == pytest.approx(pymodbus_value, rel=1e-5)


async def test_injected_shift_moves_the_served_value_and_clear_restores_it(
    shared_simulator: RunningSimulator,
):
    # 200 sigma is unmistakable in a single reading (the statistics live in test_process.py).
    injected = shared_simulator.inject("bore_diameter", "shift", magnitude=200.0)
    assert injected["kind"] == "shift" and injected["magnitude"] == 200.0
    shifted = await modbus_value_when(shared_simulator.modbus_port, lambda v: v > 25.5)
    assert shifted == pytest.approx(26.0, abs=0.05)
    async with Client(shared_simulator.opcua_endpoint, timeout=10) as client:
        opc = await client.get_node("ns=2;s=Line1.CNC1.bore_diameter").read_value()
    assert opc == pytest.approx(26.0, abs=0.05)
    state = shared_simulator.state()
    assert [d["kind"] for d in state["disturbances"]] == ["shift"]
    assert shared_simulator.clear() == 1
    restored = await modbus_value_when(shared_simulator.modbus_port, lambda v: v < 25.5)
    assert restored == pytest.approx(25.0, abs=0.05)
    assert shared_simulator.state()["disturbances"] == []


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "needle"),
    [
        ("POST", "/disturbances", {"variable": "bore_diameter", "kind": "earthquake"},
         422, "kind"),
        ("POST", "/disturbances", {"machine": "CNC1", "variable": "bore_diam", "kind": "shift"},
         422, "unknown variable 'bore_diam'"),
        ("POST", "/disturbances", {"machine": "CNC9", "variable": "bore_diameter",
                                   "kind": "shift"}, 422, "unknown machine 'CNC9'"),
        ("POST", "/disturbances", {"variable": "bore_diameter", "kind": "shift", "sigma": 3},
         422, "sigma: unknown field"),
        ("POST", "/disturbances", {"kind": "shift"}, 422, "needs 'variable'"),
        ("POST", "/disturbances", [1, 2], 400, "JSON object"),
        ("GET", "/nothing", None, 404, "no such path '/nothing'"),
        ("PUT", "/state", None, 405, "PUT not allowed on /state"),
        ("DELETE", "/disturbances/999", None, 404, "no disturbance 999"),
        ("DELETE", "/disturbances/abc", None, 404, "must be a number"),
        ("GET", "/disturbances/1", None, 405, "use DELETE"),
    ],
)
def test_control_api_rejects_bad_requests_clearly(
    module_simulator: RunningSimulator, method, path, body, status, needle
):
    got_status, answer = module_simulator.request(method, path, body)
    assert got_status == status
    assert needle in answer["error"]
    assert module_simulator.state()["disturbances"] == []


def test_control_api_rejects_malformed_json(module_simulator: RunningSimulator):
    import urllib.error
    import urllib.request

    req = urllib.request.Request(
        module_simulator.control_url + "/disturbances", data=b"{not json", method="POST"
    )
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(req, timeout=5)
    assert info.value.code == 400
    assert b"not JSON" in info.value.read()


def test_state_reports_values_and_quality(module_simulator: RunningSimulator):
    state = module_simulator.state()
    assert state["line"] == "Line1" and state["connected"] is True
    (machine,) = state["machines"]
    assert machine["name"] == "CNC1" and machine["unit_id"] == 1
    bore = machine["variables"]["bore_diameter"]
    assert bore["quality"] == "good" and bore["unit"] == "mm"
    assert not math.isnan(bore["value"]) and bore["rate_hz"] == 10.0


def test_remove_one_disturbance_and_get_the_map(shared_simulator: RunningSimulator):
    sim = shared_simulator
    first = sim.inject("bore_diameter", "shift", magnitude=1.0)
    second = sim.inject("spindle_temp", "trend", magnitude=0.1)
    status, removed = sim.request("DELETE", f"/disturbances/{first['id']}")
    assert status == 200 and removed["id"] == first["id"]
    status, listed = sim.request("GET", "/disturbances")
    assert [d["id"] for d in listed["disturbances"]] == [second["id"]]
    status, text = sim.request("GET", "/map")
    assert status == 200 and "machine CNC1: unit id 1" in text and "float32 ABCD" in text


def test_same_seed_same_samples_in_two_processes(simulator_factory):
    # Two processes, same seed: the samples with the same index are the same values.
    with ThreadPoolExecutor(3) as pool:  # start them side by side
        one, two, other = pool.map(lambda seed: simulator_factory(seed=seed, rate=20.0),
                                   [99, 99, 100])
    time.sleep(0.5)
    histories = []
    for sim in (one, two, other):
        status, body = sim.request("GET", "/history?machine=CNC1&variable=bore_diameter&limit=2000")
        assert status == 200
        histories.append({s["index"]: s["value"] for s in body["samples"]})
    common = set(histories[0]) & set(histories[1]) & set(histories[2])
    assert len(common) >= 5
    assert all(histories[0][i] == histories[1][i] for i in common)
    assert all(histories[0][i] != histories[2][i] for i in common)


@pytest.mark.parametrize(
    ("query", "status", "needle"),
    [
        ("", 400, "give ?variable=NAME"),
        ("?variable=nope", 404, "no variable 'nope' on machine 'CNC1'"),
        ("?variable=bore_diameter&limit=x", 400, "limit must be an integer"),
        ("?variable=bore_diameter&limit=0", 400, "limit must be >= 1"),
        ("?variable=bore_diameter&colour=red", 400, "unknown query parameter(s) ['colour']"),
    ],
)
def test_history_rejects_bad_queries(module_simulator: RunningSimulator, query, status, needle):
    got, body = module_simulator.request("GET", "/history" + query)
    assert got == status and needle in body["error"]


def test_history_returns_the_latest_samples_in_order(module_simulator: RunningSimulator):
    status, body = module_simulator.request("GET", "/history?variable=spindle_temp&limit=5")
    assert status == 200 and body["machine"] == "CNC1"
    indices = [s["index"] for s in body["samples"]]
    assert len(indices) == 5 and indices == list(range(indices[0], indices[0] + 5))
    assert all(s["quality"] == "good" and abs(s["value"] - 45.0) < 5 for s in body["samples"])
