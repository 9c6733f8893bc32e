"""Cartesian controllers: operational-space control (torque arms) and damped-least-squares IK (position arms)."""
