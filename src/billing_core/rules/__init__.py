"""The pure rules: functions from values to values or decisions. No I/O, no clock reads."""
