"""diagnostic_msgs/DiagnosticArray on /diagnostics (1 Hz by default) from a node's health summary, for
rqt_runtime_monitor and Foxglove. The summary itself is ROS-free (runtime.health)."""
from __future__ import annotations

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.clock import Clock, ClockType

DIAGNOSTICS_TOPIC = "/diagnostics"


class DiagnosticsPublisher:
    """`summarize()` -> (level, message, [(key, value), ...]); published as one DiagnosticStatus named
    "<node name>: <what>" with `hardware_id`. `rate_hz` <= 0 disables it. Runs on the steady clock, so it
    keeps reporting while a simulated /clock stands still."""

    def __init__(self, node, what: str, hardware_id: str, summarize, rate_hz: float = 1.0):
        self.node, self.summarize = node, summarize
        self.name = f"{node.get_name()}: {what}"
        self.hardware_id = hardware_id
        self.pub = node.create_publisher(DiagnosticArray, DIAGNOSTICS_TOPIC, 10) if rate_hz > 0 else None
        if self.pub is not None:
            node.create_timer(1.0 / rate_hz, self.publish, clock=Clock(clock_type=ClockType.STEADY_TIME))

    def message(self) -> DiagnosticArray:
        level, text, values = self.summarize()
        status = DiagnosticStatus(level=bytes([int(level)]), name=self.name, message=text,
                                  hardware_id=self.hardware_id,
                                  values=[KeyValue(key=str(k), value=str(v)) for k, v in values])
        msg = DiagnosticArray(status=[status])
        msg.header.stamp = self.node.get_clock().now().to_msg()
        return msg

    def publish(self) -> None:
        self.pub.publish(self.message())
