"""NumPy metric and calibration definitions (no torch): the one definition every layer uses."""
