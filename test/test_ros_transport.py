"""Proves that the ROS 2 install is real: an image crosses a real DDS publisher/subscriber."""

from conftest import next_domain_id

from lma_perception.ros.transport_check import round_trip_image


def test_image_round_trip_through_dds():
    seconds = round_trip_image(height=64, width=96, domain_id=next_domain_id())
    assert seconds > 0


def test_cli_doctor_runs(capsys):
    from lma_perception.cli import main

    assert main(['doctor']) == 0
    assert 'image round trip ok' in capsys.readouterr().out
