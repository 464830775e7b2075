from framework.sim.loopback import trim_history


def test_trim_history_drops_the_oldest_finished_and_their_indexes() -> None:
    records = {f"o{i}": {"id": f"o{i}", "open": False} for i in range(6)}
    forgotten: list[str] = []
    trim_history(
        records, 4, working=lambda r: r["open"], forget=lambda r: forgotten.append(r["id"])
    )
    assert list(records) == ["o2", "o3", "o4", "o5"]
    assert forgotten == ["o0", "o1"]


def test_trim_history_stops_at_the_oldest_working_record() -> None:
    records = {f"o{i}": {"id": f"o{i}", "open": i == 1} for i in range(6)}
    trim_history(records, 2, working=lambda r: r["open"])
    assert list(records) == ["o1", "o2", "o3", "o4", "o5"]  # o1 still works: kept, and after it
    records["o1"]["open"] = False
    trim_history(records, 2, working=lambda r: r["open"])
    assert list(records) == ["o4", "o5"]


def test_trim_history_without_working_keeps_the_newest() -> None:
    records = {f"k{i}": None for i in range(5)}
    trim_history(records, 2)
    assert list(records) == ["k3", "k4"]
