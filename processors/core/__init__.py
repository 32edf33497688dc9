"""The pure core: functions of (state, message, now). No I/O, no clock, no randomness."""
