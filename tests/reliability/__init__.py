"""Reliability tests: the bank test (tests/reliability/test_bank.py, harness in tests/reliability/bank.py)."""
