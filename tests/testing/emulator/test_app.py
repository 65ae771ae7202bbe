"""The emulator's control API: moving its clock on (the PostgreSQL full-stack test ends long runs this way)."""

from __future__ import annotations

import urllib.error

import pytest

from airflow_provider_flowinst.testing.emulator import EmulatorServer


def enos_state(server: EmulatorServer, instance_id: str) -> str:
    return str(server.control("GET", "/_emulator/enos_batch/instances")[instance_id]["statusDesc"])


def test_advancing_the_clock_ends_the_runs_due_within_it():
    with EmulatorServer(time_scale=1.0) as server:
        short = server.create_enos_batch_instance("5101", "5101-20300101000000", queued_seconds=0, running_seconds=600)
        long = server.create_enos_batch_instance("5101", "5101-20300101000100", queued_seconds=0, running_seconds=7200)
        assert (enos_state(server, short), enos_state(server, long)) == ("RUNNING", "RUNNING")

        now = server.advance_clock(3600)

        assert now >= 3600
        assert (enos_state(server, short), enos_state(server, long)) == ("SUCCESS", "RUNNING")


@pytest.mark.parametrize("seconds", [-1, "later"])
def test_the_clock_never_goes_back(seconds):
    with EmulatorServer(time_scale=1.0) as server, pytest.raises(urllib.error.HTTPError) as refused:
        server.control("POST", "/_emulator/clock", {"advance": seconds})
    assert refused.value.code == 400
