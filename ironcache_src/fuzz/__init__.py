"""Fuzzing harness of the server (README: "Fuzzing"); outside the ironcache package."""
