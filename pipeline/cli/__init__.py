"""The s2c-batch command line (click)."""
