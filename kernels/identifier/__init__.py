"""SegEarth-OV3 identifier: SAM 3 prompted with class names."""
